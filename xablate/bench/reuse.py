"""Per-job overhead of a seed sweep in one process: the first job (builds, traces) against later ones (train the
kept, traced model of xablate/training/reuse.py).

`python run.py -m seed=0,...,n-1` runs with Hydra's basic launcher (one process, jobs one after another), on a
fresh store, traced (train.run_eagerly=false). From each run's own MLflow records:

    before_run      previous job's end (or the process launch, for the first) -> this run's creation
    to_first_epoch  previous job's end (or launch) -> its first epoch's start (the first epoch's end, from its
                    metric's timestamp, minus its epoch_seconds; the checkpoint save between makes it late, if
                    anything)
    start_overhead  previous job's end (or launch) -> the moment its first epoch would have started had the
                    steps been traced already: first epoch's end minus one steady epoch
    first_epoch_extra  first epoch minus the job's median later epoch (tracing and compiling)
    end_seconds     last epoch's end -> run's end (test evaluation, artifacts, closing)
    job_overhead    previous end -> this end, minus epochs x the job's steady epoch
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from mlflow import MlflowClient

from xablate.bench.overhead import _child_env, run_overrides
from xablate.paths import project_root

START_TARGET = 2.0  # seconds from a later job's start to its first epoch


def measure(extra: list[str], *, seeds: int, epochs: int, folder: Path, echo=print) -> list[dict]:
    """Runs the sweep and returns one row per job, in the order they ran."""
    import subprocess

    store = folder / "reuse.db"
    command = [sys.executable, str(project_root() / "run.py"), "-m", f"seed={','.join(map(str, range(seeds)))}",
               *run_overrides(store, epochs, extra), "train.run_eagerly=false", "hydra/launcher=basic",
               f"hydra.sweep.dir={folder / 'reuse_sweep'}"]
    launched = time.time()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=_child_env(), cwd=folder)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    rows = job_rows(MlflowClient(f"sqlite:///{store}"), launched)
    for row in rows:
        echo(f"reuse    job {row['job']} ({row['compiled']:6s}) to first epoch {row['to_first_epoch_seconds']:6.2f} s, "
             f"start overhead {row['start_overhead_seconds']:6.2f} s, "
             f"first epoch +{row['first_epoch_extra_seconds']:.2f} s, job overhead {row['job_overhead_seconds']:6.2f} s")
    return rows


def job_rows(client: MlflowClient, launched: float) -> list[dict]:
    """The per-job rows of the sweep's runs (children of its parent run), ordered by start."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = [r for r in client.search_runs(experiments, max_results=1000) if "mlflow.parentRunId" in r.data.tags]
    runs.sort(key=lambda r: r.info.start_time)
    rows, previous_end = [], launched
    for job, run in enumerate(runs):
        history = sorted(client.get_metric_history(run.info.run_id, "epoch_seconds"), key=lambda m: m.step)
        seconds = [m.value for m in history]
        steady = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
        start, end = run.info.start_time / 1000, run.info.end_time / 1000
        first_end, last_end = history[0].timestamp / 1000, history[-1].timestamp / 1000
        rows.append({
            "job": job,
            "seed": int(run.data.params["seed"]),
            "compiled": run.data.tags.get("xablate.compiled", "new"),
            "epochs": len(seconds),
            "steady_epoch_seconds": steady,
            "first_epoch_seconds": seconds[0],
            "first_epoch_extra_seconds": seconds[0] - steady,
            "before_run_seconds": start - previous_end,
            "to_first_epoch_seconds": first_end - seconds[0] - previous_end,
            "start_overhead_seconds": first_end - previous_end - steady,
            "end_seconds": end - last_end,
            "job_seconds": end - previous_end,
            "job_overhead_seconds": end - previous_end - len(seconds) * steady,
        })
        previous_end = end
    return rows


def summary(rows: list[dict]) -> dict:
    """The median later job against the first, whose times are taken from its run's creation (without the
    process start and imports, which only the first job of a process pays)."""
    first, later = rows[0], rows[1:]
    launch = first["before_run_seconds"]

    def med(key):
        return statistics.median(r[key] for r in later) if later else float("nan")

    return {
        "first_to_epoch": first["to_first_epoch_seconds"] - launch, "later_to_epoch": med("to_first_epoch_seconds"),
        "first_start": first["start_overhead_seconds"] - launch, "later_start": med("start_overhead_seconds"),
        "first_job": first["job_overhead_seconds"] - launch, "later_job": med("job_overhead_seconds"),
        "first_extra": first["first_epoch_extra_seconds"], "later_extra": med("first_epoch_extra_seconds"),
        "later_jobs": len(later), "reused": sum(r["compiled"] == "reused" for r in later),
    }
