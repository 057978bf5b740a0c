"""`xablate bench onednn`: what each `train.onednn` state costs in training throughput, side by side.

The run's model (default: the mini preset on digits) is trained on the run's images held as arrays, each state
in its own interpreter (oneDNN's settings are read once per process), the states alternating round by round so
that load from other processes falls on each alike. The images are cut to a multiple of twice the batch size:
every batch is even, so `on` runs without the odd-batch crash it has on AVX-512 CPUs (xablate/onednn.py).

    on    TensorFlow's default: oneDNN with every instruction set of the CPU
    avx2  oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2): what train.onednn=auto picks on AVX-512 CPUs
    off   no oneDNN (TF_ENABLE_ONEDNN_OPTS=0)
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import numpy as np

from xablate.bench.backends import run_worker, write_job
from xablate.bench.common import steady
from xablate.onednn import ISA_VAR, OPTS_VAR, cpu_model, wanted_env

STATES = ("on", "avx2", "off")
FIELDS = ("state", "round", "status", "environment", "steady_images_per_second", "images_per_cpu_second",
          "ratio_vs_on", "cpu_ratio_vs_on", "images", "batch_size", "epochs", "cpu")


def measure(*, builder: dict, optim: dict, arrays: tuple[np.ndarray, np.ndarray], batch_size: int, epochs: int,
            rounds: int, seed: int, folder: Path, echo=print, timeout: float = 1800) -> list[dict]:
    """One row per state and round, then one summary row per state (median over rounds, ratio to `on`)."""
    x, y = even_batches(*arrays, batch_size)
    job = write_job(folder, builder=builder, optim=optim, jit_compile="auto", arrays=(x, y), batch_size=batch_size,
                    epochs=epochs, seed=seed)
    rows = []
    for round_ in range(1, rounds + 1):
        for state in STATES:
            result = _train(state, job, timeout)
            row = {"state": state, "round": round_, "environment": _env_text(state), "images": len(x),
                   "batch_size": batch_size, "epochs": epochs, "cpu": cpu_model()}
            if "error" in result:
                rows.append({**row, "status": f"failed: {result['error']}"[:300]})
                echo(f"onednn   {state:5s} round {round_}: failed ({result['error']})")
                continue
            rows.append({**row, "status": "ok", "steady_images_per_second": round(steady(result["ips"]), 2),
                         "images_per_cpu_second": round(steady(result["cpu_ips"]), 2)})
            echo(f"onednn   {state:5s} round {round_}: {steady(result['ips']):7.1f} images/s "
                 f"({steady(result['cpu_ips']):.1f} per CPU second)")
    return [{field: row.get(field, "") for field in FIELDS} for row in rows + summary(rows)]


def summary(rows: list[dict]) -> list[dict]:
    """Per state: the medians over rounds of the steady images per wall second and per CPU second (the
    noise-robust one on a shared machine), each with its ratio to `on` over the same rounds."""
    medians: dict[str, dict[str, float]] = {}
    for state in STATES:
        done = [r for r in rows if r["state"] == state and r.get("status") == "ok" and r["round"] != "median"]
        if done:
            medians[state] = {key: statistics.median(r[key] for r in done)
                              for key in ("steady_images_per_second", "images_per_cpu_second")}
    out = []
    for state, value in medians.items():
        base = medians.get("on")
        out.append({"state": state, "round": "median", "environment": _env_text(state), "status": "ok",
                    **{key: round(v, 2) for key, v in value.items()},
                    "ratio_vs_on": round(value["steady_images_per_second"] / base["steady_images_per_second"], 3)
                    if base else "",
                    "cpu_ratio_vs_on": round(value["images_per_cpu_second"] / base["images_per_cpu_second"], 3)
                    if base else ""})
    return out


def even_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The first images up to a multiple of 2 x batch_size (at least one pair of full batches)."""
    keep = (len(x) // (2 * batch_size)) * 2 * batch_size
    if keep == 0:
        raise ValueError(f"Received {len(x)} training images with batch_size={batch_size}; allowed: at least "
                         f"{2 * batch_size} images (two full batches).")
    return x[:keep], y[:keep]


def _env_text(state: str) -> str:
    env, _ = wanted_env(state)
    return " ".join(f"{k}={v}" for k, v in env.items()) or "(TensorFlow's default)"


def _train(state: str, job: Path, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (ISA_VAR, OPTS_VAR)}
    env.update({**wanted_env(state)[0], "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"})
    result, why = run_worker(job, env, timeout)
    return result if result is not None else {"error": why}
