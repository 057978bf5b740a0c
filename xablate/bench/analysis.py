"""`xablate bench analysis`: how long the commands a researcher types between runs take, as whole processes.

Each command (`xablate status --study S`, `xablate figures --check`, `xablate plan --study S --mde X`, …) is
started `rounds` times against one store, in turn, and timed from start to exit — Python's start-up and every
import included, since that is what a user waits for. The CSV has each command's min, median and max seconds and
its exit code; the target is a median under 2 seconds.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from xablate.bench.report import write_csv
from xablate.paths import portable

TARGET_SECONDS = 2.0
COLUMNS = ["command", "rounds", "min_seconds", "median_seconds", "max_seconds", "exit_code", "under_target"]


def default_commands(uri: str) -> list[list[str]]:
    """What README's analysis loop types, on the committed store's studies: a sequential tuned study and a plain
    one for status and plan, and the check of every committed output."""
    return [["status", "--study", "fashion_fig10", "--uri", uri], ["status", "--study", "fig9_residual", "--uri", uri],
            ["figures", "--check", "--uri", uri], ["plan", "--study", "fashion_fig10", "--mde", "0.01", "--uri", uri],
            ["plan", "--study", "fig9_residual", "--mde", "0.01", "--uri", uri]]


def measure(commands: list[list[str]], rounds: int) -> list[dict]:
    """Each command `rounds` times, interleaved (round by round), as `python -m xablate.cli …`."""
    seconds: dict[int, list[float]] = {i: [] for i in range(len(commands))}
    codes: dict[int, int] = {}
    for _ in range(rounds):
        for i, command in enumerate(commands):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "xablate.cli", *command], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=600)
            seconds[i].append(time.perf_counter() - start)
            codes[i] = done.returncode
    rows = []
    for i, command in enumerate(commands):
        median = statistics.median(seconds[i])
        rows.append({"command": portable("xablate " + " ".join(command)), "rounds": rounds,
                     "min_seconds": round(min(seconds[i]), 2), "median_seconds": round(median, 2),
                     "max_seconds": round(max(seconds[i]), 2), "exit_code": codes[i],
                     "under_target": median < TARGET_SECONDS})
    return rows


def write(rows: list[dict], out: Path) -> Path:
    return write_csv(rows, out, COLUMNS)
