"""`xablate ui`'s server dies with the process that serves it, even by SIGKILL, and refuses a port in use."""

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from helpers import ROOT, clean_env, free_port, http_get

from xablate.tracking import ui_server
from xablate.tracking.ui_server import port_in_use, serve_ui


def remaining(tree: list[psutil.Process]) -> list[str]:
    """The processes of `tree` still there: running, or a zombie that one of them (or this test) has to reap.
    A zombie re-parented to an outside reaper (init) serves nothing and is that reaper's to collect."""
    ours = {p.pid for p in tree} | {os.getpid()}
    left = []
    for process in tree:
        try:
            if not process.is_running():  # gone, or its pid taken by another process since
                continue
            if process.status() == psutil.STATUS_ZOMBIE and process.ppid() not in ours:
                continue
            left.append(f"{process.pid} {process.status()} {' '.join(process.cmdline())[:100]}")
        except psutil.NoSuchProcess:
            continue
    return left


def served_tree(tmp_path, port: int):
    """A parent process (in a session of its own) serving the UI with serve_ui, once /health answers and its
    tree stopped growing: (parent, its descendants)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = f"import sys; from xablate.tracking.ui_server import serve_ui; sys.exit(serve_ui({uri!r}, {port}))"
    log = open(tmp_path / "ui.log", "w+")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=clean_env(), stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 180
    while True:
        assert parent.poll() is None, (log.seek(0), log.read()[-3000:])[1]
        try:
            if http_get(f"http://127.0.0.1:{port}/health", timeout=5)[0] == 200:
                break
        except OSError:
            pass
        assert time.time() < deadline, "the UI did not answer within 180 s"
        time.sleep(0.5)
    tree, before = [], None
    while before != {p.pid for p in tree}:  # uvicorn's workers and the job runner's consumers all started
        before = {p.pid for p in tree}
        time.sleep(1)
        tree = psutil.Process(parent.pid).children(recursive=True)
    commands = " ".join(" ".join(p.cmdline()) for p in tree)
    assert "xablate.tracking.mlflow_ui ui" in commands and "uvicorn" in commands, commands  # the server's real tree
    return parent, tree


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_server_dies_with_its_parent(tmp_path, signum):
    port = free_port()
    parent, tree = served_tree(tmp_path, port)
    try:
        os.kill(parent.pid, signum)
        parent.wait(timeout=30)
        deadline = time.time() + 10
        while remaining(tree) and time.time() < deadline:
            time.sleep(0.2)
        assert remaining(tree) == [], f"still there 10 s after the parent's {signum.name}"
        assert not port_in_use(port)
        if signum == signal.SIGTERM:
            assert parent.returncode == 128 + signal.SIGTERM  # stopped, said so in its exit code
    finally:
        for process in tree:  # a failed test leaves no server behind either
            try:
                process.kill()
            except psutil.Error:
                pass


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        expected = (f"xablate: Received --port={port}, which another process on 127.0.0.1 is using; allowed: a free "
                    f"port (try --port {port + 1}).\n")

        def no_start(*args, **kwargs):
            raise AssertionError(f"started {args}")

        monkeypatch.setattr(ui_server.subprocess, "Popen", no_start)
        assert serve_ui(uri, port) == 2
        assert capsys.readouterr() == ("", expected)
        monkeypatch.undo()

        cli = subprocess.run([sys.executable, "-m", "xablate.tracking.ui_server", "--uri", uri, "--port", str(port)],
                             cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert (cli.returncode, cli.stdout, cli.stderr) == (2, "", expected)
    assert not (tmp_path / "mlflow.db").exists()  # nothing started, nothing created
