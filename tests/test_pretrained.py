"""Starting from pretrained weights: Keras' published HDF5 layout through `model.weights=imagenet` (a file the test
writes into a temporary Keras cache; no network), `.weights.h5` and `.keras` files, loaded by layer name and shape
into variants with exact counts, and a missing cache file refused before any run."""

import h5py
import keras
import numpy as np
import pytest
from mlflow import MlflowClient

from xablate.models import build_from_preset, preset_kwargs
from xablate.models.pretrained import IMAGENET_FILE, family_builds, load_pretrained, read_weights, weights_file

SHAPE = (16, 16, 3)


def debug_model(**kwargs):
    return build_from_preset("debug", input_shape=SHAPE, classes=10, **kwargs)


def load(model, path, **kwargs):
    """As the trainer loads: a bare Keras 3 file is named through builds of the variant's family."""
    return load_pretrained(model, path, family_builds(model, preset_kwargs("debug", input_shape=SHAPE, classes=10,
                                                                           **kwargs)))


def separable_layers(model):
    return [layer for layer in model.layers if "sepconv" in layer.name and not layer.name.endswith(("_bn", "_act"))]


def write_published_layout(model, path):
    """Keras' published (Keras 2) HDF5 weights layout: root attribute layer_names; per layer a group whose
    attribute weight_names lists its datasets in order."""
    with h5py.File(path, "w") as f:
        named = [layer for layer in model.layers if layer.weights]
        f.attrs["layer_names"] = [layer.name.encode() for layer in named]
        for layer in named:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0".encode() for w in layer.weights]
            group.attrs["weight_names"] = names
            for name, weight in zip(names, layer.weights):
                group.create_dataset(name.decode(), data=keras.ops.convert_to_numpy(weight))


@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    model = debug_model()
    for weight in model.weights:  # values no fresh initialisation would give
        weight.assign(np.random.default_rng(len(weight.name)).normal(size=weight.shape).astype("float32"))
    model.save_weights(folder / "baseline.weights.h5")
    model.save(folder / "baseline.keras")
    write_published_layout(model, folder / IMAGENET_FILE)
    return folder, model


def test_the_published_layout_loads_through_imagenet_from_keras_cache(baseline_file, tmp_path, monkeypatch):
    folder, baseline = baseline_file
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / IMAGENET_FILE).write_bytes((folder / IMAGENET_FILE).read_bytes())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    path = weights_file("imagenet")
    assert path == tmp_path / "models" / IMAGENET_FILE
    model = debug_model()
    report = load_pretrained(model, path)
    assert len(report.loaded) == len(model.weights) and report.fresh == []
    for mine, theirs in zip(model.weights, baseline.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs))


def test_every_tensor_loads_into_the_intermediate_activation_variant(baseline_file):
    folder, baseline = baseline_file
    model = debug_model(intermediate_act="relu")
    report = load(model, folder / "baseline.weights.h5", intermediate_act="relu")
    assert len(report.loaded) == len(model.weights) == len(baseline.weights) and report.fresh == []
    assert report.loaded_parameters == model.count_params()
    # the depthwise kernel (3, 3, C, 1) arrives as the grouped kernel of C segments (3, 3, 1, C), values in order
    layer = model.get_layer("block2_sepconv1")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer.spatial_kernel).ravel(),
        keras.ops.convert_to_numpy(baseline.get_layer("block2_sepconv1").depthwise_kernel).ravel())


def test_grouped_spatial_kernels_stay_fresh_at_four_segments(baseline_file):
    folder, _ = baseline_file
    model = debug_model(segments=4)
    report = load(model, folder / "baseline.weights.h5", segments=4)
    spatial = {f"{layer.name}/spatial_kernel" for layer in separable_layers(model)}
    assert {name for name, _, _ in report.fresh} == spatial
    assert len(report.loaded) == len(model.weights) - len(spatial)
    assert report.loaded_parameters == model.count_params() - sum(
        int(np.prod(layer.spatial_kernel.shape)) for layer in separable_layers(model))


def test_a_model_without_shortcuts_loads_everything_it_has(baseline_file):
    folder, baseline = baseline_file
    model = debug_model(residual=False)
    report = load(model, folder / "baseline.weights.h5", residual=False)
    assert len(report.loaded) == len(model.weights) and report.fresh == []
    shortcuts = {layer.name for layer in baseline.layers if layer.name.startswith(("conv2d", "batch_normalization"))}
    assert shortcuts and set(report.unused_layers) == shortcuts


def test_other_classes_leave_the_classifier_fresh_and_keras_archives_load_the_same(baseline_file):
    folder, _ = baseline_file
    model = build_from_preset("debug", input_shape=SHAPE, classes=17)
    report = load_pretrained(model, folder / "baseline.keras")
    assert [name for name, _, _ in report.fresh] == ["predictions/kernel", "predictions/bias"]
    assert len(report.loaded) == len(model.weights) - 2
    named = read_weights(folder / "baseline.weights.h5", family_builds(debug_model(), preset_kwargs(
        "debug", input_shape=SHAPE, classes=10)))
    assert read_weights(folder / "baseline.keras").keys() == named.keys()
    assert "block2_sepconv1" in named and "predictions" in named


def test_a_file_that_matches_nothing_is_an_error(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="unrelated")])
    write_published_layout(other, tmp_path / "other.h5")
    with pytest.raises(ValueError, match="no tensor of it matches this model"):
        load(debug_model(), tmp_path / "other.h5")
    other.save_weights(tmp_path / "other.weights.h5")  # a Keras 3 file of another architecture
    with pytest.raises(ValueError, match="its layers did not match this model's architecture"):
        load(debug_model(), tmp_path / "other.weights.h5")


@pytest.mark.slow
def test_imagenet_without_the_cached_file_or_network_fails_before_any_run(tmp_path, monkeypatch):
    from helpers import run_py, sqlite_uri

    uri = sqlite_uri(tmp_path)
    proc = run_py("debug=default", "model.weights=imagenet", f"tracking.uri={uri}", cwd=tmp_path,
                  env={"KERAS_HOME": str(tmp_path / "empty_keras_home")})
    assert proc.returncode != 0
    assert f"{IMAGENET_FILE} is not in Keras' cache ({tmp_path / 'empty_keras_home' / 'models'})" in proc.stderr
    experiment = MlflowClient(uri).get_experiment_by_name("default")
    assert experiment is None or MlflowClient(uri).search_runs([experiment.experiment_id]) == []
