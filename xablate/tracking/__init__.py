"""MLflow tracking: the store, parent/child runs, and per-epoch logging."""

from xablate.tracking.store import PARENT_RUN_FILE, open_experiment, resolve_tracking_uri

__all__ = ["PARENT_RUN_FILE", "open_experiment", "resolve_tracking_uri"]
