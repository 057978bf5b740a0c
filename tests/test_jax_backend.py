"""The builder is backend-agnostic: the mini model builds under KERAS_BACKEND=jax with the same parameter counts
and segment implementations, the debug model of each variant runs, and one trains a (jit-compiled) step. Training the whole run under JAX
through run.py: tests/test_backends_and_devices.py."""

import importlib.util
import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, numpy as np, keras
from xablate.models import build_from_preset, summarize_model
out = {"backend": keras.backend.backend()}
x = np.random.default_rng(0).uniform(size=(4, 16, 16, 3)).astype("float32")
for segments, act in [("depthwise", "none"), (4, "relu"), (128, "elu")]:
    model = build_from_preset("mini", segments=segments, intermediate_act=act)  # built, counted, not run:
    # op-by-op JAX runs each op as its own XLA computation, which takes minutes for mini's graph
    small = build_from_preset("debug", segments=segments, intermediate_act=act, input_shape=(16, 16, 3))
    y = np.asarray(small(x))
    loss = float("nan")
    if segments == 4:  # one jit-compiled train step
        small.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        loss = float(small.train_on_batch(x, np.arange(4)))
    impls = sorted({l.implementation for l in summarize_model(model).separable_layers})
    out[f"{segments}-{act}"] = [model.count_params(), list(y.shape), bool(np.isfinite(y).all()), loss, impls]
print("RESULT" + json.dumps(out))
"""


def run_under(backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def test_jax_is_installed():
    # in the [dev] extra (xablate[jax]), which CI installs: a missing JAX is a packaging break, not a skip
    assert importlib.util.find_spec("jax") is not None and importlib.util.find_spec("jaxlib") is not None


def test_mini_builds_and_trains_under_jax_with_the_same_parameter_counts():
    jax_result = run_under("jax")
    assert jax_result.pop("backend") == "jax"
    from xablate.models import build_from_preset  # the same variants under TensorFlow, in this process

    tensorflow_params = {f"{k}-{act}": build_from_preset("mini", segments=k, intermediate_act=act).count_params()
                         for k, act in [("depthwise", "none"), (4, "relu"), (128, "elu")]}
    assert tensorflow_params["depthwise-none"] == 737_034
    for key, (params, shape, finite, loss, impls) in jax_result.items():
        assert shape == [4, 10] and finite, key
        assert params == tensorflow_params[key], key
    assert 0 < jax_result["4-relu"][3] < 100  # a finite positive cross-entropy from the compiled step
    assert jax_result["4-relu"][4] == ["split"]
    assert jax_result["128-elu"][4] == ["depthwise", "depthwise_sum", "split"]
