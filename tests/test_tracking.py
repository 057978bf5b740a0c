"""Where runs go: the project's fixed SQLite store by default, $MLFLOW_TRACKING_URI or tracking.uri otherwise,
and a real MLflow server."""

import multiprocessing
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from mlflow import MlflowClient

from helpers import run_py, runs_of
from xablate.paths import default_tracking_uri, project_root
from xablate.tracking.store import open_experiment, resolve_tracking_uri
from xablate.tracking.ui_server import watched


def test_default_store_is_fixed_in_the_project_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("XABLATE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri(None) == default_tracking_uri() == f"sqlite:///{project_root() / 'mlflow.db'}"
    assert (project_root() / "run.py").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/m.db")
    assert resolve_tracking_uri(None) == "sqlite:////elsewhere/m.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@pytest.mark.slow
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


def create_store_and_experiment(uri, barrier, results):
    """One of several processes released together on a store that does not exist yet (spawned: a fresh
    interpreter, as a launcher's worker would be)."""
    from xablate.tracking.store import open_experiment as open_in_child

    barrier.wait(timeout=300)
    try:
        _, experiment_id = open_in_child(uri, "race")
        results.put(("ok", experiment_id))
    except BaseException as error:  # noqa: BLE001 - every failure is the finding
        results.put(("error", f"{type(error).__name__}: {error}"))


@pytest.mark.slow
def test_processes_creating_one_new_store_at_once_get_one_experiment(tmp_path):
    writers = 4
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(writers), context.Queue()
    processes = [context.Process(target=create_store_and_experiment, args=(uri, barrier, results))
                 for _ in range(writers)]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=300) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    assert [kind for kind, _ in outcomes] == ["ok"] * writers, outcomes
    assert len({experiment_id for _, experiment_id in outcomes}) == 1
    experiments = MlflowClient(uri).search_experiments()
    assert sorted(e.name for e in experiments) == ["Default", "race"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    # under xablate's watchdog: the server and its workers die with pytest, even by SIGKILL
    proc = subprocess.Popen(
        watched([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                 "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                 "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
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
        proc.terminate()  # the watchdog stops the server's whole tree
        proc.wait(timeout=30)
        pytest.fail("mlflow server did not start within 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_a_debug_job_logs_to_a_real_mlflow_server(tmp_path, mlflow_server):
    work = tmp_path / "work"
    work.mkdir()
    proc = run_py("debug=default", f"tracking.uri={mlflow_server}", "study=served", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = runs_of(mlflow_server, "served")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["epochs_completed"] == 2
    assert (tmp_path / "server-artifacts").is_dir()  # artifacts went through the server


@pytest.fixture
def silent_server():
    """A server that accepts connections, reads what is sent and never answers; closed after the test."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    requests, connections, stop = [], [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            connections.append(connection)
            connection.settimeout(5)
            try:
                requests.append(connection.recv(4096).decode(errors="replace").split("\r\n", 1)[0])
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", requests
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in connections:
            connection.close()
        server.close()


@pytest.mark.slow
def test_a_server_that_never_answers_fails_the_job_fast_before_any_run(tmp_path, silent_server, monkeypatch):
    from xablate.config import compose_job
    from xablate.training.trainer import RunContext, train

    url, requests = silent_server
    # were the check skipped, MLflow's own client would wait and retry for minutes: bound it, so that the
    # test fails fast then too (on the time, the error type and the requests the server saw)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    cfg = compose_job(["debug=default", "study=silent",
                                                              f"tracking.uri={url}"])
    start = time.monotonic()
    with pytest.raises(ValueError) as error:
        train(cfg, RunContext(output_dir=tmp_path / "out"))
    elapsed = time.monotonic() - start
    assert elapsed < 15, f"took {elapsed:.1f} s"
    message = str(error.value)
    assert f"Received tracking.uri='{url}'; allowed: a reachable MLflow server" in message
    assert "timed out" in message
    assert requests == ["GET /health HTTP/1.1"]  # the one check; no MLflow call, so no experiment or run
    assert not (tmp_path / "out").exists()  # and nothing written for the job
