"""Where runs go: the project's fixed SQLite store by default, $MLFLOW_TRACKING_URI or tracking.uri otherwise,
and a real MLflow server."""

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import run_py, runs_of
from xablate.paths import default_tracking_uri, project_root
from xablate.tracking.store import open_experiment, resolve_tracking_uri


def test_default_store_is_fixed_in_the_project_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("XABLATE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri(None) == default_tracking_uri() == f"sqlite:///{project_root() / 'mlflow.db'}"
    assert (project_root() / "run.py").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/m.db")
    assert resolve_tracking_uri(None) == "sqlite:////elsewhere/m.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_environment_variable_store_and_artifacts_beside_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'env.db'}"
    proc = run_py("debug=default", "train.epochs=1", "train.save_model=false", cwd=tmp_path / "..",
                  env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = runs_of(uri, "default")
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts" / "default").as_uri())


def test_experiment_creation_is_idempotent(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    _, first = open_experiment(uri, "study")
    _, again = open_experiment(uri, "study")
    assert first == again


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not start within 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_a_debug_job_logs_to_a_real_mlflow_server(tmp_path, mlflow_server):
    work = tmp_path / "work"
    work.mkdir()
    proc = run_py("debug=default", f"tracking.uri={mlflow_server}", "study=served", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = runs_of(mlflow_server, "served")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["epochs_completed"] == 2
    assert (tmp_path / "server-artifacts").is_dir()  # artifacts went through the server
