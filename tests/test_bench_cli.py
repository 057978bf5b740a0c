"""`xablate bench segments` through the installed console script: the CSV it writes and its checks."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

# The console script pip installed beside this interpreter (the venv's bin/ need not be on PATH).
XABLATE = str(Path(sys.executable).parent / "xablate")


def test_the_console_script_is_installed():
    # `pip install -e ".[dev]"` (what CI runs) installs it: its absence is a packaging break, not a skip
    assert Path(XABLATE).is_file(), f"no console script at {XABLATE}: is xablate installed (pip install -e .)?"
    help_text = subprocess.run([XABLATE, "--help"], capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and "bench" in help_text.stdout and "status" in help_text.stdout


def test_bench_segments_writes_one_row_per_variant(tmp_path):
    out = tmp_path / "segments.csv"
    proc = subprocess.run(
        [XABLATE, "bench", "segments", "--channels", "8", "--size", "6", "--batch", "4", "--images", "8",
         "--steps", "2", "--segments", "1,2,8", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    variants = [(int(r["segments"]), r["variant"]) for r in rows]
    assert variants == [
        (1, "keras_conv2d_groups"), (1, "dense"), (1, "xablate_auto"),
        (2, "keras_conv2d_groups"), (2, "split"), (2, "masked"), (2, "depthwise_sum"), (2, "xablate_auto"),
        (8, "keras_conv2d_groups"), (8, "depthwise"), (8, "xablate_auto"),
    ]
    for r in rows:
        assert float(r["seconds_per_step"]) > 0
        assert float(r["seconds_per_epoch"]) == pytest.approx(2 * float(r["seconds_per_step"]))
        assert float(r["images_per_second"]) == pytest.approx(4 / float(r["seconds_per_step"]))
        assert int(r["steps_timed"]) == 2
    auto = {int(r["segments"]): r["implementation"] for r in rows if r["variant"] == "xablate_auto"}
    assert auto == {1: "dense", 2: "split", 8: "depthwise"}
    assert "vs best alternative" in proc.stdout
    summary = out.with_suffix(".md").read_text().splitlines()
    assert len(summary) == 2 + 3  # header, rule, one line per k
    assert summary[2].startswith("| 1 | ") and "(dense)" in summary[2]


@pytest.mark.parametrize("args, message", [
    (["--segments", "3"], "each must divide --channels=8"),
    (["--segments", "16"], "--segments=16 > --channels=8"),
    (["--segments", "a"], "--segments='a'; allowed: comma-separated integers >= 1"),
    (["--steps", "0"], "Received '0'; allowed: a number > 0"),
])
def test_bench_rejects_bad_input_before_running(args, message, tmp_path):
    proc = subprocess.run([XABLATE, "bench", "segments", "--channels", "8", "--out", str(tmp_path / "x.csv"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "x.csv").exists()
