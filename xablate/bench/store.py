"""Parallel writers on one store: N processes logging like training jobs, at once, on each kind of store.

Each writer creates a run, then per "epoch" logs a batch of metrics, refreshes a tag (the heartbeat) and
every tenth epoch searches the experiment (what skip/resume lookups do), then ends its run. The benchmark
counts errors ("database is locked" included) and checks that every metric point arrived.

Store kinds: `sqlite` (one SQLite file, a fresh one per writer count) and `server+postgresql` (an MLflow
tracking server with proxied artifacts on a PostgreSQL of its own, both started in a temporary folder for the
measurement and stopped afterwards; each writer count logs to an experiment of its own). Without PostgreSQL's
server programs or its Python driver the server rows say so (`note`) instead of failing.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric

from xablate.bench.report import write_csv
from xablate.tracking.store import open_experiment

METRICS_PER_EPOCH = 10
SQLITE, SERVER = "sqlite", "server+postgresql"
STORES = (SQLITE, SERVER)
COLUMNS = ["store", "writers", "epochs_each", "runs", "errors", "locked_errors", "metric_points", "expected_points",
           "seconds", "batches_per_second", "first_error", "note"]


def _client_settings() -> None:
    """This process' and its writers' MLflow client settings (writers are spawned: they inherit os.environ).

    MLflow's telemetry thread pops _MLFLOW_TELEMETRY_SESSION_ID from os.environ when it cannot fetch its config
    (offline), while `requests` iterates os.environ for proxies: a request in flight then fails with
    KeyError('_MLFLOW_TELEMETRY_SESSION_ID') (MLflow 3.17). A client race, not the store's: telemetry is off here
    unless the caller set MLFLOW_DISABLE_TELEMETRY (=false to see the race)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # a server's "View run at" line per run


def _writer(uri: str, experiment_id: str, epochs: int, results) -> None:
    client = MlflowClient(uri)
    errors: list[str] = []
    try:
        run_id = client.create_run(experiment_id).info.run_id
    except Exception as error:  # no run: counted, and the round still ends (measure waits for every writer)
        results.put((None, [f"{type(error).__name__}: {error}"[:300]]))
        return
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
    try:
        client.set_terminated(run_id)
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}"[:300])
    results.put((run_id, errors))


def measure(uri: str, *, writers: int, epochs: int, experiment: str = "bench-store") -> dict:
    """One round: `writers` processes x `epochs` batches into `experiment`; returns the row the CSV gets."""
    _client_settings()
    client, experiment_id = open_experiment(uri, experiment)  # created once, before the writers
    context = multiprocessing.get_context("spawn")  # no fork after TensorFlow/MLflow threads have started
    results = context.Manager().Queue()
    start = time.perf_counter()
    processes = [context.Process(target=_writer, args=(uri, experiment_id, epochs, results)) for _ in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - start
    outcomes = [results.get() for _ in range(writers - sum(p.exitcode != 0 for p in processes))]
    outcomes += [(None, [f"writer process exited with code {p.exitcode}"]) for p in processes if p.exitcode != 0]
    errors = [e for _, errs in outcomes for e in errs]
    points = sum(len(client.get_metric_history(run_id, f"m{j}")) for run_id, _ in outcomes if run_id
                 for j in range(METRICS_PER_EPOCH))
    expected = writers * epochs * METRICS_PER_EPOCH
    return {
        "writers": writers, "epochs_each": epochs, "runs": sum(bool(r) for r, _ in outcomes), "errors": len(errors),
        "locked_errors": sum("locked" in e for e in errors), "metric_points": points, "expected_points": expected,
        "seconds": round(seconds, 2), "batches_per_second": round(writers * epochs / seconds, 1),
        "first_error": errors[0] if errors else "", "note": "",
    }


def server_unavailable() -> str:
    """Why this machine cannot run the server+postgresql store ("" when it can)."""
    from xablate.tracking.server import postgres_bin

    try:
        postgres_bin()
    except RuntimeError as error:
        return str(error)
    try:
        import psycopg  # noqa: F401  (SQLAlchemy's PostgreSQL driver: the server extra)
    except ImportError:
        return "PostgreSQL's Python driver is not installed (pip install -e '.[server]')"
    return ""


def skipped(store: str, writers: int, epochs: int, why: str) -> dict:
    return {column: "" for column in COLUMNS} | {"store": store, "writers": writers, "epochs_each": epochs,
                                                 "expected_points": writers * epochs * METRICS_PER_EPOCH,
                                                 "note": f"not measured: {why}"}


def measure_sqlite(folder: Path, writers: list[int], epochs: int, report) -> list[dict]:
    rows = []
    for count in writers:
        db = folder / f"store-{count}.db"
        db.unlink(missing_ok=True)
        rows.append(report(measure(f"sqlite:///{db.resolve()}", writers=count, epochs=epochs) | {"store": SQLITE}))
    return rows


def measure_server(folder: Path, writers: list[int], epochs: int, report) -> list[dict]:
    """The MLflow server on a PostgreSQL of its own, both started here and stopped before returning."""
    from xablate.tracking.server import LocalPostgres, start_server, stop_server

    if why := server_unavailable():
        return [report(skipped(SERVER, count, epochs, why)) for count in writers]
    # PostgreSQL's own folder: short (its socket path must stay under 108 characters) and reachable by the
    # `postgres` user it runs as under root
    pg_folder = Path(tempfile.mkdtemp(prefix="xablate-pg-"))
    os.chmod(pg_folder, 0o755)
    postgres, server = LocalPostgres(pg_folder / "pg"), None
    try:
        postgres.start()
        server, url = start_server(postgres.uri, folder / "server-artifacts", log=folder / "server.log")
        for _ in range(4):  # each gunicorn worker opens its database connection before the first round is timed
            MlflowClient(url).search_experiments()
        return [report(measure(url, writers=count, epochs=epochs, experiment=f"bench-store-{count}")
                       | {"store": SERVER}) for count in writers]
    finally:
        if server is not None:
            stop_server(server)
        postgres.stop()
        shutil.rmtree(pg_folder, ignore_errors=True)


def line(row: dict) -> str:
    head = f"{row['store']:17s} {row['writers']:>3} writers x {row['epochs_each']} epochs: "
    if row["note"]:
        return head + row["note"]
    return head + (f"{row['errors']} errors ({row['locked_errors']} locked), "
                   f"{row['metric_points']}/{row['expected_points']} points, {row['seconds']} s")


def failed(row: dict) -> bool:
    """A measured row with errors or lost points (a store kind not measured here is not a failure)."""
    return not row["note"] and bool(row["errors"] or row["metric_points"] != row["expected_points"])


def run(*, folder: Path, writers: list[int], epochs: int, out: Path, stores: list[str] | tuple = STORES) -> list[dict]:
    """Measures each writer count on each store kind (fresh stores in `folder`); writes `out` (CSV), prints the
    rows as they come."""
    _client_settings()  # before this process' first MLflow call
    def report(row: dict) -> dict:
        print(line(row), flush=True)
        return row

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    if SQLITE in stores:
        rows += measure_sqlite(folder, writers, epochs, report)
    if SERVER in stores:
        rows += measure_server(folder, writers, epochs, report)
    write_csv(rows, out, COLUMNS)
    return rows
