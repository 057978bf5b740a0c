"""README, "Recipes": the paper's weight decay and dropout go to the builder (an L2 penalty on every kernel;
dropout before the classifier), and with EMA (Polyak) weights each epoch is evaluated with the averaged weights.
Checked on the model the run trains, not on the config it was given: one paper_imagenet run (EMA momentum
lowered to 0.9, so that 8 updates move the average well away from the raw weights)."""

import keras
import numpy as np
import pytest
from mlflow import MlflowClient

from xablate.config import compose_job
from xablate.data import load_data
from xablate.schema import Data, typed
from xablate.training.trainer import RunContext, train

KERNEL_REGULARIZERS = ("kernel_regularizer", "depthwise_regularizer", "pointwise_regularizer")


class Inspect(keras.callbacks.Callback):
    """What the trained model holds: its regularizers and dropout at the start; its raw weights and the
    optimizer's averages after the last training batch (before that epoch's validation)."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def on_train_begin(self, logs=None):
        model = self.model
        self.seen["model"] = model
        self.seen["dropout"] = [(layer.name, float(layer.rate)) for layer in model.layers
                                if isinstance(layer, keras.layers.Dropout)]
        self.seen["regularizers"] = {
            (layer.name, attribute): getattr(layer, attribute)
            for layer in model.layers for attribute in KERNEL_REGULARIZERS if hasattr(layer, attribute)}
        self.seen["regularization_losses"] = len(model.losses)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.params["epochs"] - 1 and batch == self.params["steps"] - 1:
            model = self.model
            self.seen["raw"] = [np.array(w) for w in model.get_weights()]
            stand_ins = [keras.Variable(np.array(v), dtype=v.dtype, trainable=False)
                         for v in model.trainable_variables]
            model.optimizer.finalize_variable_values(stand_ins)  # the averages, copied out of the optimizer
            self.seen["ema"] = [np.array(v) for v in stand_ins]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = compose_job([
        "debug=default", "optim=paper_imagenet", "optim.ema_momentum=0.9", "train.save_model=false",
        "train.precise_bn_batches=0",  # batch-norm statistics as trained: the EMA weights are the only change
        "study=recipe", f"tracking.uri={uri}"])
    inspect = Inspect()
    result = train(cfg, RunContext(output_dir=root / "job", callbacks=[inspect]))
    assert result.status == "FINISHED"
    return cfg, uri, result, inspect.seen


@pytest.mark.slow
def test_weight_decay_and_dropout_of_the_recipe_reach_the_model(paper_run):
    cfg, uri, result, seen = paper_run
    assert (cfg["optim"]["weight_decay"], cfg["optim"]["dropout"]) == (1e-5, 0.5)
    params = MlflowClient(uri).get_run(result.run_id).data.params
    assert float(params["builder.weight_decay"]) == 1e-5 and float(params["builder.dropout"]) == 0.5
    assert seen["dropout"] == [("dropout", 0.5)]  # one Dropout, before the classifier
    layers = [layer.name for layer in seen["model"].layers]
    assert layers.index("dropout") == layers.index("predictions") - 1
    regularizers = seen["regularizers"]
    kernels = {name for name, _ in regularizers}
    assert {"block1_conv1", "predictions"} <= kernels and len(kernels) > 10
    for key, regularizer in regularizers.items():
        assert isinstance(regularizer, keras.regularizers.L2), key
        assert float(regularizer.l2) == pytest.approx(1e-5), key
    assert seen["regularization_losses"] >= len(regularizers)  # every penalty enters the training loss


@pytest.mark.slow
def test_each_epoch_is_evaluated_with_the_averaged_weights(paper_run):
    cfg, uri, result, seen = paper_run
    model = seen["model"]
    trainable = [any(v is t for t in model.trainable_variables) for v in model.weights]
    validation = load_data(typed(Data, cfg["data"]), batch_size=int(cfg["train"]["batch_size"]), seed=int(cfg["seed"])).validation

    def evaluate(trainable_values):
        values = iter(trainable_values)
        model.set_weights([next(values) if is_trainable else raw for raw, is_trainable in zip(seen["raw"], trainable)])
        return model.evaluate(validation, verbose=0, return_dict=True)["loss"]

    raw_trainables = [w for w, is_trainable in zip(seen["raw"], trainable) if is_trainable]
    assert max(float(np.abs(r - e).max()) for r, e in zip(raw_trainables, seen["ema"])) > 1e-3
    with_ema, with_raw = evaluate(seen["ema"]), evaluate(raw_trainables)
    logged = {m.step: m.value for m in MlflowClient(uri).get_metric_history(result.run_id, "val_loss")}
    last = logged[max(logged)]
    assert abs(with_ema - with_raw) > 1e-4 * abs(with_raw)  # the two weight sets are told apart (10x the tolerance)
    assert last == pytest.approx(with_ema, rel=1e-5)
    assert last != pytest.approx(with_raw, rel=1e-5)


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """Ctrl-C once epoch 0 is checkpointed (extra callbacks run after the run's logger), keeping the model's
    weights and the optimizer's averages as training left them, before the epoch's validation."""

    def __init__(self):
        super().__init__()
        self.left = {}

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.params["steps"] - 1:
            self.left.update(weights_and_averages(self.model))

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("interrupted by the test")


class SeeRestored(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.restored = {}

    def on_train_begin(self, logs=None):
        self.restored.update(weights_and_averages(self.model))


def weights_and_averages(model):
    stand_ins = [keras.Variable(np.array(v), dtype=v.dtype, trainable=False) for v in model.trainable_variables]
    model.optimizer.finalize_variable_values(stand_ins)
    return {"weights": [np.array(v) for v in model.trainable_variables], "averages": [np.array(v) for v in stand_ins]}


@pytest.mark.slow
def test_a_resumed_ema_run_starts_from_the_weights_and_averages_training_left(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_job([
        "debug=default", "optim=paper_imagenet", "optim.ema_momentum=0.9", "train.save_model=false",
        "study=ema_resume", f"tracking.uri={uri}"])
    stop, see = StopAfterFirstEpoch(), SeeRestored()
    with pytest.raises(KeyboardInterrupt):
        train(cfg, RunContext(output_dir=tmp_path / "first", callbacks=[stop]))
    result = train(cfg, RunContext(output_dir=tmp_path / "resumed", callbacks=[see]))
    assert result.status == "FINISHED"
    assert max(float(np.abs(w - a).max()) for w, a in zip(stop.left["weights"], stop.left["averages"])) > 1e-3
    for key in ("weights", "averages"):  # Keras swaps EMA weights in and out by addition: equal up to rounding
        for left, restored in zip(stop.left[key], see.restored[key]):
            np.testing.assert_allclose(restored, left, rtol=1e-4, atol=1e-6, err_msg=key)
