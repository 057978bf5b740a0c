"""The builder is backend-agnostic: each variant builds under KERAS_BACKEND=jax with the parameter counts and
per-layer segment implementations it has under TensorFlow, runs, and one trains a (jit-compiled) step. Training the whole run under JAX
through run.py: tests/test_backends_and_devices.py."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # builds every variant under two backends in subprocesses (about a minute)

SCRIPT = r"""
import json, numpy as np, keras
from xablate.models import build_from_preset, summarize_model
out = {"backend": keras.backend.backend()}
x = np.random.default_rng(0).uniform(size=(4, 16, 16, 3)).astype("float32")
for segments, act in VARIANTS:
    model = build_from_preset("debug", segments=segments, intermediate_act=act, input_shape=(16, 16, 3))
    y = np.asarray(model(x))
    loss = float("nan")
    if segments == 4:  # one jit-compiled train step
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        loss = float(model.train_on_batch(x, np.arange(4)))
    layers = summarize_model(model).separable_layers
    out[f"{segments}-{act}"] = [model.count_params(), list(y.shape), bool(np.isfinite(y).all()), loss,
                                [l.implementation for l in layers], [l.segments for l in layers]]
print("RESULT" + json.dumps(out))
"""


# the debug preset (every block kind; built op by op, as JAX does outside jit, mini takes minutes): a segment
# count that divides its layers, one that does not (rounded per layer, so split and depthwise_sum appear), depthwise
VARIANTS = [("depthwise", "none"), (4, "relu"), (6, "elu")]
SCRIPT = SCRIPT.replace("VARIANTS", repr(VARIANTS))


def run_under(backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def test_jax_is_installed():
    # in the [dev] extra (xablate[jax]), which CI installs: a missing JAX is a packaging break, not a skip
    assert importlib.util.find_spec("jax") is not None and importlib.util.find_spec("jaxlib") is not None


def test_every_variant_builds_and_trains_under_jax_as_under_tensorflow():
    jax_result = run_under("jax")
    assert jax_result.pop("backend") == "jax"
    from xablate.models import build_from_preset, summarize_model  # the same variants under TensorFlow, here

    for segments, act in VARIANTS:
        model = build_from_preset("debug", segments=segments, intermediate_act=act, input_shape=(16, 16, 3))
        params, shape, finite, loss, impls, per_layer = jax_result[f"{segments}-{act}"]
        assert params == model.count_params(), (segments, act)
        assert per_layer == [l.segments for l in summarize_model(model).separable_layers], (segments, act)
        assert shape == [4, 10] and finite, (segments, act)
    assert 0 < jax_result["4-relu"][3] < 100  # a finite positive cross-entropy from the compiled step
    # the implementation is the backend's own pick (xablate.models.segment_conv); under JAX on CPU:
    assert set(jax_result["depthwise-none"][4]) == {"keras_separable"}
    assert jax_result["4-relu"][4] == ["depthwise_sum"] * 3 + ["split"] * 10
    assert set(jax_result["6-elu"][4]) == {"depthwise", "depthwise_sum", "split"}
