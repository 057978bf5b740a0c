"""Parallel writers on one SQLite store: N processes logging like training jobs, at once.

Each writer creates a run, then per "epoch" logs a batch of metrics, refreshes a tag (the heartbeat) and
every tenth epoch searches the experiment (what skip/resume lookups do), then ends its run. The benchmark
counts errors ("database is locked" included) and checks that every metric point arrived.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric

from xablate.bench.report import write_csv
from xablate.tracking.store import open_experiment

METRICS_PER_EPOCH = 10


def _writer(uri: str, experiment_id: str, epochs: int, results) -> None:
    client = MlflowClient(uri)
    errors: list[str] = []
    run_id = client.create_run(experiment_id).info.run_id
    for epoch in range(epochs):
        try:
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(f"m{j}", float(epoch), now, epoch)
                                              for j in range(METRICS_PER_EPOCH)])
            client.set_tag(run_id, "xablate.heartbeat", str(int(time.time())))
            if epoch % 10 == 0:
                client.search_runs([experiment_id], max_results=100)
        except Exception as error:  # counted, not hidden
            errors.append(f"{type(error).__name__}: {error}"[:300])
    client.set_terminated(run_id)
    results.put((run_id, errors))


def measure(uri: str, *, writers: int, epochs: int) -> dict:
    """One round: `writers` processes x `epochs` batches; returns the row the CSV gets."""
    client, experiment_id = open_experiment(uri, "bench-store")  # created once, before the writers
    context = multiprocessing.get_context("spawn")  # no fork after TensorFlow/MLflow threads have started
    results = context.Manager().Queue()
    start = time.perf_counter()
    processes = [context.Process(target=_writer, args=(uri, experiment_id, epochs, results)) for _ in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - start
    outcomes = [results.get() for _ in range(writers)]
    errors = [e for _, errs in outcomes for e in errs]
    points = sum(len(client.get_metric_history(run_id, f"m{j}")) for run_id, _ in outcomes
                 for j in range(METRICS_PER_EPOCH))
    expected = writers * epochs * METRICS_PER_EPOCH
    return {
        "writers": writers, "epochs_each": epochs, "runs": len(outcomes), "errors": len(errors),
        "locked_errors": sum("locked" in e for e in errors), "metric_points": points, "expected_points": expected,
        "seconds": round(seconds, 2), "batches_per_second": round(writers * epochs / seconds, 1),
        "first_error": errors[0] if errors else "",
    }


def run(*, folder: Path, writers: list[int], epochs: int, out: Path) -> list[dict]:
    """Measures each writer count on a fresh store in `folder`; writes `out` (CSV) and prints the rows."""
    rows = []
    for count in writers:
        db = folder / f"store-{count}.db"
        db.unlink(missing_ok=True)
        row = measure(f"sqlite:///{db.resolve()}", writers=count, epochs=epochs)
        rows.append(row)
        print(f"{count:>3} writers x {epochs} epochs: {row['errors']} errors ({row['locked_errors']} locked), "
              f"{row['metric_points']}/{row['expected_points']} points, {row['seconds']} s", flush=True)
    write_csv(rows, out)
    return rows
