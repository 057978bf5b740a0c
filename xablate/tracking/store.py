"""The MLflow store: which one, and creating its experiment safely when several processes start at once."""

from __future__ import annotations

import fcntl
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

from mlflow import MlflowClient

from xablate.paths import default_tracking_uri, project_root

PARENT_RUN_FILE = "mlflow_parent_run_id"  # in a multirun's sweep dir, written by the Hydra callback
SKIPPED_DIR = "skipped_runs"  # in a multirun's sweep dir: one file per skipped job, holding the run id
REACHABLE_TIMEOUT_SECONDS = 10


def resolve_tracking_uri(configured: str | None) -> str:
    """`tracking.uri` if set, else $MLFLOW_TRACKING_URI, else the project's SQLite store.

    A relative SQLite path (sqlite:///runs.db) is made absolute here, once, so that jobs started in other
    directories and the artifact folder beside the store all agree on one file.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    return uri


def check_reachable(uri: str) -> None:
    """Fails fast, before any data loads, when the tracking store cannot be used: an HTTP server that does
    not answer, or a SQLite file whose folder cannot be created or written."""
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=REACHABLE_TIMEOUT_SECONDS):
                return
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise ValueError(
                f"Received tracking.uri={uri!r}; allowed: a reachable MLflow server (GET {uri.rstrip('/')}/health "
                f"failed: {getattr(error, 'reason', error)}), a sqlite:/// path, or null for the project store."
            ) from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"Received tracking.uri={uri!r}; allowed: a SQLite file in a folder that can be "
                             f"created ({error.strerror}: {folder}).") from None
        if not os.access(folder, os.W_OK):
            raise ValueError(f"Received tracking.uri={uri!r}; allowed: a SQLite file in a writable folder "
                             f"({folder} is not writable).")
    elif "://" in uri and not uri.startswith(("file://", "databricks")):
        scheme = uri.split("://", 1)[0]
        if scheme not in ("postgresql", "mysql", "mssql") and not scheme.startswith(("postgresql+", "mysql+")):
            raise ValueError(f"Received tracking.uri={uri!r}; allowed: http(s)://<MLflow server>, sqlite:///<file>, "
                             f"a database URI (postgresql://, mysql://) or null for the project store.")


@contextmanager
def _store_lock(uri: str):
    """Serialise store creation and experiment lookup: a new SQLite store created by several processes at
    once fails in alembic, and mlflow.set_experiment is not process safe (mlflow#12259)."""
    if uri.startswith("sqlite:///"):
        lock_path = Path(uri[len("sqlite:///"):]).with_suffix(".lock")
    else:
        lock_path = project_root() / ".mlflow-client.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_experiment(uri: str, name: str) -> tuple[MlflowClient, str]:
    """A client on `uri` and the id of experiment `name`, created if missing.

    With a SQLite store, artifacts go beside it, to <store folder>/mlartifacts/<experiment> (the project's
    default store: <project>/mlartifacts/), not to wherever the command started; a server decides its own.
    """
    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return client, experiment.experiment_id
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts" / name).as_uri()
        return client, client.create_experiment(name, artifact_location=location)


def git_commit() -> str | None:
    """The commit of the checkout xablate runs from, or None outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
