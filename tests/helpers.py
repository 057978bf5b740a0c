"""Shared by the end-to-end tests: run run.py as a user would, read the store as a user would."""

import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[1]


def run_py(*overrides, cwd, timeout=600, env=None):
    """`python run.py <overrides>` in `cwd` (Hydra's outputs/ and multirun/ land there)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for inherited in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):  # a developer's own settings stay out
        full_env.pop(inherited, None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def sqlite_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def runs_of(uri, experiment, role=None):
    """All runs of an experiment, oldest first; role="sweep" for parents, "job" for children/single runs."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {uri}"
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"], max_results=1000)
    if role == "sweep":
        return [r for r in runs if r.data.tags.get("xablate.role") == "sweep"]
    if role == "job":
        return [r for r in runs if r.data.tags.get("xablate.role") != "sweep"]
    return runs
