"""`xablate ui`'s server, which dies with the process that started it, even by SIGKILL.

    xablate CLI -- watchdog (own session; parent-death signal SIGTERM; polls its parent) -- mlflow ui -- uvicorn

(`mlflow ui` as run by xablate.tracking.mlflow_ui: MLflow's own command, its pages defaulting to model training.)

`mlflow ui` runs uvicorn, whose supervisor spawns its workers, and a huey job runner; a parent-death signal
would reach only the first of them. So the CLI's direct child is a small watchdog (this file run as a script:
`python -P ui_server.py --watch <pid> -- <command>`; it imports neither xablate nor MLflow). It is a child
subreaper, so every descendant stays below it even when its own parent dies, and when the CLI dies (by any
signal: the kernel's parent-death signal, else its polling notices the new parent) it terminates them all,
then kills what is left after a few seconds. On SIGTERM/SIGINT the CLI itself stops the watchdog's process
group (the watchdog and the server) and waits. Tests start their servers under the same watchdog (--watch
with pytest's pid), so a SIGKILLed pytest leaves no server behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.5      # how often the watchdog looks at its parent and its command
GRACE_SECONDS = 5.0     # from SIGTERM to SIGKILL for what the watchdog stops
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36


def watched(command: list[str], parent_pid: int | None = None) -> list[str]:
    """`command` run under the watchdog, which ends it and all its descendants when `parent_pid` (default:
    this process) dies. Start the result from that process' main thread (the parent-death signal follows the
    thread that forks)."""
    return [sys.executable, "-P", str(Path(__file__).resolve()), "--watch", str(parent_pid or os.getpid()), "--",
            *[str(word) for word in command]]


def port_in_use(port: int) -> bool:
    """Whether 127.0.0.1:port cannot be bound, as the server would bind it (SO_REUSEADDR: TIME_WAIT is free)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def serve_ui(uri: str, port: int, shown_uri: str | None = None, view=None, open_browser: bool = False) -> int:
    """Serves the MLflow UI for `uri` on 127.0.0.1:port until it ends (its exit code) or this process is
    stopped (128 + the signal); 2, and nothing started, when the port is taken. `shown_uri`: the store named in
    what it prints (`uri` may be a copy of it); `view`: a study's page (xablate.tracking.study_view.StudyView),
    printed, and opened in a browser once the server answers when `open_browser` and a browser can open."""
    if port_in_use(port):
        print(f"xablate: Received --port={port}, which another process on 127.0.0.1 is using; allowed: a free port "
              f"(try --port {port + 1}).", file=sys.stderr, flush=True)
        return 2
    base = f"http://127.0.0.1:{port}"
    print(f"xablate: MLflow UI for {shown_uri or uri} at {base}\n"
          f"xablate: open {base}/#/experiments?workflowType=machine_learning (its pages open each experiment on its "
          f"runs: MLflow 3.17 takes an experiment's type from the browser, not from the store's tags; "
          f"xablate.tracking.mlflow_ui)", flush=True)
    if view is not None:
        print(f"xablate: {view.url(base)}\n"
              f"xablate:   its final-stage runs ({view.search_filter}), grouped by xablate.variant, "
              f"{', '.join(view.metrics)} as columns (each group's row: the variant's mean), sorted by "
              f"{view.metrics[0]}", flush=True)
        for note in view.notes:
            print(f"xablate:   {note}", flush=True)
        if open_browser:
            _open_when_up(view.url(base), base)
    # `mlflow ui`, its app's index page defaulting the browser to model training (see xablate.tracking.mlflow_ui)
    command = [sys.executable, "-m", "xablate.tracking.mlflow_ui", "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(port)]
    return run_watched(command)


def browser_available() -> bool:
    """Whether a graphical browser can open here (a console browser would take over the server's terminal)."""
    return sys.platform == "darwin" or os.name == "nt" or bool(os.environ.get("DISPLAY")
                                                               or os.environ.get("WAYLAND_DISPLAY"))


def _open_when_up(url: str, base: str, timeout: float = 300.0) -> None:
    """Opens `url` in the default browser once `base` answers (a thread; nothing when no browser can open)."""
    if not browser_available():
        return
    import threading
    import urllib.request
    import webbrowser

    def wait_then_open():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            return
        try:
            webbrowser.open(url)
        except Exception:  # a broken browser setting: the URL is printed already
            pass

    threading.Thread(target=wait_then_open, daemon=True).start()


class _Stopped(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def run_watched(command: list[str]) -> int:
    """Runs `command` under the watchdog in a session of its own: its exit code, or, when this process gets
    SIGTERM/SIGINT/SIGHUP, the whole group stopped and 128 + that signal."""
    def stop(signum, _frame):
        raise _Stopped(signum)

    stops = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.signal(signum, stop) for signum in stops}
    proc = None
    try:
        try:
            proc = subprocess.Popen(watched(command), start_new_session=True)
            return _exit_code(proc.wait())
        except _Stopped as stopped:
            for signum in stops:  # a second Ctrl-C does not interrupt the shutdown
                signal.signal(signum, signal.SIG_IGN)
            if proc is not None:
                _stop_group(proc)
            return 128 + stopped.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the watchdog's group (the watchdog stops the rest of its tree), SIGKILL after a grace."""
    for signum, grace in ((signal.SIGTERM, 3 * GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


# --- the watchdog (runs as a script: nothing above this line that imports xablate or MLflow runs in it) -----

def _prctl(option: int, value: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: the polling alone notices the parent's death
        return False


def _pdeathsig_term() -> None:  # preexec_fn of the watched command: the watchdog forks it single-threaded
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _descendants() -> list:
    import psutil

    alive = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.Error:  # gone meanwhile
            pass
    return alive


def _reap() -> None:
    """Collects every exited child (orphans are re-parented to this subreaper and become its children)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _stop_tree() -> None:
    """SIGTERM to every descendant, SIGKILL to those still there after GRACE_SECONDS; all reaped."""
    import psutil

    deadline, signum = time.monotonic() + GRACE_SECONDS, signal.SIGTERM
    signalled: set[tuple[int, float]] = set()
    while True:
        _reap()
        alive = _descendants()
        if not alive:
            return
        if time.monotonic() > deadline:
            signum = signal.SIGKILL
        for process in alive:
            try:
                key = (process.pid, process.create_time())
                if signum == signal.SIGKILL or key not in signalled:  # late-born ones get their SIGTERM too
                    process.send_signal(signum)  # psutil checks the pid still is that process
                    signalled.add(key)
            except psutil.Error:
                pass
        time.sleep(0.05)


def watch(parent_pid: int, command: list[str]) -> int:
    """Runs `command` while `parent_pid` (this process' parent) lives; its exit code when it ends on its own.
    On the parent's death, or SIGTERM/SIGINT/SIGHUP: every descendant stopped, 128 + the signal (SIGTERM's
    for a dead parent)."""
    stopped: list[int] = []

    def stop(signum, _frame):
        stopped.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # the parent's death, even by SIGKILL, sends SIGTERM here
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)  # orphaned descendants (uvicorn's workers) stay below this process
    if os.getppid() != parent_pid:  # it died before the line above
        return 128 + signal.SIGTERM
    child = subprocess.Popen(command, preexec_fn=_pdeathsig_term)
    while not stopped and os.getppid() == parent_pid:
        if child.poll() is not None:
            _stop_tree()  # what it left behind
            return _exit_code(child.returncode)
        time.sleep(POLL_SECONDS)  # a signal cuts the sleep short
    _stop_tree()
    return 128 + (stopped[0] if stopped else signal.SIGTERM)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--watch"] and len(argv) > 3 and argv[2] == "--":
        return watch(int(argv[1]), argv[3:])
    import argparse

    parser = argparse.ArgumentParser(prog="python -m xablate.tracking.ui_server",
                                     description="Serves the MLflow UI for a store (what `xablate ui` serves).")
    parser.add_argument("--uri", required=True, help="the store's tracking URI")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    return serve_ui(args.uri, args.port)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
