"""The in-memory input pipeline: numpy arrays batched by a keras.utils.PyDataset, no TensorFlow needed.

Used for array sources (digits, CIFAR) when `data.pipeline=memory`, or `auto` without TensorFlow installed
(the GPU machine runs JAX without TensorFlow). Images are resized once with keras.ops; each epoch's order is
a permutation seeded by (seed, epoch), so a resumed run replays it exactly; augmentation is the same Keras
preprocessing layers as the tf.data path, applied per training batch.
"""

from __future__ import annotations

import math

import numpy as np

RESIZE_CHUNK = 512


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """float32 images resized to size x size (bilinear, as tf.image.resize), in chunks to bound memory."""
    import keras

    images = np.asarray(images, dtype="float32")
    if images.shape[1:3] == (size, size):
        return images
    chunks = [keras.ops.convert_to_numpy(keras.ops.image.resize(images[i:i + RESIZE_CHUNK], (size, size),
                                                                interpolation="bilinear"))
              for i in range(0, len(images), RESIZE_CHUNK)]
    return np.concatenate(chunks).astype("float32")


def array_batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int | None = None, augment=None,
                  value_range: tuple[float, float] = (0.0, 1.0)):
    """A keras.utils.PyDataset over (x, y): shuffled per epoch when `seed` is given; images (in [0, 1], augmented
    there) scaled to `value_range` last."""
    low, high = value_range
    import keras

    class ArrayBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0
            self._order = self._permutation()

        def _permutation(self):
            if seed is None:
                return np.arange(len(x))
            return np.random.default_rng([seed, self.epoch]).permutation(len(x))

        def set_epoch(self, epoch: int) -> None:
            """Continue as if `epoch` epochs had run (resume)."""
            self.epoch = epoch
            self._order = self._permutation()

        def __len__(self):
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, index):
            rows = self._order[index * batch_size:(index + 1) * batch_size]
            images, labels = x[rows], y[rows]
            if augment is not None:
                images = augment(images, training=True)
            if (low, high) != (0.0, 1.0):
                images = np.asarray(images, dtype="float32") * (high - low) + low
            return images, labels

        def on_epoch_end(self):
            self.set_epoch(self.epoch + 1)

    return ArrayBatches()
