"""The seed's workflow: `experiment=seed_finetune` from a pretrained file on a 17-class image folder (at the debug
size), the frozen warm-up (no base weight moves while frozen, every one after), resume across the switch, the
init params, the curves artifact, inputs scaled as the weights expect, and the seed's augmentation."""

import math

import keras
import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from xablate.config import compose_job
from xablate.data.pipeline import augmentation_layers, load_data
from xablate.schema import Augment, Data, typed
from xablate.models import build_from_preset
from xablate.training.finetune import HEAD_LAYERS
from xablate.training.trainer import RunContext, train


def snapshot(model):
    return {f"{layer.name}/{w.name}": keras.ops.convert_to_numpy(w).copy()
            for layer in model.layers for w in layer.weights}


class Watch(keras.callbacks.Callback):
    """The model's weights when training (re)starts and at every epoch end; stops after `stop_after` epochs."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.start, self.after, self.stop_after = None, [], stop_after

    def on_train_begin(self, logs=None):
        if self.start is None:
            self.start = snapshot(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self.after.append(snapshot(self.model))
        if self.stop_after is not None and len(self.after) >= self.stop_after:
            raise KeyboardInterrupt("stopped by the test after the frozen epoch")


@pytest.fixture(scope="module")
def seventeen_classes(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed_images")
    rng = np.random.default_rng(0)
    for c in range(17):
        for split, count in (("train", 4), ("test", 1)):
            folder = root / split / f"class_{c:02d}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    weights = root / "pretrained.keras"  # a build of another class count: its classifier cannot load
    build_from_preset("debug", input_shape=(16, 16, 3), classes=10).save(weights)
    return root, weights


@pytest.mark.slow
def test_seed_finetune_from_a_file_freezes_then_trains_everything_and_resumes_across_the_switch(
        seventeen_classes, tmp_path):
    folder, weights = seventeen_classes
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_job([
        "experiment=seed_finetune", f"data.path={folder}", f"model.weights={weights}", "debug=default",
        "train.freeze_base_epochs=1", "data.validation_fraction=0.25", f"tracking.uri={uri}"])
    assert cfg["model"]["head"] == "flatten" and cfg["data"]["augment"]["brightness_mode"] == "multiplicative"

    frozen = Watch(stop_after=1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, RunContext(output_dir=tmp_path / "first", callbacks=[frozen]))
    base = [k for k in frozen.start if k.split("/")[0] not in HEAD_LAYERS]
    head = [k for k in frozen.start if k.split("/")[0] in HEAD_LAYERS]
    assert len(head) == 2 and len(base) > 50
    for key in base:  # weights and batch-norm statistics alike
        np.testing.assert_array_equal(frozen.after[0][key], frozen.start[key], err_msg=key)
    assert all(np.abs(frozen.after[0][k] - frozen.start[k]).max() > 0 for k in head)

    unfrozen = Watch()
    result = train(cfg, RunContext(output_dir=tmp_path / "resumed", callbacks=[unfrozen]))
    assert result.status == "FINISHED"
    for key in base:  # resumed at the switch: every base tensor moves in the unfrozen epoch
        np.testing.assert_array_equal(unfrozen.start[key], frozen.after[0][key], err_msg=key)
        assert np.abs(unfrozen.after[-1][key] - unfrozen.start[key]).max() > 0, key

    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("seed_finetune").experiment_id])
    assert run.info.run_id == result.run_id and run.info.status == "FINISHED"
    params = run.data.params
    total = len(frozen.start)
    assert (int(params["init.loaded_tensors"]), int(params["init.fresh_tensors"])) == (total - 2, 2)
    assert int(params["init.loaded_parameters"]) == sum(v.size for k, v in frozen.start.items() if k not in head)
    assert params["data.value_range"] == "[-1.0, 1.0]" and params["builder.head"] == "flatten"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [0, 1]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"curves.png", "fresh_tensors.tsv", "history.csv"} <= artifacts
    fresh = open(client.download_artifacts(run.info.run_id, "fresh_tensors.tsv", str(tmp_path))).read()
    assert "predictions/kernel" in fresh and "predictions/bias" in fresh


@pytest.mark.parametrize("pipeline", ["tf_data", "memory"])
def test_pretrained_inputs_reach_the_model_in_minus_one_to_one(pipeline):
    cfg = {"source": "digits", "image_size": 8, "test_fraction": 0.2, "validation_fraction": 0.1, "split_seed": 0,
           "limit_train": 64, "limit_val": 32, "limit_test": 32, "cache": "none", "pipeline": pipeline,
           "augment": {"enabled": False}}
    plain = load_data(typed(Data, cfg), batch_size=64, seed=0)
    scaled = load_data(typed(Data, cfg), batch_size=64, seed=0, value_range=(-1.0, 1.0))
    for split in ("train", "validation", "test"):
        x0 = np.asarray(next(iter(getattr(plain, split)))[0])
        x1 = np.asarray(next(iter(getattr(scaled, split)))[0])
        assert x0.min() >= 0.0 and x0.max() <= 1.0 and x0.max() > 0.9
        np.testing.assert_allclose(x1, 2 * x0 - 1, atol=1e-6)
        assert x1.min() < -0.99


def only(**settings) -> Augment:
    """An augmentation with only these settings on (each other layer off)."""
    return Augment(**{**OFF, **settings})


OFF = {"rotation_degrees": 0, "shift": 0, "shear": 0, "zoom": 0, "horizontal_flip": False, "brightness": None}


def test_the_seeds_brightness_multiplies_and_its_shear_is_an_angle():
    [brightness] = augmentation_layers(only(brightness=[0.7, 1.3], brightness_mode="multiplicative"), seed=1)
    image = np.zeros((64, 4, 4, 1), "float32")
    image[:, :2] = 0.2
    image[:, 2:] = 0.4
    out = keras.ops.convert_to_numpy(brightness(image, training=True))
    factors = out[:, 0, 0, 0] / 0.2
    np.testing.assert_allclose(out[:, 2, 0, 0], 0.4 * factors, rtol=1e-5)  # one factor per image: multiplied
    assert 0.7 <= factors.min() < 0.8 and 1.2 < factors.max() <= 1.3
    [additive] = augmentation_layers(only(brightness=[0.7, 1.3]), seed=1)  # Keras' layer shifts instead
    shifted = keras.ops.convert_to_numpy(additive(image + 0.2, training=True))  # 0.4 and 0.6: no clipping
    np.testing.assert_allclose(shifted[:, 2, 0, 0] - shifted[:, 0, 0, 0], 0.2, atol=1e-5)

    [shear] = augmentation_layers(only(shear_degrees=10), seed=2)
    assert shear.x_factor == pytest.approx((-math.tan(math.radians(10)), math.tan(math.radians(10))))
    assert shear.y_factor == (0.0, 0.0)  # along x only, as ImageDataGenerator
    column = np.zeros((32, 41, 41, 1), "float32")
    column[:, :, 20] = 1.0  # a vertical line through the centre
    sheared = keras.ops.convert_to_numpy(shear(column, training=True))
    top, bottom = sheared[:, 0, :, 0].argmax(axis=1), sheared[:, -1, :, 0].argmax(axis=1)
    assert np.abs(top - bottom).max() <= math.ceil(40 * math.tan(math.radians(10))) + 1  # at most 10 degrees
    assert np.abs(top - bottom).max() >= 3  # it does shear
    assert (sheared[:, :, :, 0] > 0.5).sum(axis=(1, 2)).min() >= 35  # filled by `nearest`, the line not cut
