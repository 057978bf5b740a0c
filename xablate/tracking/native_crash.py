"""Runs whose process dies natively (SIGSEGV, SIGABRT, ...): recorded FAILED with the signal, and said so.

A native crash inside TensorFlow or a C extension ends the process at once: no `except`, no `finally`, the run
stays RUNNING. Three parts close that gap:

- While a run trains, Python's faulthandler writes the fatal signal and the Python stacks of every thread to
  `<crash folder>/<run id>.txt` (the crash folder sits beside the checkpoints); the file is removed when the
  run ends normally.
- A watcher process (`python -m xablate.tracking.native_crash`, started with the first run of a process, in its
  own session so that Ctrl-C and process-group kills pass it by) holds a pipe from the training process. When
  the pipe closes while a run is armed, the trainer died: with a crash file it records the run FAILED with the
  signal as the reason (tags `xablate.error`, `xablate.native_signal`, `xablate.native_crashes`, the file as
  an artifact) and prints which run died and the command that continues the sweep; without one (SIGKILL, the
  out-of-memory killer) it leaves the run as it is (resumed on the next command) and prints the same command.
- When the store next sees a RUNNING run whose owner is gone and whose crash file exists (the watcher died
  too), `record_if_crashed` does what the watcher would have done.

A run that crashed natively MAX_NATIVE_CRASHES times is not resumed again (the same inputs crash the same way);
`force=true` starts it anew.
"""

from __future__ import annotations

import faulthandler
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

MAX_NATIVE_CRASHES = 2
ERROR_TAG, SIGNAL_TAG, COUNT_TAG = "xablate.error", "xablate.native_signal", "xablate.native_crashes"
# faulthandler's first line per fatal signal -> the signal's name
SIGNALS = {"Segmentation fault": "SIGSEGV", "Aborted": "SIGABRT", "Bus error": "SIGBUS",
           "Floating-point exception": "SIGFPE", "Illegal instruction": "SIGILL"}

_watcher: subprocess.Popen | None = None
_armed: dict = {}


def crash_file(folder: Path, run_id: str) -> Path:
    return Path(folder) / f"{run_id}.txt"


def arm(run_id: str, folder: Path, *, uri: str, label: str) -> None:
    """From here until `disarm`, a fatal signal in this process is written to the run's crash file and the
    watcher records it."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    handle = open(crash_file(folder, run_id), "w")
    _armed.update(run_id=run_id, handle=handle, was_enabled=faulthandler.is_enabled())
    faulthandler.enable(file=handle, all_threads=True)
    _tell({"arm": run_id, "file": str(crash_file(folder, run_id)), "uri": uri, "label": label,
           "pid": os.getpid(), "command": continue_command()})


def disarm(run_id: str) -> None:
    """The run ended in Python (finished, failed, interrupted): nothing native to record."""
    if _armed.get("run_id") != run_id:
        return
    handle = _armed.pop("handle")
    if _armed.pop("was_enabled"):
        faulthandler.enable(file=sys.__stderr__, all_threads=True)
    else:
        faulthandler.disable()
    _armed.clear()
    handle.close()
    Path(handle.name).unlink(missing_ok=True)
    _tell({"disarm": run_id})


def continue_command() -> str:
    """The command this process was started with: typed again, it skips finished runs and resumes the rest."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("run.py"):
        return shlex.join(["python", *argv])
    return shlex.join([Path(sys.executable).name, *argv])


def signal_in(text: str) -> str | None:
    """The fatal signal named by faulthandler's output (`Fatal Python error: Segmentation fault`), if any."""
    for line in text.splitlines():
        if line.startswith("Fatal Python error:"):
            what = line.split(":", 1)[1].strip()
            return f"{SIGNALS.get(what, what)} ({what})" if what in SIGNALS else what
    return None


def record(client, run_id: str, file: Path, *, where: str = "") -> str | None:
    """Marks the run FAILED with the signal its crash file names; returns that signal, or None (no crash file,
    or one without a fatal error) leaving the run untouched. The file moves into the run's artifacts."""
    file = Path(file)
    if not file.exists():
        return None
    text = file.read_text(errors="replace")
    signal = signal_in(text)
    if signal is None:
        return None
    run = client.get_run(run_id)
    crashes = int(run.data.tags.get(COUNT_TAG, "0")) + 1
    client.set_tag(run_id, ERROR_TAG, f"native crash: {signal}{where} (Python stacks in native_crash.txt)")
    client.set_tag(run_id, SIGNAL_TAG, signal.split(" ")[0])
    client.set_tag(run_id, COUNT_TAG, str(crashes))
    try:
        target = file.with_name("native_crash.txt")
        file.replace(target)
        client.log_artifact(run_id, str(target))
        target.unlink(missing_ok=True)
    finally:
        client.set_terminated(run_id, status="FAILED")
    return signal


def record_if_crashed(client, run, folder: Path) -> bool:
    """For a RUNNING run whose owner is gone: records a native crash its file shows (see `record`)."""
    tags = run.data.tags
    where = f" in process {tags.get('xablate.pid', '?')} on {tags.get('xablate.host', '?')}"
    return record(client, run.info.run_id, crash_file(folder, run.info.run_id), where=where) is not None


def crashed_too_often(run) -> bool:
    return run.info.status == "FAILED" and int(run.data.tags.get(COUNT_TAG, "0")) >= MAX_NATIVE_CRASHES


def _tell(message: dict) -> None:
    global _watcher
    if os.environ.get("XABLATE_CRASH_WATCHER", "1") == "0":
        return
    try:
        if _watcher is None or _watcher.poll() is not None:
            _watcher = subprocess.Popen([sys.executable, "-m", "xablate.tracking.native_crash"],
                                        stdin=subprocess.PIPE, start_new_session=True, text=True)
        _watcher.stdin.write(json.dumps(message) + "\n")
        _watcher.stdin.flush()
    except OSError:  # no watcher: the next command still finds the crash file (record_if_crashed)
        _watcher = None


def _watch() -> None:
    """The watcher's loop: follow arm/disarm messages until the pipe closes, then report an armed run."""
    armed = None
    for line in sys.stdin:
        message = json.loads(line)
        if "arm" in message:
            armed = message
        elif message.get("disarm") == (armed or {}).get("arm"):
            armed = None
    if armed is None:
        return  # the process ended between runs (or normally)
    from mlflow import MlflowClient

    import socket

    where = f" in process {armed['pid']} on {socket.gethostname()}"
    signal = record(MlflowClient(armed["uri"]), armed["arm"], Path(armed["file"]), where=where)
    if signal is None:
        print(f"[xablate] the process training run {armed['arm']} ({armed['label']}) ended without closing it "
              f"(killed, or out of memory); it stays RUNNING and this command resumes it: {armed['command']}",
              file=sys.stderr, flush=True)
        return
    print(f"[xablate] run {armed['arm']} ({armed['label']}) died in a native crash: {signal}; recorded FAILED "
          f"in {armed['uri']}. Finished runs are skipped and this one resumes, so this command continues: "
          f"{armed['command']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    import signal as _signal

    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _watch()
