"""Shared by the end-to-end tests: run run.py as a user would, read the store as a user would."""

import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra) -> dict:
    """This process' environment without a developer's own MLflow settings (run.py quiets TensorFlow itself)."""
    env = dict(os.environ)
    for inherited in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        env.pop(inherited, None)
    return {**env, **extra}


def run_py(*overrides, cwd, timeout=600, env=None):
    """`python run.py <overrides>` in `cwd` (Hydra's outputs/ and multirun/ land there)."""
    full_env = clean_env(**(env or {}))
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=60):
    """(status, body bytes) of a GET."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


class ServedUI:
    """`xablate ui --uri <uri> <args>` started through the installed console script on a free port, until stopped;
    `base` is its address and `output()` what it printed (its log goes beside the store, or to `log_dir`). It runs
    under xablate's watchdog, so it and all it started die with this process, even when pytest is SIGKILLed."""

    def __init__(self, uri, timeout=180, args=(), log_dir=None):
        import time

        from xablate.tracking.ui_server import watched

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ}
        env.pop("MLFLOW_TRACKING_URI", None)
        self._log = open(Path(log_dir or Path(uri[len("sqlite:///"):]).parent) / f"ui-{self.port}.log", "w+")
        self.proc = subprocess.Popen(watched([str(Path(sys.executable).parent / "xablate"), "ui", "--uri", uri,
                                              "--port", str(self.port), *args]),
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while True:
            assert self.proc.poll() is None, self.output()[-3000:]
            try:
                if http_get(f"{self.base}/health", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, f"the UI did not answer within {timeout} s"
            time.sleep(0.5)

    def api(self, path, body=None, **query):
        """The JSON answer of the UI's own REST API (ajax-api/2.0/mlflow/<path>): GET with `query`, or POST of
        `body` as JSON."""
        import json
        import urllib.parse
        import urllib.request

        url = f"{self.base}/ajax-api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
        if body is None:
            status, answer = http_get(url)
        else:
            request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=60) as response:
                status, answer = response.status, response.read()
        assert status == 200
        return json.loads(answer)

    def output(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def stop(self):
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def browser(playwright):
    """Debian's Chromium (/usr/bin/chromium, installed by .ci/run), headless, driven by Playwright."""
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])
