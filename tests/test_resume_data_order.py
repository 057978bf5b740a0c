"""README, "Resume": a resumed run replays the data order of the epochs done. The in-memory pipeline (no
TensorFlow needed) reshuffles every epoch; after a resume, the batches of epoch e are those an uninterrupted run
reads in epoch e. (The tf.data path is held to the same promise by tests/test_resume.py, through the losses.)"""

import hashlib

import keras
import numpy as np
import pytest

from xablate.config import compose_job
from xablate.training.trainer import RunContext, train

pytestmark = pytest.mark.slow  # starts run.py or trains for many seconds: the full suite's tier

EPOCHS = 3
STEPS = 2  # debug: 128 training images in batches of 64


def record_training_batches(monkeypatch):
    """Every batch that training reads from the dataset handed to `fit`, in order, as a digest of its images.
    Left out: the batches Keras peeks at before training starts (to learn their shapes) and the other streams
    of the in-memory pipeline (validation, test, batch-norm statistics)."""
    import xablate.data.memory as memory

    original_batches, original_fit = memory.array_batches, keras.Model.fit
    seen, state = [], {"fitted": None, "training": False}

    def recording_batches(x, y, batch_size, **kwargs):
        dataset = original_batches(x, y, batch_size, **kwargs)
        get = type(dataset).__getitem__

        def __getitem__(self, index):
            images, labels = get(self, index)
            if state["training"] and self is state["fitted"]:
                seen.append(hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:16])
            return images, labels

        type(dataset).__getitem__ = __getitem__  # a class of its own per call
        return dataset

    def recording_fit(self, x=None, *args, **kwargs):
        state["fitted"], state["training"] = x, False
        return original_fit(self, x, *args, **kwargs)

    class Gate(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            state["training"] = True

        def on_train_end(self, logs=None):
            state["training"] = False

    monkeypatch.setattr(memory, "array_batches", recording_batches)
    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    return seen, Gate


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """Ctrl-C after epoch 0 was checkpointed (extra callbacks run after the run's logger)."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("interrupted by the test")


def config(tmp_path, study):
    cfg = compose_job(["debug=default", f"train.epochs={EPOCHS}", "data.pipeline=memory",
                                       "train.save_model=false", f"study={study}",
                                       f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    return cfg


def epochs_of(sequence):
    assert len(sequence) % STEPS == 0, sequence
    return [sequence[i:i + STEPS] for i in range(0, len(sequence), STEPS)]


def test_a_resumed_run_reads_each_epoch_in_the_order_of_an_uninterrupted_one(tmp_path, monkeypatch, capsys):
    seen, Gate = record_training_batches(monkeypatch)
    train(config(tmp_path, "uninterrupted"), RunContext(output_dir=tmp_path / "a", callbacks=[Gate()]))
    uninterrupted = epochs_of(seen)
    assert len(uninterrupted) == EPOCHS
    assert len({tuple(epoch) for epoch in uninterrupted}) == EPOCHS  # every epoch has an order of its own
    assert {len(set(epoch)) for epoch in uninterrupted} == {STEPS}

    seen.clear()
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, "resumed"),
              RunContext(output_dir=tmp_path / "b", callbacks=[Gate(), StopAfterFirstEpoch()]))
    assert epochs_of(seen) == uninterrupted[:1]

    seen.clear()
    result = train(config(tmp_path, "resumed"), RunContext(output_dir=tmp_path / "c", callbacks=[Gate()]))
    assert "restored the checkpoint of epoch 0" in capsys.readouterr().out
    assert epochs_of(seen) == uninterrupted[1:]  # epochs 1 and 2, each in its uninterrupted order
    assert [row["epoch"] for row in result.history] == list(range(EPOCHS))
