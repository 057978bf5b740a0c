"""`xablate figures`, `status` and `plan` read the store without starting Keras or TensorFlow; status still
reports the committed study's cells done (the store's identities, computed without Keras)."""

import json
import subprocess
import sys

import pytest

from helpers import ROOT, clean_env

CHECK = """
import contextlib, io, json, sys
from xablate.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main({argv!r})
    except SystemExit as done:
        code = done.code
print(json.dumps({{"code": code, "loaded": sorted(m for m in ("tensorflow", "keras", "matplotlib") if m in sys.modules),
                  "out": out.getvalue()}}))
"""
STORE = "tracking.uri=sqlite:///results/store/mlflow.db"


def cli(*argv):
    proc = subprocess.run([sys.executable, "-c", CHECK.format(argv=list(argv))], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["figures", "--help"], ["status", "--help"], ["plan", "--help"]])
def test_help_loads_no_keras_tensorflow_or_matplotlib(argv):
    result = cli(*argv)
    assert result["code"] == 0 and result["loaded"] == []


@pytest.mark.slow
def test_status_of_the_committed_study_loads_no_keras_and_finds_every_cell_done():
    result = cli("status", "--study", "fig9_residual", "design=cpu_repro", STORE)
    assert result["loaded"] == [], result["out"][-500:]
    assert result["code"] == 0 and "done: 20  diverged: 0  running: 0  failed: 0  missing: 0" in result["out"]


def test_the_help_names_every_bench_suite_and_prints_percent_signs_once(capsys):
    from xablate.cli import build_parser

    top = build_parser().format_help()
    for suite in ("segments", "store", "onednn", "sequential", "pruning", "harness"):
        assert suite in top, suite
    plan = build_parser()._subparsers._group_actions[0].choices["plan"].format_help()
    assert "80 % power" in " ".join(plan.split()) and "%%" not in plan
