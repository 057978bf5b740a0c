"""Harness overhead: a real xablate run against a bare `model.fit` of the same model on the same data, and
the fixed per-run costs (process start-up, MLflow calls).

The real run is `xablate.training.trainer.train` on the composed config (MLflow run, checkpoint every epoch,
divergence guard, heartbeat); its `images_per_second` is read back from MLflow. The bare side builds the same
model, data and optimizer with the trainer's own helpers and times `model.fit` with the same clock.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import keras
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from xablate.bench.common import EpochTimer, Measured, compile_like_trainer, joined, steady
from xablate.paths import project_root

OVERHEAD_TARGET = 0.97
# what every side of the comparison shares: the embedded default, no progress bar, no model artifact; force:
# the rounds train the same variant again instead of skipping it as done
BASE_OVERRIDES = ["model=mini", "data=digits", "train.verbose=0", "train.save_model=false", "study=bench",
                  "force=true"]
FINAL_METRICS = ("epochs_completed", "train_seconds", "best_val_accuracy", "best_epoch")
RUN_PY_EPOCHS = 2  # the subprocess measures start-up: a first epoch (tracing) and one more to compare it with


def run_overrides(store: Path, epochs: int, extra: list[str]) -> list[str]:
    return [*BASE_OVERRIDES, f"train.epochs={epochs}", f"tracking.uri=sqlite:///{store}", *extra]


def compile_like(model, run: Measured, data, epochs: int) -> None:
    compile_like_trainer(model, run.optim, batch_size=int(run.train.batch_size), train_size=data.train_size,
                         num_classes=data.num_classes, epochs=epochs, jit_compile=run.train.jit_compile,
                         run_eagerly=bool(run.train.run_eagerly))


def build_like_trainer(run: Measured, data):
    from xablate.models import build_xception

    keras.backend.clear_session()
    keras.utils.set_random_seed(run.seed)
    return build_xception(**run.builder(image_shape=data.image_shape, num_classes=data.num_classes))


def bare_side(run: Measured) -> dict:
    """`model.fit` of the run's model on the run's data: no MLflow, checkpoint, guard or heartbeat."""
    from xablate.data import load_data

    keras.backend.clear_session()
    data = load_data(run.data, batch_size=int(run.train.batch_size), seed=run.seed)
    model = build_like_trainer(run, data)
    epochs = int(run.train.epochs)
    compile_like(model, run, data, epochs)
    timer = EpochTimer()
    model.fit(data.train, validation_data=data.validation, epochs=epochs, callbacks=[timer], shuffle=False,
              verbose=0)
    return {"images": data.train_size, "ips": timer.images_per_second(data.train_size),
            "cpu_ips": timer.images_per_cpu_second(data.train_size), "epoch_seconds": timer.epoch_seconds,
            "first_batch_delay": timer.first_batch_delay}


def harness_side(run: Measured, output_dir: Path) -> dict:
    """A real run (of the plain config, as run.py hands it over); `images_per_second` as it logged to MLflow."""
    from xablate.training.trainer import RunContext, train

    timer = EpochTimer()  # after the run's own callbacks: its epoch ends after the checkpoint and MLflow log
    with contextlib.redirect_stdout(io.StringIO()):
        result = train(run.cfg, RunContext(output_dir=output_dir, callbacks=[timer]))
    client = MlflowClient(result.tracking_uri)

    def logged(key):
        return [m.value for m in sorted(client.get_metric_history(result.run_id, key), key=lambda m: m.step)]

    images = int(client.get_run(result.run_id).data.params["data.train_size"])
    return {"images": images, "ips": logged("images_per_second"), "cpu_ips": timer.images_per_cpu_second(images),
            "epoch_seconds": timer.epoch_seconds, "first_batch_delay": timer.first_batch_delay,
            "end_of_epoch": [mine - own for mine, own in zip(timer.epoch_seconds, logged("epoch_seconds"))],
            "run_id": result.run_id, "uri": result.tracking_uri, "output_dir": output_dir}


SIDES = ("bare", "harness")
SERIES = ("ips", "cpu_ips", "epoch_seconds")


def throughput(run: Measured, *, rounds: int, folder: Path, echo=print) -> tuple[list[dict], dict]:
    """Alternates the sides (bare first in odd rounds, the run first in even ones) for `rounds` rounds; one row
    per round and side, then one per side pooling every steady epoch. Returns the rows and the last run."""
    rows, last = [], None
    pooled = {side: {k: [] for k in SERIES} for side in SIDES}
    for round_ in range(1, rounds + 1):
        order = SIDES if round_ % 2 else SIDES[::-1]
        measured = {}
        for side in order:
            if side == "bare":
                measured[side] = bare_side(run)
            else:
                measured[side] = last = harness_side(run, folder / f"run-{round_}")
            for key in SERIES:
                pooled[side][key] += measured[side][key][1:]
            echo(f"round {round_} {side:8s} {steady(measured[side]['ips']):7.1f} images/s "
                 f"(epochs: {joined(measured[side]['ips'])}; per CPU-second: {steady(measured[side]['cpu_ips']):.1f})")
        stats = {side: _stats({k: measured[side][k][1:] for k in SERIES}) for side in SIDES}
        for side in SIDES:
            rows.append(_row(str(round_), side, order.index(side) + 1, measured[side], stats))
    stats = {side: _stats(pooled[side]) for side in SIDES}
    for side in SIDES:
        rows.append(_row("all", side, "", {"images": rows[0]["images"], "ips": [], "cpu_ips": []}, stats))
    return rows, last


def _stats(series: dict[str, list[float]]) -> dict[str, float]:
    """Over steady epochs: median and best images/s (load from elsewhere only ever slows an epoch down),
    median images per CPU-second, median epoch seconds."""
    return {"steady": statistics.median(series["ips"]), "fastest": max(series["ips"]),
            "cpu": statistics.median(series["cpu_ips"]), "epoch_seconds": statistics.median(series["epoch_seconds"]),
            "steady_epochs": len(series["ips"])}


def _row(round_: str, side: str, order, measured: dict, stats: dict[str, dict]) -> dict:
    own, bare = stats[side], stats["bare"]
    is_run = side == "harness"
    ratio = own["steady"] / bare["steady"]

    def versus(value):
        return round(value, 4) if is_run else ""

    return {
        "round": round_, "side": side, "order": order, "images": measured["images"],
        "epochs": len(measured["ips"]) or "", "steady_epochs": own["steady_epochs"],
        "first_epoch_images_per_second": round(measured["ips"][0], 1) if measured["ips"] else "",
        "epoch_images_per_second": joined(measured["ips"]),
        "epoch_images_per_cpu_second": joined(measured.get("cpu_ips", [])),
        "epoch_first_batch_delay_seconds": joined(measured.get("first_batch_delay", []), digits=3),
        "steady_images_per_second": round(own["steady"], 2),
        "fastest_images_per_second": round(own["fastest"], 2),
        "images_per_cpu_second": round(own["cpu"], 2),
        "steady_epoch_seconds": round(own["epoch_seconds"], 3),
        "ratio": versus(ratio),
        "ratio_fastest": versus(own["fastest"] / bare["fastest"]),
        "ratio_cpu": versus(own["cpu"] / bare["cpu"]),
        "target": OVERHEAD_TARGET if is_run else "",
        "meets_target": ratio >= OVERHEAD_TARGET if is_run else "",
    }


# --- fixed per-run costs ---------------------------------------------------------------------------------

def _cost(measurement: str, seconds: float, detail: str) -> dict:
    return {"measurement": measurement, "seconds": round(seconds, 3), "detail": detail}


def import_seconds() -> float:
    """Seconds a fresh interpreter spends importing the trainer (Keras/TensorFlow, MLflow, xablate)."""
    code = ("import time; t = time.perf_counter(); import xablate.training.trainer; "
            "print('SECONDS', time.perf_counter() - t)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env=_child_env())
    if proc.returncode != 0:
        raise RuntimeError(f"importing the trainer failed:\n{proc.stderr[-2000:]}")
    return float(next(line for line in proc.stdout.splitlines() if line.startswith("SECONDS")).split()[1])


def run_py_costs(extra: list[str], folder: Path, epochs: int = RUN_PY_EPOCHS) -> list[dict]:
    """`python run.py` with the measured run's overrides, as a subprocess on a fresh store: its wall time, what
    of it lies outside the epochs, and when its MLflow run and its first epoch started, from its own records."""
    store = folder / "run_py.db"
    command = [sys.executable, str(project_root() / "run.py"), *run_overrides(store, epochs, extra),
               f"hydra.run.dir={folder / 'run_py'}"]
    launched = time.time()
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=_child_env(), cwd=folder)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    client = MlflowClient(f"sqlite:///{store}")
    run = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1)[0]
    epochs = sorted(client.get_metric_history(run.info.run_id, "epoch_seconds"), key=lambda m: m.step)
    seconds = [m.value for m in epochs]
    first_epoch_start = epochs[0].timestamp / 1000 - seconds[0]
    return [
        _cost("run_py_wall", wall, f"`python run.py` with {len(seconds)} epochs, process start to exit"),
        _cost("run_py_epochs", sum(seconds), "sum of the run's logged epoch_seconds (training + validation)"),
        _cost("run_py_outside_epochs", wall - sum(seconds),
              "wall minus the epochs: start-up, per-epoch checkpoint + MLflow, closing the run, exit"),
        _cost("run_py_to_mlflow_run", run.info.start_time / 1000 - launched,
              "process start to the MLflow run's creation (imports, config, store, planning)"),
        _cost("run_py_to_first_epoch", first_epoch_start - launched,
              "process start to the first epoch's start (adds data and model building; from the epoch-0 "
              "metric's timestamp, so at most one checkpoint save late)"),
        _cost("run_py_first_epoch_extra", seconds[0] - statistics.median(seconds[1:]),
              "first epoch minus the median later epoch: tracing and compiling the train/test steps"),
    ]


def mlflow_costs(harness: dict, folder: Path, repeats: int = 3) -> list[dict]:
    """Replays the MLflow calls of the measured run (its params, tags, per-epoch metrics, artifacts) against
    the same SQLite store, `repeats` times, and times each kind of call (median)."""
    from xablate.tracking.previous_runs import IDENTITY_TAG, job_runs
    from xablate.tracking.store import open_experiment

    fresh = folder / "fresh.db"
    start = time.perf_counter()
    open_experiment(f"sqlite:///{fresh}", "bench")
    create_store = time.perf_counter() - start

    client, experiment_id = open_experiment(harness["uri"], "bench-replay")
    source = client.get_run(harness["run_id"])
    params = [Param(k, v) for k, v in source.data.params.items()]
    tags = {k: v for k, v in source.data.tags.items() if not k.startswith("mlflow.")}
    per_epoch = sorted(k for k in source.data.metrics if k not in FINAL_METRICS)
    epochs = int(source.data.metrics["epochs_completed"])
    artifacts = [Path(harness["output_dir"]) / a.path for a in client.list_artifacts(harness["run_id"])]
    times: dict[str, list[float]] = {k: [] for k in ("plan", "create_run", "params", "epoch", "heartbeat",
                                                     "artifacts", "finish")}

    def timed(kind, call):
        t0 = time.perf_counter()
        out = call()
        times[kind].append(time.perf_counter() - t0)
        return out

    for _ in range(repeats):
        timed("plan", lambda: job_runs(client, experiment_id, tags[IDENTITY_TAG]))
        run_id = timed("create_run", lambda: client.create_run(experiment_id, run_name=source.info.run_name,
                                                               tags=tags)).info.run_id
        timed("params", lambda: [client.log_batch(run_id, params=params[i:i + 100])
                                 for i in range(0, len(params), 100)])
        timed("heartbeat", lambda: client.set_tag(run_id, "xablate.heartbeat", str(int(time.time()))))
        for epoch in range(epochs):
            now = int(time.time() * 1000)
            timed("epoch", lambda: client.log_batch(run_id, metrics=[Metric(k, 1.0, now, epoch) for k in per_epoch]))
        timed("artifacts", lambda: [client.log_artifact(run_id, str(p)) for p in artifacts])
        timed("finish", lambda: (client.log_batch(run_id, metrics=[Metric(k, 1.0, 0, 0) for k in FINAL_METRICS]),
                                 client.set_terminated(run_id, status="FINISHED")))
    med = {k: statistics.median(v) for k, v in times.items()}
    fixed = sum(v for k, v in med.items() if k != "epoch")
    return [
        _cost("mlflow_create_store", create_store, "first use of a fresh SQLite store (tables, migrations)"),
        _cost("mlflow_plan", med["plan"], "search the study for runs of this identity (skip/resume)"),
        _cost("mlflow_create_run", med["create_run"], f"create the run with its {len(tags)} tags"),
        _cost("mlflow_log_params", med["params"], f"{len(params)} params in batches of 100"),
        _cost("mlflow_heartbeat", med["heartbeat"], "one heartbeat tag (every heartbeat_seconds)"),
        _cost("mlflow_log_epoch", med["epoch"], f"one epoch's {len(per_epoch)} metrics, one log_batch"),
        _cost("mlflow_log_artifacts", med["artifacts"], f"{len(artifacts)} artifacts: "
              + ", ".join(p.name for p in artifacts)),
        _cost("mlflow_finish", med["finish"], "final metrics + set_terminated"),
        _cost("mlflow_per_run", fixed + epochs * med["epoch"],
              f"all of the above but the store creation, for {epochs} epochs"),
    ]


def end_of_epoch_cost(harness: dict) -> dict:
    return _cost("run_end_of_epoch", steady(harness["end_of_epoch"]),
                 "in the measured run: epoch end to after its checkpoint save and MLflow log (median, later epochs)")


def fixed_costs(extra: list[str], harness: dict, folder: Path) -> list[dict]:
    """Per-run costs outside the training steps; `harness` is a measured in-process run (throughput())."""
    return [
        _cost("imports", import_seconds(), "fresh interpreter: import xablate.training.trainer "
              "(TensorFlow/Keras, MLflow)"),
        *run_py_costs(extra, folder),
        end_of_epoch_cost(harness),
        *mlflow_costs(harness, folder),
    ]


def _child_env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
