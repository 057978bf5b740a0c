"""Fixed project locations, independent of the working directory a command starts in."""

from __future__ import annotations

import os
import re
from pathlib import Path


def project_root() -> Path:
    """The checkout xablate runs from (editable install), else $XABLATE_HOME or ~/.xablate.

    The MLflow store and its artifacts live here, so `python run.py` from any directory writes to one store.
    """
    if os.environ.get("XABLATE_HOME"):
        return Path(os.environ["XABLATE_HOME"]).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists() and (checkout / "run.py").exists():
        return checkout
    return Path.home() / ".xablate"


def cache_folder() -> Path:
    """Where xablate keeps what it can always remake (an empty MLflow store, the digests of checked data files):
    $XDG_CACHE_HOME/xablate, else ~/.cache/xablate."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xablate"


def default_tracking_uri() -> str:
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def portable(text: str) -> str:
    """A value as recorded in a run's params and tags: paths inside the project relative to it
    (`sqlite:////home/me/xablate/results/store/mlflow.db` -> `sqlite:///results/store/mlflow.db`), other
    absolute paths by their last component (`/scratch/me/data` -> `.../data`), so records hold no machine's
    layout. Works word by word on overrides (`key=value`), Hydra's escaped `sqlite\\:` included."""
    return " ".join(_portable_word(word) for word in text.split(" "))


def _portable_word(word: str) -> str:
    key, eq, value = word.partition("=") if "=" in word else ("", "", word)
    uri = re.match(r"^(.*?sqlite\\?:///)(/.*)$", value)
    prefix, path = (uri.group(1), uri.group(2)) if uri else ("", value)
    if not path.startswith("/"):
        return word
    path_, root = Path(path), project_root()
    if path_ == root:
        return key + eq + prefix + "."
    if path_.is_relative_to(root):
        return key + eq + prefix + path_.relative_to(root).as_posix()
    return key + eq + prefix + ".../" + path_.name


def portable_traceback(text: str) -> str:
    """A traceback as a run's artifact keeps it: each frame's file relative to the project, or from its
    site-packages (or the Python library) on, any other by its name; the project's folder elsewhere in the text
    left out. `File "/home/me/xablate/.venv/lib/python3.11/site-packages/mlflow/client.py"` ->
    `File ".../site-packages/mlflow/client.py"`."""
    root = project_root()

    def frame(match: re.Match) -> str:
        path = Path(match.group(1))
        inside = (re.search(r"/((?:site|dist)-packages/.*)$", match.group(1))
                  or re.search(r"/(lib/python3\.\d+/.*)$", match.group(1)))
        if inside:
            shown = f".../{inside.group(1)}"
        elif path.is_relative_to(root):
            shown = path.relative_to(root).as_posix()
        else:
            shown = f".../{path.name}"
        return f'File "{shown}"'

    return re.sub(r'File "(/[^"]+)"', frame, text).replace(f"{root}{os.sep}", "")


def portable_uri(uri: str) -> str:
    """A SQLite store inside the project is recorded relative to it, so a clone elsewhere finds it."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if path.is_relative_to(project_root()):
            return f"sqlite:///{path.relative_to(project_root()).as_posix()}"
    return uri
