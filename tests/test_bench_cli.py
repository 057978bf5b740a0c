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


@pytest.mark.slow
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


def _row(k, variant, implementation, seconds, channels=128):
    from xablate.bench.segments import Row

    return Row("tensorflow", k, channels, variant, implementation, 10, seconds / 16, seconds / 16, seconds, 512 / seconds)


def test_speed_targets_and_the_noise_floor_from_made_up_rows():
    from xablate.bench.segments import noise_floor, target_lines

    rows = [_row(8, "split", "split", 2.0), _row(8, "xablate_auto", "split", 2.0),
            _row(32, "blocked", "blocked", 2.0), _row(32, "xablate_auto", "blocked", 2.01),
            _row(64, "depthwise_shift", "depthwise_shift", 1.5), _row(64, "xablate_auto", "depthwise_shift", 1.5),
            _row(128, "depthwise", "depthwise", 1.0), _row(128, "xablate_auto", "depthwise", 1.04)]
    # the largest gap between auto and its own implementation's column: 1.04 / 1.0 at k = 128
    assert noise_floor(rows) == pytest.approx(0.04)
    lines = target_lines(rows)
    # k = 32 is 0.5 % slower than k = 8 (a tie inside the 4 % floor); k = 64 is 1.5 / 1.04 = 1.442x depthwise
    assert "slowest k = 32 at 1.005x" in lines[1] and lines[1].endswith("met within noise (+0.5% <= 4.0%)")
    assert "1.442x: missed" in lines[2]
    faster = [r if not (r.segments == 64 and r.variant == "xablate_auto") else _row(64, "xablate_auto",
              "depthwise_shift", 1.3) for r in rows]
    assert target_lines(faster)[2].endswith("1.250x: met")


@pytest.mark.parametrize("module", ["pruning", "sequential", "analysis"])
def test_a_bench_csv_has_its_columns_in_order_and_nothing_else(module, tmp_path):
    """`xablate bench pruning|sequential` write their declared columns, in order; a row's extra keys stay out."""
    import importlib

    bench = importlib.import_module(f"xablate.bench.{module}")
    row = {column: i for i, column in enumerate(reversed(bench.COLUMNS))} | {"scratch": "not a column"}
    path = bench.write([row], tmp_path / "deeper" / f"{module}.csv")
    with path.open() as f:
        lines = list(csv.reader(f))
    assert lines[0] == bench.COLUMNS
    assert lines[1] == [str(row[c]) for c in bench.COLUMNS] and "not a column" not in lines[1]
    with pytest.raises(KeyError, match=f"lacks the columns \\['{bench.COLUMNS[0]}'\\]"):
        bench.write([{k: v for k, v in row.items() if k != bench.COLUMNS[0]}], tmp_path / "short.csv")


def test_bench_analysis_times_each_command_as_a_whole_process(tmp_path):
    """`xablate bench analysis` on the committed store: one row per command with its exit code and its min <=
    median <= max seconds; a missing store is refused in one line before anything is timed."""
    store = Path(__file__).resolve().parents[1] / "results" / "store" / "mlflow.db"
    out = tmp_path / "analysis.csv"
    proc = subprocess.run([XABLATE, "bench", "analysis", "--rounds", "1", "--uri", f"sqlite:///{store}",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert [r["command"].split(" --uri")[0] for r in rows] == [
        "xablate status --study fashion_fig10", "xablate status --study fig9_residual", "xablate figures --check",
        "xablate plan --study fashion_fig10 --mde 0.01", "xablate plan --study fig9_residual --mde 0.01"]
    assert all(r["exit_code"] == "0" and r["rounds"] == "1" for r in rows)  # every committed study is complete
    assert all(0 < float(r["min_seconds"]) <= float(r["median_seconds"]) <= float(r["max_seconds"]) < 600
               for r in rows)
    assert all(r["command"].endswith("--uri sqlite:///results/store/mlflow.db") for r in rows)  # portable
    missing = subprocess.run([XABLATE, "bench", "analysis", "--uri", f"sqlite:///{tmp_path / 'none.db'}",
                              "--out", str(tmp_path / "x.csv")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--uri=" in missing.stderr and not (tmp_path / "x.csv").exists()
