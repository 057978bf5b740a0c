"""`xablate server`'s bad input, and a search on a server store without the database its Optuna studies go to:
each refused in one line naming the setting, before anything starts (the server itself, the database and a
cluster: tests/test_cluster.py)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import run_py

XABLATE = str(Path(sys.executable).parent / "xablate")


@pytest.mark.parametrize("arguments, message", [
    ([], "Received neither --database nor --postgres; allowed: one of them"),
    (["--database", "postgresql://x@h/d", "--postgres", "/tmp/nowhere"], "Received both --database and --postgres"),
    (["--database", "mlflow.db"], "Received --database='mlflow.db'; allowed: a SQLAlchemy database URI"),
])
def test_the_server_refuses_what_it_cannot_serve(arguments, message):
    done = subprocess.run([XABLATE, "server", *arguments], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr


EXPERIMENT = """\
# @package _global_
defaults:
  - override /hydra/sweeper: staged
study: remote_search
hydra:
  sweeper:
    params:
      seed: 0,1
    tune:
      space:
        optim.learning_rate: {log_uniform: [1.0e-3, 0.3]}
      sampler: random
      trials: 2
"""


@pytest.mark.slow  # starts run.py
def test_a_search_on_a_server_store_without_its_database_is_refused_before_its_parent_run(tmp_path):
    (tmp_path / "extra" / "experiment").mkdir(parents=True)
    (tmp_path / "extra" / "experiment" / "remote_search.yaml").write_text(textwrap.dedent(EXPERIMENT))
    # nothing listens on port 9 (discard): a parent run attempted there would fail differently, and slowly
    proc = run_py("-m", f"--config-dir={tmp_path / 'extra'}", "experiment=remote_search", "debug=default",
                  "tracking.uri=http://127.0.0.1:9", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Received tracking.uri='http://127.0.0.1:9', a server store, with tracking.database=None and a tuning " \
           "search; allowed: tracking.database=" in proc.stderr
    assert not (tmp_path / "multirun").exists() or not list((tmp_path / "multirun").rglob("mlflow_parent_run_id"))
