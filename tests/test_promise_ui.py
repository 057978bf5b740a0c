"""README: `xablate ui` opens the store in the MLflow UI on 127.0.0.1 — started here through the installed console
script on a free port, asked for the store's experiments, then stopped."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from xablate.tracking.store import open_experiment

XABLATE = str(Path(sys.executable).parent / "xablate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def test_xablate_ui_serves_the_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_experiment(uri, "served_by_ui")
    port = free_port()
    env = {**os.environ}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([XABLATE, "ui", "--uri", uri, "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, health = time.time() + 120, None
        while time.time() < deadline:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            try:
                health = get(f"{base}/health")[0]
                break
            except OSError:
                time.sleep(0.5)
        assert health == 200, "the UI did not answer within 120 s"
        status, body = get(f"{base}/ajax-api/2.0/mlflow/experiments/search?max_results=100", timeout=60)
        assert status == 200
        assert "served_by_ui" in {e["name"] for e in json.loads(body)["experiments"]}  # this store, not another
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    output = proc.stdout.read()
    assert f"xablate: MLflow UI for {uri} at {base}" in output
