"""`xablate bench store` on the MLflow tracking server on PostgreSQL: every writer's points arrive, no errors; a
machine without PostgreSQL gets rows that say so instead of a failure. Needs Debian's PostgreSQL (CI installs it)."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

# The console script pip installed beside this interpreter (the venv's bin/ need not be on PATH).
XABLATE = str(Path(sys.executable).parent / "xablate")


@pytest.mark.slow
def test_the_server_on_postgresql_takes_every_writers_points(tmp_path):
    from xablate.bench.store import server_unavailable

    assert server_unavailable() == "", "needs PostgreSQL's server programs and psycopg (CI installs them)"
    out = tmp_path / "store.csv"
    proc = subprocess.run([XABLATE, "bench", "store", "--stores", "server+postgresql", "--writers", "1,2",
                           "--epochs", "2", "--folder", str(tmp_path / "stores"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert [(r["store"], int(r["writers"])) for r in rows] == [("server+postgresql", 1), ("server+postgresql", 2)]
    for r in rows:
        assert (int(r["errors"]), r["first_error"], r["note"]) == (0, "", "")
        assert int(r["runs"]) == int(r["writers"])
        assert int(r["metric_points"]) == int(r["expected_points"]) == int(r["writers"]) * 2 * 10
        assert float(r["seconds"]) > 0
    assert "server+postgresql   2 writers x 2 epochs: 0 errors (0 locked), 40/40 points" in proc.stdout
    assert "View run" not in proc.stdout  # the server's per-run links stay out of the benchmark's lines
    # everything the benchmark started is gone: no process names the folder (the server's artifacts are in it)
    import psutil

    assert not [p.pid for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]


def test_without_postgresql_the_server_rows_say_so(tmp_path, monkeypatch, capsys):
    from xablate.bench import store

    monkeypatch.setattr(store, "server_unavailable", lambda: "PostgreSQL's server programs are not installed")
    for setting in ("MLFLOW_DISABLE_TELEMETRY", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):  # run() sets them:
        monkeypatch.setenv(setting, "true")  # restored after the test
    out = tmp_path / "store.csv"
    rows = store.run(folder=tmp_path, writers=[1, 4], epochs=3, out=out, stores=["server+postgresql"])
    assert [r["note"] for r in rows] == ["not measured: PostgreSQL's server programs are not installed"] * 2
    assert not any(store.failed(r) for r in rows)  # not a failure of the store: the command exits 0
    with out.open() as f:
        lines = list(csv.reader(f))
    assert lines[0] == store.COLUMNS
    assert [line[:2] for line in lines[1:]] == [["server+postgresql", "1"], ["server+postgresql", "4"]]
    assert lines[2][store.COLUMNS.index("expected_points")] == "120" and lines[2][store.COLUMNS.index("errors")] == ""
    assert "server+postgresql   4 writers x 3 epochs: not measured" in capsys.readouterr().out
