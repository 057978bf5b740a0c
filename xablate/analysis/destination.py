"""Where `xablate figures` reads and writes: a folder of results is redrawn only from the store it records.

A results folder (the committed results/ above all) records in each output's sidecar the store it was drawn
from. A bare `xablate figures` reads that store; a store typed with `--uri` (or $MLFLOW_TRACKING_URI) that is
another one is drawn into a scratch folder of its own, never over results drawn from elsewhere, unless the user
says so (`--replace`). `--check` looks at the same folder against the same store.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from xablate.paths import project_root
from xablate.tracking.store import resolve_tracking_uri

SCRATCH = ("outputs", "figures")  # under the project: ignored by git, one folder per store


def local_uri(recorded: str) -> str:
    """A sidecar's recorded store on this machine (the inverse of xablate.paths.portable_uri)."""
    if recorded.startswith("sqlite:///") and not recorded.startswith("sqlite:////"):
        return f"sqlite:///{project_root() / recorded[len('sqlite:///'):]}"
    return recorded


def recorded_store(out: Path) -> str | None:
    """The store the outputs under `out` were drawn from (verdict.json's, else the first sidecar's), or None for
    a folder that holds no outputs."""
    out = Path(out)
    if not out.is_dir():
        return None
    first = [out / "verdict.json"] if (out / "verdict.json").is_file() else []
    for sidecar in [*first, *sorted(out.rglob("*.json"))]:
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and "runs" in meta and isinstance(meta.get("tracking_uri"), str):
            return local_uri(meta["tracking_uri"])
    return None


def same_store(a: str, b: str) -> bool:
    prefix = "sqlite:///"
    if a.startswith(prefix) and b.startswith(prefix):
        return Path(a[len(prefix):]).resolve() == Path(b[len(prefix):]).resolve()
    return a.rstrip("/") == b.rstrip("/")


def scratch_folder(uri: str) -> Path:
    """The folder a store's figures go to when it is not the store of the results folder asked for."""
    name = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else uri
    path = Path(name)
    if uri.startswith("sqlite:///") and path.is_relative_to(project_root()):
        name = path.relative_to(project_root()).as_posix()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "store"
    return project_root().joinpath(*SCRATCH, slug)


@dataclass(frozen=True)
class Destination:
    uri: str            # the store to read
    out: Path           # the folder to write
    note: str = ""      # said before anything is written, when `out` is not the folder asked for


def figures_destination(typed_uri: str | None, out: Path, out_given: bool, replace: bool) -> Destination:
    """The store `xablate figures` reads and the folder it writes (see the module's docstring).

    Raises ValueError for an explicit `--out` that holds another store's results, without `--replace`.
    """
    out = Path(out)
    recorded = recorded_store(out)
    typed = typed_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not typed:
        return Destination(recorded or resolve_tracking_uri(None), out)
    uri = resolve_tracking_uri(typed)
    if recorded is None or replace or same_store(recorded, uri):
        return Destination(uri, out)
    if out_given:
        raise ValueError(f"Received --out={out} and the store {uri}, but {out} holds results drawn from {recorded}; "
                         f"allowed: that store, a folder without other results, or --replace to draw over them.")
    scratch = scratch_folder(uri)
    return Destination(uri, scratch, note=f"xablate: {out} holds the results of {recorded}; drawing {uri} into "
                                          f"{scratch} instead (--out {out} --replace draws over them)")
