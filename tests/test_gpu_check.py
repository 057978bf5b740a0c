"""The prepared GPU check: valid bash, every command it would run composes and validates, and its report reads
a real store."""

import os
import shlex
import subprocess
import sys

import pytest

from helpers import ROOT, sqlite_uri
from xablate.config import compose_job
from xablate.training.trainer import RunContext, train
from xablate.gate import parse_job

SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def dry_run_commands() -> list[list[str]]:
    proc = subprocess.run(["bash", str(SCRIPT)], env={**os.environ, "DRY_RUN": "1", "N_VARIANTS": "3"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [shlex.split(line[2:]) for line in proc.stdout.splitlines() if line.startswith("+ ")]


def test_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_every_command_composes_and_validates():
    commands = dry_run_commands()
    assert len(commands) == 6  # mini + xception in fp32 and bf16, then sequential and parallel
    for command in commands:
        assert command[1] == "run.py"
        overrides = [a for a in command[2:] if a != "-m" and not a.startswith(("hydra.", "hydra/"))]
        overrides = [a.replace("seed=0,1,2", "seed=0") for a in overrides]
        cfg = compose_job(overrides)
        parse_job(cfg)
        assert cfg["backend"] == "jax"
    assert "seed=0,1,2" in commands[-1] and "hydra/launcher=parallel" in commands[-1]
    assert [c for c in commands[:4] if "train.precision=bf16" in c and "train.jit_compile=true" in c] == [
        commands[2], commands[3]]


@pytest.mark.slow
def test_report_reads_a_store(tmp_path):
    uri = sqlite_uri(tmp_path)
    cfg = compose_job(["debug=default", f"tracking.uri={uri}", "study=gpu_precision"])
    train(cfg, RunContext(output_dir=tmp_path / "out"))
    (tmp_path / "phases.csv").write_text("mini_fp32,12.5\n")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_report.py"), uri, str(tmp_path / "phases.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "| study | model | precision | seed | status | images/s | first epoch s | val acc |"
    assert lines[2].startswith("| gpu_precision | debug | fp32 | 0 | FINISHED | ")
    assert "| mini_fp32 | 12.5 |" in proc.stdout
