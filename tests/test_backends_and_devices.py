"""The same training under JAX without TensorFlow, data parallelism over 2 logical CPUs, and mixed precision."""

import pytest
import math
import subprocess
import sys
import textwrap

from mlflow import MlflowClient

from helpers import ROOT, clean_env, runs_of, sqlite_uri

# Runs run.py as `python run.py ...` would, after making `import tensorflow` fail, as on the GPU machine.
WITHOUT_TENSORFLOW = textwrap.dedent("""
    import runpy, sys

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: this machine has no TensorFlow)")

    sys.meta_path.insert(0, NoTensorFlow())
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        print("tensorflow imported:", "tensorflow" in sys.modules)
""")


@pytest.mark.slow
def test_jax_backend_trains_without_tensorflow(tmp_path):
    """As on the GPU machine: JAX, no TensorFlow (the in-memory pipeline), one process for the sweep's jobs. The
    second and third jobs train the first job's kept model (xablate/training/reuse.py), and seed 1 again gives
    seed 1's numbers exactly, with Adam, EMA, dropout and augmentation (every value its seed decides)."""
    uri = sqlite_uri(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORFLOW, str(ROOT / "run.py"), "-m", "seed=1,0,1", "force=true",
         "backend=jax", "debug=default", "optim.ema_momentum=0.9", "optim.dropout=0.5", "data.augment.enabled=true",
         "study=jax", f"tracking.uri={uri}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tensorflow imported: False" in proc.stdout
    runs = runs_of(uri, "jax", role="job")
    assert [(r.data.params["seed"], r.data.tags["xablate.compiled"], r.info.status) for r in runs] == [
        ("1", "new", "FINISHED"), ("0", "reused", "FINISHED"), ("1", "reused", "FINISHED")]
    run = runs[0]
    assert run.data.tags["xablate.backend"] == "jax"
    assert run.data.params["backend"] == "jax"
    assert run.data.params["data.pipeline"] == "auto"
    assert int(run.data.params["model.total_params"]) > 0
    client = MlflowClient(uri)

    def numbers(r):
        history = {key: [(m.step, m.value) for m in sorted(client.get_metric_history(r.info.run_id, key),
                                                             key=lambda m: m.step)]
                   for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
        return history, {k: v for k, v in r.data.metrics.items() if k.startswith("test_")}

    fresh, other, reused = (numbers(r) for r in runs)
    assert [step for step, _ in fresh[0]["val_accuracy"]] == [0, 1]
    assert reused == fresh  # bit for bit: every epoch's losses and accuracies, the test metrics
    assert other[0]["loss"] != fresh[0]["loss"]  # the seed matters


MIRRORED = textwrap.dedent("""
    import sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from xablate.training.trainer import RunContext, train

    with initialize_config_dir(config_dir=sys.argv[1] + "/conf", version_base="1.3"):
        cfg = compose("config", overrides=["debug=default", "train.data_parallel=true", "study=mirrored",
                                           "tracking.uri=" + sys.argv[2]])
    result = train(OmegaConf.to_container(cfg, resolve=True), RunContext(output_dir=sys.argv[3]))
    print("status", result.status)
""")


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = subprocess.run([sys.executable, "-c", MIRRORED, str(ROOT), uri, str(tmp_path / "out")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env={"PATH": "/usr/bin:/bin",
                                                                           "HOME": str(tmp_path),
                                                                           "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "status FINISHED" in proc.stdout
    (run,) = runs_of(uri, "mirrored", role="job")
    assert run.data.params["train.replicas"] == "2"
    assert run.data.params["train.batch_size"] == "64"  # global: 32 per replica
    assert run.data.metrics["epochs_completed"] == 2


BF16_JOB = """
import json, sys
from xablate.onednn import apply
apply("auto", "bf16")  # before TensorFlow loads, as run.py does
import keras
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from xablate.training.trainer import RunContext, train

class Inspect(keras.callbacks.Callback):
    seen = {}

    def on_train_batch_end(self, batch, logs=None):
        if self.seen:
            return
        model = self.model
        self.seen.update(
            policy=model.dtype_policy.name,
            compute_dtypes=sorted({layer.compute_dtype for layer in model.layers
                                   if layer.weights and layer.name != "predictions"}),
            variable_dtypes=sorted({v.dtype for v in model.weights}),
            predictions_compute_dtype=model.get_layer("predictions").compute_dtype,
            output_dtype=keras.backend.standardize_dtype(model.outputs[0].dtype),
            jit_compile=model.jit_compile,
            train_function=model.train_function is not None,
            loss=float(logs["loss"]),
        )

root, uri, out = sys.argv[1:]
with initialize_config_dir(config_dir=root + "/conf", version_base="1.3"):
    cfg = compose("config", overrides=["debug=default", "train.precision=bf16", "train.jit_compile=true",
                                       "train.run_eagerly=false", "study=bf16", "tracking.uri=" + uri])
result = train(OmegaConf.to_container(cfg, resolve=True), RunContext(output_dir=out, callbacks=[Inspect()]))
print("RESULT " + json.dumps({"status": result.status, "run_id": result.run_id, "history": result.history,
                              "seen": Inspect.seen, "policy_after": keras.config.dtype_policy().name}))
"""


@pytest.mark.slow
def test_mixed_bfloat16_with_xla(tmp_path):
    """What the model and its train step actually use, seen from inside the run, not the config passed in. In
    its own interpreter: oneDNN's state is per process, and bf16 needs it off on AVX-512 CPUs (xablate/onednn.py)
    where the tests' own process caps it for fp32."""
    import json

    from xablate import onednn

    uri = sqlite_uri(tmp_path)
    env = {k: v for k, v in clean_env().items() if k not in (onednn.ISA_VAR, onednn.OPTS_VAR)}
    proc = subprocess.run([sys.executable, "-c", BF16_JOB, str(ROOT), uri, str(tmp_path / "out")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["status"] == "FINISHED"
    seen = result["seen"]
    assert seen["policy"] == "mixed_bfloat16"
    assert seen["compute_dtypes"] == ["bfloat16"]  # every layer with weights but the classifier computes in bf16
    assert seen["variable_dtypes"] == ["float32"]  # ... on float32 variables
    assert seen["predictions_compute_dtype"] == "float32" and seen["output_dtype"] == "float32"
    assert seen["jit_compile"] is True  # on a CPU-only machine Keras' "auto" would have chosen False
    assert seen["train_function"]
    assert math.isfinite(seen["loss"])
    assert len(result["history"]) == 2 and all(math.isfinite(row["loss"]) for row in result["history"])
    assert result["policy_after"] == "float32"  # the global policy is restored after the run
    run = MlflowClient(uri).get_run(result["run_id"])
    assert run.data.params["train.precision"] == "bf16"
    assert run.data.tags["xablate.onednn"] == onednn.wanted_env("auto", environ={}, precision="bf16")[1]
    assert all(math.isfinite(m.value) for m in MlflowClient(uri).get_metric_history(result["run_id"], "loss"))
