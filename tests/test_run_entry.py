"""`python run.py` composes conf/ and builds the configured variant; bad values fail with a clear message."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_py(*overrides, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), f"hydra.run.dir={cwd}", *overrides],
                          capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_run_py_builds_the_configured_variant(tmp_path):
    proc = run_py("model=debug", "segments=4", "intermediate_act=elu", "residual=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "xablate variant: residual=False, intermediate_act=elu, segments=4 (preset debug)" in lines
    params = next(l for l in lines if l.startswith("parameters:"))
    from xablate.models import build_from_preset

    expected = build_from_preset("debug", segments=4, intermediate_act="elu", residual=False).count_params()
    assert params.startswith(f"parameters: {expected:,} total")
    assert sum(1 for l in lines if l.startswith("block") and l.split()[3] == "4") == 13


def test_run_py_rejects_a_bad_axis_value(tmp_path):
    proc = run_py("model=debug", "segments=0", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Received segments=0; allowed: an integer >= 1 or \"depthwise\"" in proc.stderr
