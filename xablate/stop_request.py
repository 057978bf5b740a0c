"""SIGINT/SIGTERM stop the run even where the KeyboardInterrupt they raise is swallowed.

Python raises a signal's KeyboardInterrupt at whatever bytecode the main thread runs next. Inside a finalizer
(`__del__`, a weakref callback: TensorFlow runs many while it trains) the exception is printed as "Exception
ignored in ..." and lost, and the run trained on to FINISHED (seen once in CI: Ctrl-C, and the run finished and
deleted its checkpoint). The handlers here note the signal before they raise, and `StopOnSignal` (every batch and
epoch) and the trainer (before a run is closed FINISHED) raise it again.
"""

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; `kill`, Slurm time limits, worker shutdown
_received: list[int] = []


def install() -> None:
    """Both signals end the run as KILLED, not left RUNNING. A signal the process was started ignoring stays
    ignored (a background job's Ctrl-C); only the main thread may install handlers."""
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, _stop)


def _stop(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt(f"received signal {signum}")


def raise_if_requested() -> None:
    """Raises the KeyboardInterrupt of a signal this process received, once more: a no-op where none was."""
    if _received:
        raise KeyboardInterrupt(f"received signal {_received[0]}")


def stopped_by_signal() -> bool:
    """Whether this process (not another of the sweep) received SIGINT/SIGTERM since it started or last forgot."""
    return bool(_received)


def forget() -> None:
    """A launcher's worker process, which outlives its jobs, starts each job with no signal received (a cancelled
    earlier task's does not stop the next); the basic launcher's one process does not forget: the user's Ctrl-C
    stops the sweep. Tests that send themselves a signal forget it too."""
    _received.clear()
