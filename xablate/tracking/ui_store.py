"""What `xablate ui` serves: the store, or a copy of it when git tracks it, prepared for the UI.

A SQLite store committed to git (results/store/mlflow.db) is served from a copy in a temporary folder, removed
when the server ends, so serving never changes the committed file. Serving writes to the store it serves:
xablate's own steps before serving (artifact locations rewritten for a clone at another path, the
experiment-type tag added where missing, `--study`'s saved view, an experiment tag), MLflow's schema migration
of a store written by an older MLflow, and whatever is done in the UI (a run renamed, a note, a tag, a saved view,
the experiment-type selector). MLflow's server has no read-only mode, and a read-only file would only turn the
UI's edits into errors; a copy (tens of MB, made with SQLite's backup from a read-only connection) keeps the UI
whole and the file as committed. The copy reads the committed artifacts where they are. Edits made in its UI
are not kept. A store git does not track (the project's working store, a test's) is served itself, live: its
UI shows runs as they are logged, as before.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from xablate.tracking.store import ARTIFACTS_FOLDER, check_store_to_read, relocate_artifacts, \
    resolve_tracking_uri, tag_experiments_for_training


def tracked_by_git(path: Path) -> bool:
    """Whether `path` is a file git tracks (False without git, or outside a repository)."""
    try:
        found = subprocess.run(["git", "ls-files", "--error-unmatch", "--", path.name], cwd=path.parent,
                               capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return found.returncode == 0


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite store, read through a read-only connection (the source is not written)."""
    reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
    try:
        writer = sqlite3.connect(target)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    finally:
        reader.close()


@contextmanager
def served_store(uri: str) -> Iterator[tuple[str, Path | None]]:
    """(the URI to serve, the committed file it is a copy of, or None when `uri` itself is served)."""
    path = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
    if path is None or not path.is_file() or not tracked_by_git(path):
        yield uri, None
        return
    folder = Path(tempfile.mkdtemp(prefix="xablate-ui-"))
    try:
        copy = folder / path.name
        copy_store(path, copy)
        served = f"sqlite:///{copy}"
        relocate_artifacts(served, folder=path.parent / ARTIFACTS_FOLDER)  # the committed artifacts, read there
        yield served, path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def serve_store(uri: str | None, port: int, study: str | None = None, open_browser: bool = True) -> int:
    """`xablate ui`: serves the store (a copy when git tracks it) until stopped; with `study`, prints (and, where
    a browser can open, opens) the page of its final runs by variant. 2 for an unknown study or a taken port."""
    from xablate.tracking.ui_server import port_in_use, serve_ui

    uri = resolve_tracking_uri(uri)
    if uri.startswith(("http://", "https://")):
        return _on_the_server(uri, study)
    if port_in_use(port):
        return serve_ui(uri, port)  # says so, starts nothing
    if study is not None:
        try:
            check_store_to_read(uri)
        except ValueError as error:
            print(f"xablate: {error}", file=sys.stderr, flush=True)
            return 2
    with served_store(uri) as (served, committed):
        view = None
        if study is not None:  # refused before anything is written
            from mlflow import MlflowClient

            from xablate.studies import load_study
            from xablate.tracking.study_view import find_study, save_study_view

            try:
                find_study(MlflowClient(served), study)
                load_study(study)  # its study file, when it has one, reads
            except ValueError as error:
                print(f"xablate: {error}", file=sys.stderr, flush=True)
                return 2
        if committed is None:
            relocate_artifacts(served)  # a cloned or copied store serves the artifacts beside it
        else:
            print(f"xablate: serving a copy of {committed} (git tracks it: serving leaves it as it is; edits made "
                  f"in the UI are not kept)", flush=True)
        tag_experiments_for_training(served)  # read by MLflow versions that honour the tag (not 3.17's UI)
        if study is not None:
            view = save_study_view(served, study)
        return serve_ui(served, port, shown_uri=uri, view=view, open_browser=open_browser)


def _on_the_server(uri: str, study: str | None) -> int:
    """A tracking server serves the UI itself (`xablate server`): its address, and a study's page saved there;
    nothing is started."""
    from xablate.tracking.study_view import save_study_view

    print(f"xablate: the tracking server {uri} serves the MLflow UI: open {uri.rstrip('/')}/#/experiments"
          f"?workflowType=machine_learning", flush=True)
    if study is not None:
        try:
            check_store_to_read(uri)
            view = save_study_view(uri, study)
        except ValueError as error:
            print(f"xablate: {error}", file=sys.stderr, flush=True)
            return 2
        print(f"xablate: {view.url(uri)}\n"
              f"xablate:   its final-stage runs ({view.search_filter}), grouped by xablate.variant, "
              f"{', '.join(view.metrics)} as columns", flush=True)
    return 0
