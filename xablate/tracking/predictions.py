"""A run's per-image test predictions: the compact artifact that makes the test set a source of variance.

After its test evaluation a run predicts the test split once more with the same weights (the batch-norm
statistics the evaluation recomputed stay in place) and keeps, per test image in the split's fixed order, the
true label and the predicted class (`predictions.npz`, uint16, compressed: about 10 KB for 10,000 images), and
tags itself `xablate.predictions`. The analysis pairs two variants' runs image by image
(xablate.analysis.uncertainty); runs from before predictions were kept say so.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

PREDICTIONS_ARTIFACT = "predictions.npz"
PREDICTIONS_TAG = "xablate.predictions"  # on a run that kept its per-image test predictions: the artifact's name


def predictions_bytes(labels: np.ndarray, predicted: np.ndarray) -> bytes:
    """The artifact's content: labels and predicted classes, one per test image, in the split's order."""
    labels, predicted = np.asarray(labels).reshape(-1), np.asarray(predicted).reshape(-1)
    if labels.shape != predicted.shape:
        raise ValueError(f"Received {labels.size} labels and {predicted.size} predictions; allowed: one of each "
                         f"per test image.")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, labels=labels.astype(np.uint16), predicted=predicted.astype(np.uint16))
    return buffer.getvalue()


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predicted) from a kept artifact."""
    with np.load(path) as found:
        return found["labels"].astype(np.int64), found["predicted"].astype(np.int64)


def predict_split(model, test) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predicted classes) of every image of a test split (a tf.data dataset or a PyDataset of batches):
    Keras' compiled predict loop (one output per image under any distribution strategy), the labels read from
    the same batches in the same order."""
    predicted = np.asarray(model.predict(test, verbose=0)).argmax(axis=-1).reshape(-1)
    batches = (test[i] for i in range(len(test))) if hasattr(test, "__getitem__") else iter(test)  # a PyDataset
    labels = np.concatenate([np.asarray(batch[1]).reshape(-1) for batch in batches])
    return labels, predicted
