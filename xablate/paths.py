"""Fixed project locations, independent of the working directory a command starts in."""

from __future__ import annotations

import os
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


def default_tracking_uri() -> str:
    return f"sqlite:///{project_root() / 'mlflow.db'}"
