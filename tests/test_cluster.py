"""One study across machines: PostgreSQL, an MLflow server on it and a Ray cluster of three nodes, all inside a
network namespace of the test's own (tests/cluster_scenario.py plays it; this file asserts what it saw).

A worker node dies mid-run and the tracking server restarts mid-run; the same command typed again finishes the
study: every cell FINISHED once, no run twice, no metric point lost, the killed run resumed from its checkpoint
with the same run id, Optuna's trials complete in the one database, and status, figures, plan and ui work against
the server. Needs root (unshare -n), Debian's PostgreSQL and iproute2 (CI installs them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "cluster_scenario.py"


def play(mode: str, timeout: int) -> dict:
    """The scenario in a fresh network namespace; what it observed."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    assert not missing and os.geteuid() == 0, f"needs root, unshare and ip (missing: {missing})"
    # a short folder: Ray's socket paths must stay under 108 characters
    folder = Path(tempfile.mkdtemp(prefix="xc", dir="/tmp"))
    os.chmod(folder, 0o755)  # PostgreSQL's user reaches its folder inside
    try:
        done = subprocess.run(["unshare", "-n", sys.executable, str(SCENARIO), mode, str(folder)],
                              capture_output=True, text=True, timeout=timeout, cwd=folder)
        observed = folder / "observed.json"
        logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(folder.glob("*.log")))
        assert done.returncode == 0 and observed.exists(), done.stdout[-3000:] + done.stderr[-5000:] + logs
        result = json.loads(observed.read_text())
        result["logs"] = logs
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_ray_launcher_runs_a_sweep_on_a_loopback_only_ray_instance():
    seen = play("launcher", timeout=400)
    assert seen["exit"] == 0, seen["output"][-3000:]
    assert "Ray Launcher is launching 2 jobs" in seen["output"]
    assert f"Initializing ray with config: {{'address': '{seen['address']}'" in seen["output"]
    assert seen["foreign_connections"] == []
    [parent] = [r for r in seen["runs"] if r["role"] == "sweep"]
    children = [r for r in seen["runs"] if r["role"] != "sweep"]
    assert parent["status"] == "FINISHED" and sorted(c["residual"] for c in children) == ["False", "True"]
    assert all(c["status"] == "FINISHED" and c["parent"] == parent["run_id"] and c["epochs"] == 2 for c in children)


@pytest.fixture(scope="module")
def seen():
    return play("cluster", timeout=900)


def finals(runs):
    return [r for r in runs if "final" in (r["stage"] or "").split(",")]


def test_a_node_lost_and_a_server_restarted_mid_run_leave_every_cell_finished_once(seen):
    assert seen["nodes"] == 3
    events = [e[0] for e in seen["events"]]
    assert "worker node killed" in events, seen["logs"]
    assert seen["second_exit"] == 0, seen["logs"]
    runs = seen["runs"]
    # no run twice (a tuning run and a final cell of one config are two runs: xablate.staging.may_serve)
    assert Counter((r["identity"], (r["stage"] or "final").split(",")[0]) for r in runs).most_common(1)[0][1] == 1
    cells = sorted((r["optimizer"], r["seed"]) for r in finals(runs))
    assert cells == [("adam", "0"), ("adam", "1"), ("sgd", "0"), ("sgd", "1")]
    assert all(r["status"] == "FINISHED" for r in finals(runs))
    for run in runs:  # no metric point lost or logged twice: each epoch the run trained, once
        if run["status"] == "FINISHED":
            assert run["epochs"] == list(range(int(run["epochs_completed"]))), run
        elif run["outcome"] == "pruned":
            assert run["epochs"] == sorted(set(run["epochs"])), run
    assert seen["foreign_connections"] == []


def test_the_run_on_the_lost_node_resumed_from_its_checkpoint_with_its_run_id(seen):
    killed = next(e[1] for e in seen["events"] if e[0] == "worker node killed")
    run = next(r for r in seen["runs"] if r["run_id"] == killed)
    assert run["status"] == "FINISHED" or run["outcome"] == "pruned", run
    assert run["resumes"] >= 1 and run["epochs"] == sorted(set(run["epochs"])), run


def test_the_run_training_through_a_server_restart_logged_every_epoch(seen):
    restarted = [e[1] for e in seen["events"] if e[0] == "server restarted"]
    assert restarted, f"no run was training when the server could be restarted: {seen['events']}"
    run = next(r for r in seen["runs"] if r["run_id"] == restarted[0])
    assert run["status"] == "FINISHED" or run["outcome"] == "pruned", run
    if run["status"] == "FINISHED":
        assert run["epochs"] == list(range(int(run["epochs_completed"]))), run


def test_optunas_trials_are_complete_in_the_one_database(seen):
    studies = seen["optuna"]
    assert sorted(studies) == ["cluster_debug/optim.optimizer:adam", "cluster_debug/optim.optimizer:sgd"]
    for states in studies.values():
        assert Counter(s for s in states if s in ("COMPLETE", "PRUNED")).total() == 2, states
        assert "RUNNING" not in states
    assert seen["optuna_files"] == []  # no study kept in a file of one machine


def test_status_figures_plan_and_ui_read_the_study_from_the_server(seen):
    commands = seen["commands"]
    code, text = commands["status"]
    assert code == 0 and "missing: 0" in text, text
    code, text = commands["figures"]
    assert code == 0, text
    assert "table.csv" in commands["figures_written"], commands["figures_written"]
    code, text = commands["plan"]
    assert code == 0, text
    code, text = commands["ui"]
    assert code == 0 and "serves the MLflow UI" in text and "viewStateShareKey" in text, text
