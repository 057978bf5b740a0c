"""The evaluation protocol: batch-norm statistics that match the weights being evaluated, and the reported test
number of the final weights."""

import numpy as np
import pytest
from mlflow import MlflowClient

from helpers import run_py, runs_of, sqlite_uri
from xablate.models import build_xception, preset_kwargs
from xablate.training.batchnorm import batch_norm_layers, recompute_batch_norm


def test_recomputed_statistics_are_the_average_of_the_batch_statistics():
    import keras

    model = build_xception(**preset_kwargs("debug", input_shape=(16, 16, 1), classes=10))
    rng = np.random.default_rng(0)
    batches = [(rng.random((8, 16, 16, 1), dtype=np.float32) * (i + 1), None) for i in range(3)]
    layers = batch_norm_layers(model)
    first = layers[0]  # its input is a conv of the image: no batch norm upstream, so the batch moments are exact
    probe = keras.Model(model.inputs, first.input)
    moments = [probe(x, training=True).numpy() for x, _ in batches]
    momenta = [layer.momentum for layer in layers]
    used = recompute_batch_norm(model, batches, max_batches=10)
    assert used == 3
    np.testing.assert_allclose(first.moving_mean.numpy(), np.mean([m.mean(axis=(0, 1, 2)) for m in moments], axis=0),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(),
                               np.mean([m.var(axis=(0, 1, 2)) for m in moments], axis=0), rtol=1e-3, atol=1e-5)
    assert [layer.momentum for layer in layers] == momenta  # training goes on with its own momentum
    assert recompute_batch_norm(model, batches, max_batches=2) == 2


@pytest.fixture(scope="module")
def first_epochs(tmp_path_factory):
    """`python run.py` for one epoch, with and without recomputed batch-norm statistics (one sweep, one process)."""
    tmp = tmp_path_factory.mktemp("protocol")
    uri = sqlite_uri(tmp)
    proc = run_py("-m", "train.precise_bn_batches=4,0", "train.epochs=1", "train.save_model=false", "study=protocol",
                  f"tracking.uri={uri}", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {run.data.params["train.precise_bn_batches"]: run for run in runs_of(uri, "protocol", role="job")}
    assert sorted(runs) == ["0", "4"]
    return uri, {"precise": runs["4"], "moving": runs["0"]}


@pytest.mark.slow
def test_after_the_first_epoch_validation_sees_what_training_learnt(first_epochs):
    uri, runs = first_epochs
    client = MlflowClient(uri)
    precise, moving = runs["precise"], runs["moving"]
    value = {name: client.get_metric_history(run.info.run_id, "val_accuracy")
             for name, run in (("precise", precise), ("moving", moving))}
    assert [m.step for m in value["precise"]] == [0]
    assert value["precise"][0].value >= 0.5
    # the same run with Keras' moving averages evaluates far below what it learnt (BN statistics lag)
    assert value["precise"][0].value - value["moving"][0].value > 0.2
    assert precise.data.metrics["accuracy"] > 0.5


@pytest.mark.slow
def test_the_reported_number_is_the_test_split_of_the_final_weights(first_epochs):
    run = first_epochs[1]["precise"]
    params, metrics = run.data.params, run.data.metrics
    assert (params["data.train_size"], params["data.validation_size"], params["data.test_size"]) == ("1295", "143", "359")
    assert 0.5 <= metrics["test_accuracy"] <= 1.0 and metrics["test_loss"] > 0
