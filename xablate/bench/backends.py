"""One row per Keras backend: the run's model trained on the run's images held as numpy arrays, each backend
in its own interpreter (Keras fixes the backend when it is imported).

    KERAS_BACKEND=jax python -m xablate.bench.backends <job.json>     (what `measure` runs per backend)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from xablate.bench.common import joined, steady

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # backend -> module it needs
RESULT = "RESULT "


def installed(backend: str) -> bool:
    return importlib.util.find_spec(BACKENDS[backend]) is not None


def write_job(folder: Path, *, builder: dict, optim: dict, jit_compile, arrays: tuple[np.ndarray, np.ndarray],
              batch_size: int, epochs: int, seed: int) -> Path:
    """The worker's job file (and its arrays) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "arrays.npz", x=arrays[0], y=arrays[1])
    job = folder / "job.json"
    job.write_text(json.dumps({"builder": builder, "optim": optim, "jit_compile": jit_compile,
                               "arrays": str(folder / "arrays.npz"),
                               "batch_size": batch_size, "epochs": epochs, "seed": seed}))
    return job


def run_worker(job: Path, env: dict, timeout: float) -> tuple[dict | None, str]:
    """(the worker's result, "") in a fresh interpreter with `env`; (None, why) when it failed."""
    proc = subprocess.run([sys.executable, "-m", "xablate.bench.backends", str(job)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        return None, f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}"
    return json.loads(lines[-1][len(RESULT):]), ""


def measure(*, builder: dict, optim: dict, jit_compile, arrays: tuple[np.ndarray, np.ndarray], batch_size: int,
            epochs: int, seed: int, folder: Path, echo=print, timeout: float = 1800) -> list[dict]:
    """Runs the worker under every backend; backends whose module is missing get a row saying so."""
    job = write_job(folder, builder=builder, optim=optim, jit_compile=jit_compile, arrays=arrays,
                    batch_size=batch_size, epochs=epochs, seed=seed)
    rows = []
    for backend in BACKENDS:
        if not installed(backend):
            rows.append(_row(backend, "not installed", {}))
            echo(f"backend  {backend:10s} not installed")
            continue
        result, why = run_worker(job, {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"},
                                 timeout)
        if result is None:
            rows.append(_row(backend, f"failed: {why.split(': ', 1)[1]}"[:300], {}))
            echo(f"backend  {backend:10s} failed ({why})")
            continue
        rows.append(_row(backend, "ok", result))
        echo(f"backend  {backend:10s} {steady(result['ips']):7.1f} images/s ({result['version']})")
    base = next((r for r in rows if r["backend"] == "tensorflow" and r["status"] == "ok"), None)
    for row in rows:
        if base is not None and row["status"] == "ok":
            row["ratio_vs_tensorflow"] = round(row["steady_images_per_second"] / base["steady_images_per_second"], 4)
    return rows


def _row(backend: str, status: str, result: dict) -> dict:
    ips = result.get("ips", [])
    return {
        "backend": backend, "status": status, "version": result.get("version", ""),
        "device": result.get("device", ""), "parameters": result.get("parameters", ""),
        "images": result.get("images", ""), "epochs": len(ips),
        "first_epoch_images_per_second": round(ips[0], 1) if ips else "",
        "steady_images_per_second": round(steady(ips), 2) if ips else "",
        "epoch_images_per_second": joined(ips),
        "images_per_cpu_second": round(steady(result["cpu_ips"]), 2) if ips else "",
        "ratio_vs_tensorflow": "",
    }


def worker(job_file: str) -> dict:
    """Inside the backend's interpreter: build, compile like the trainer, fit the arrays, time each epoch."""
    import keras

    from xablate.bench.common import EpochTimer, compile_like_trainer
    from xablate.models import build_xception

    job = json.loads(Path(job_file).read_text())
    arrays = np.load(job["arrays"])
    x, y = arrays["x"], arrays["y"]
    batch, epochs = int(job["batch_size"]), int(job["epochs"])
    builder = {**job["builder"], "input_shape": tuple(job["builder"]["input_shape"])}
    keras.utils.set_random_seed(int(job["seed"]))
    model = build_xception(**builder)
    compile_like_trainer(model, job["optim"], batch_size=batch, train_size=len(x), num_classes=builder["classes"],
                         epochs=epochs, jit_compile=job["jit_compile"])
    timer = EpochTimer()
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, callbacks=[timer], verbose=0)
    return {"backend": keras.backend.backend(), "version": _version(keras.backend.backend()),
            "device": _device(keras.backend.backend()), "parameters": model.count_params(), "images": len(x),
            "ips": timer.images_per_second(len(x)), "cpu_ips": timer.images_per_cpu_second(len(x))}


def _version(backend: str) -> str:
    module = __import__(BACKENDS[backend])
    return f"{backend} {module.__version__}, keras {__import__('keras').__version__}"


def _device(backend: str) -> str:
    if backend == "jax":
        import jax

        return str(jax.devices()[0].platform).upper()
    if backend == "torch":
        import torch

        return "GPU" if torch.cuda.is_available() else "CPU"
    import tensorflow as tf

    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


if __name__ == "__main__":
    result = worker(sys.argv[1])
    if result["backend"] != os.environ.get("KERAS_BACKEND", result["backend"]):
        sys.exit(f"asked for KERAS_BACKEND={os.environ['KERAS_BACKEND']}, Keras runs {result['backend']}")
    print(RESULT + json.dumps(result), flush=True)
