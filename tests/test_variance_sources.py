"""Every source of variance its own seed: the replicate's seed derives each one where its key is null (as before
the keys existed), a design may hold any of them fixed, and each run records the seeds it drew."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xablate.config import compose_job
from xablate.data.pipeline import subsampled
from xablate.data.sources.base import Splits
from xablate.gate import parse_job


def _splits(labels):
    x = np.arange(len(labels))[:, None].astype("float32")
    return Splits(train=(x, np.asarray(labels)), validation=(x[:1], np.asarray(labels[:1])),
                  test=(x[:1], np.asarray(labels[:1])), num_classes=3, channels=1, train_size=len(labels),
                  validation_size=1, test_size=1)


def test_a_subsample_is_drawn_per_class_by_its_own_seed():
    labels = [0] * 30 + [1] * 30 + [2] * 30
    first = subsampled(_splits(labels), 1).train
    again = subsampled(_splits(labels), 1).train
    other = subsampled(_splits(labels), 2).train
    assert np.array_equal(first[0], again[0])  # the same seed, the same subsample
    assert set(first[0][:12, 0]) != set(other[0][:12, 0])  # another seed, other images
    assert np.bincount(first[1][:12], minlength=3).tolist() == [4, 4, 4]  # stratified: within one per class
    assert np.bincount(first[1][:13], minlength=3).max() - np.bincount(first[1][:13], minlength=3).min() <= 1
    assert sorted(first[0][:, 0].tolist()) == list(range(90))  # a reordering: every image still there


def test_each_source_takes_the_replicates_seed_unless_a_design_holds_it():
    from xablate.training.job import Job, RunContext

    def seeds(*overrides):
        return Job.prepare(parse_job(compose_job(["debug=default", *overrides])), RunContext(output_dir=Path(".")),
                           "tensorflow").source_seeds

    assert seeds("seed=3") == {"init": 3, "order": 3, "split": 0, "subsample": None}  # the split: its own key
    assert seeds("seed=3", "data.split_seed=${seed}") == {"init": 3, "order": 3, "split": 3, "subsample": None}
    assert seeds("seed=3", "train.init_seed=0", "data.order_seed=7", "data.subsample_seed=2") == {
        "init": 0, "order": 7, "split": 0, "subsample": 2}
    with pytest.raises(ValueError, match="data.subsample_seed=1 with data.source='folder'"):
        parse_job(compose_job(["data=folder", "data.path=/tmp", "data.subsample_seed=1"]))


@pytest.mark.slow
def test_runs_with_one_init_seed_start_from_the_same_weights_whatever_their_replicate(tmp_path):
    import keras
    from mlflow import MlflowClient

    from xablate.training.trainer import RunContext, train

    class FirstWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = [np.array(w) for w in self.model.get_weights()]

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started = {}
    for seed, init in ((0, 5), (1, 5), (0, 6)):
        seen = FirstWeights()
        result = train(compose_job(["debug=default", "train.epochs=1", "train.save_model=false", f"seed={seed}",
                                    f"train.init_seed={init}", f"tracking.uri={uri}"]),
                       RunContext(output_dir=tmp_path / f"{seed}-{init}", callbacks=[seen]))
        started[(seed, init)] = seen.weights
        params = MlflowClient(uri).get_run(result.run_id).data.params
        assert (params["seeds.init"], params["seeds.order"], params["seeds.split"], params["seeds.subsample"]) == (
            str(init), str(seed), "0", "none")
    same = all(np.array_equal(a, b) for a, b in zip(started[(0, 5)], started[(1, 5)]))
    other = all(np.array_equal(a, b) for a, b in zip(started[(0, 5)], started[(0, 6)]))
    assert same and not other
