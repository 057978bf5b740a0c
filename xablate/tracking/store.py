"""The MLflow store: which one, and creating its experiment safely when several processes start at once."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from xablate.paths import cache_folder, default_tracking_uri, project_root

if TYPE_CHECKING:
    from mlflow import MlflowClient

PARENT_RUN_FILE = "mlflow_parent_run_id"  # in a multirun's sweep dir, written by the Hydra callback
SKIPPED_DIR = "skipped_runs"  # in a multirun's sweep dir: one file per skipped job, holding the run id
REACHABLE_TIMEOUT_SECONDS = 10


def resolve_tracking_uri(configured: str | None) -> str:
    """`tracking.uri` if set, else $MLFLOW_TRACKING_URI, else the project's SQLite store.

    A relative SQLite path (sqlite:///runs.db) is made absolute here, once, so that jobs started in other
    directories and the artifact folder beside the store all agree on one file; a plain file path
    (results/store/mlflow.db) means the SQLite file it names.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if "://" not in uri and not uri.startswith("databricks") and not Path(uri).expanduser().is_dir():
        uri = f"sqlite:///{Path(uri).expanduser().resolve()}"  # a plain path: the SQLite file it names
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
        check_store_file(uri, write=True)
    elif "://" in uri and not uri.startswith(("file://", "databricks")):
        scheme = uri.split("://", 1)[0]
        if scheme not in ("postgresql", "mysql", "mssql") and not scheme.startswith(("postgresql+", "mysql+")):
            raise ValueError(f"Received tracking.uri={uri!r}; allowed: http(s)://<MLflow server>, sqlite:///<file>, "
                             f"a database URI (postgresql://, mysql://) or null for the project store.")


MLFLOW_TABLES = {"experiments", "runs", "alembic_version"}


def store_missing(uri: str) -> bool:
    """A SQLite store whose file is not there (reading it through MLflow would create it)."""
    return uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file()


def check_store_file(uri: str, write: bool = False) -> None:
    """ValueError in one line for a SQLite store that exists but is not one xablate can use: not a database, a
    database of something else (MLflow would add its tables to it), or (`write`) a file it cannot write."""
    if not uri.startswith("sqlite:///"):
        return
    import sqlite3

    path = Path(uri[len("sqlite:///"):])
    if not path.exists() or path.stat().st_size == 0:
        return
    if not os.access(path, os.R_OK):
        raise ValueError(f"Received tracking.uri={uri!r}; allowed: a store this user can read ({path} is not "
                         f"readable).")
    try:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=60) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise ValueError(f"Received tracking.uri={uri!r}; allowed: an MLflow store, but {path} is not a SQLite "
                         f"database ({error}).") from None
    if tables and not MLFLOW_TABLES <= tables:
        raise ValueError(f"Received tracking.uri={uri!r}; allowed: an MLflow store, but {path} is another "
                         f"database (tables: {', '.join(sorted(tables)[:5])}{', …' if len(tables) > 5 else ''}); "
                         f"it is left as it is.")
    if write and not os.access(path, os.W_OK):
        raise ValueError(f"Received tracking.uri={uri!r}; allowed: a store this user can write ({path} is "
                         f"read-only).")


def check_store_to_read(uri: str, setting: str = "--uri") -> None:
    """ValueError in one line for a store a reading command cannot use: a SQLite file that does not exist
    (reading would create an empty one), or one check_store_file refuses."""
    if store_missing(uri):
        raise ValueError(f"Received {setting}={uri!r}; allowed: an existing store ({uri[len('sqlite:///'):]} does "
                         f"not exist).")
    try:
        check_store_file(uri)
    except ValueError as error:
        raise ValueError(str(error).replace("tracking.uri=", f"{setting}=", 1)) from None


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


# MLflow 3's UI opens an experiment on its GenAI overview unless it is tagged as model development
EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
ARTIFACTS_FOLDER = "mlartifacts"  # beside a SQLite store: <store folder>/mlartifacts/<experiment>/<run>/artifacts


def open_experiment(uri: str, name: str) -> tuple[MlflowClient, str]:
    """A client on `uri` and the id of experiment `name`, created if missing, tagged for model training.

    With a SQLite store, artifacts go beside it, to <store folder>/mlartifacts/<experiment> (the project's
    default store: <project>/mlartifacts/), not to wherever the command started; a server decides its own.
    A store that was moved or cloned elsewhere is pointed at its own artifacts first (`relocate_artifacts`).
    """
    from mlflow import MlflowClient

    with _store_lock(uri):
        ensure_store(uri)
        client = MlflowClient(tracking_uri=uri)
        relocate_artifacts(uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = None
            if uri.startswith("sqlite:///"):
                location = (Path(uri[len("sqlite:///"):]).parent / ARTIFACTS_FOLDER / name).as_uri()
            experiment_id = client.create_experiment(name, artifact_location=location,
                                                     tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
            return client, experiment_id
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
        return client, experiment.experiment_id


def ensure_store(uri: str) -> None:
    """A SQLite store that does not exist yet, created as a copy of an empty store at this MLflow's schema instead
    of by MLflow's own migrations (0.06 s instead of 2.5 s: a sweep's first job, every test's fresh store). The
    empty store is made once per MLflow version, by MLflow, under the user's cache folder; the copy's Default
    experiment points where MLflow would have pointed it (./mlruns/0 from here). Other stores: nothing to do."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    if path.exists():
        return
    import shutil
    import sqlite3
    import time

    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    shutil.copyfile(_empty_store(), partial)
    try:
        now = int(time.time() * 1000)
        with sqlite3.connect(partial) as db:
            db.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                       "WHERE experiment_id = 0",
                       (append_to_uri_path(resolve_uri_if_local(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH), "0"), now, now))
        db.close()
        os.link(partial, path)  # never over a store another process made meanwhile
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)


def _empty_store() -> Path:
    """An empty MLflow store at the installed MLflow's schema, made by MLflow once and kept in the cache folder."""
    import tempfile

    import mlflow
    from mlflow import MlflowClient

    folder = cache_folder()
    template = folder / f"mlflow-{mlflow.__version__}-empty.db"
    if template.is_file():
        return template
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        made = Path(scratch) / "mlflow.db"
        MlflowClient(f"sqlite:///{made}").search_experiments()  # MLflow creates every table and migrates
        os.replace(made, template)  # whole or not at all, whichever process gets there first
    return template


def tag_experiments_for_training(uri: str) -> int:
    """Tags every experiment of the store as model development (the UI then opens on its runs); how many
    needed it."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    changed = 0
    for experiment in client.search_experiments():
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
            changed += 1
    return changed


def relocate_artifacts(uri: str, folder: Path | None = None) -> int:
    """Points a moved SQLite store at the artifacts beside it (or at `folder`: a copy served in place of a
    committed store reads the committed artifacts); how many experiments it changed.

    MLflow records absolute artifact locations (file:///…/mlartifacts/<experiment>, and each run's
    …/<run>/artifacts). A store copied, cloned or committed elsewhere keeps its artifacts beside it, so every
    location xablate gave (ending in /mlartifacts/<experiment>) that is not under this store's own folder is
    rewritten, for the experiment and its runs, to <store folder>/mlartifacts/<experiment>. Other locations
    (a server's, one set by hand) are left alone. Runs on a store that did not move change nothing.
    """
    if not uri.startswith("sqlite:///"):
        return 0
    import sqlite3

    path = Path(uri[len("sqlite:///"):])
    if not path.exists():
        return 0
    here = (Path(folder).resolve() if folder else path.parent / ARTIFACTS_FOLDER).as_uri()
    with sqlite3.connect(path, timeout=60) as db:
        try:
            rows = db.execute("SELECT experiment_id, artifact_location FROM experiments").fetchall()
        except sqlite3.OperationalError:  # not created yet by MLflow
            return 0
        changed = 0
        for experiment_id, location in rows:
            old_root, _, folder = (location or "").rpartition("/")
            if not old_root.endswith("/" + ARTIFACTS_FOLDER) or not old_root.startswith("file://") or old_root == here:
                continue
            db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                       (f"{here}/{folder}", experiment_id))
            db.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                       "WHERE experiment_id = ? AND artifact_uri LIKE ? || '%'",
                       (here, len(old_root) + 1, experiment_id, old_root + "/"))
            changed += 1
    return changed


def git_commit() -> str | None:
    """The commit of the checkout xablate runs from, or None outside git (what else it ran:
    xablate.tracking.provenance)."""
    from xablate.tracking.provenance import commit_of

    return commit_of(project_root())