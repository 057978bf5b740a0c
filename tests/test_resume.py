"""A sweep killed with SIGKILL mid-training, rerun with the same command, loses nothing and repeats nothing: the
resumed run's learning rates and losses are those of an uninterrupted run of the same variant."""

import os
import signal
import subprocess
import sys
import json
import time

import pytest
from mlflow import MlflowClient

from helpers import ROOT, clean_env, run_py, runs_of, sqlite_uri

pytestmark = pytest.mark.slow  # starts run.py or trains for many seconds: the full suite's tier

EPOCHS = 4
# a learning rate halved every epoch: a resume that lost the optimizer's iteration count (and with it the
# schedule) or its moments trains differently from the uninterrupted run
SCHEDULE = ["optim.schedule.kind=exponential", "+optim.schedule.every_epochs=1", "+optim.schedule.factor=0.5"]


def sweep_command(uri):
    return [sys.executable, str(ROOT / "run.py"), "-m", "residual=true,false", "debug=default",
            f"train.epochs={EPOCHS}", *SCHEDULE, "study=resume", f"tracking.uri={uri}"]


def history(client, run_id, key):
    """{step: value}, failing on a step logged twice."""
    points = client.get_metric_history(run_id, key)
    steps = [m.step for m in points]
    assert len(steps) == len(set(steps)), (key, sorted(steps))
    return {m.step: m.value for m in points}


def quiet_env():
    return clean_env(TF_CPP_MIN_LOG_LEVEL="2")


def wait_for_second_variant_mid_training(uri, proc, sweep_root, timeout=300):
    """Returns once the second variant's run has logged at least one epoch but not all of them."""
    deadline = time.time() + timeout
    # the store is first opened by the sweep (a second process creating it at the same time would race)
    while not list(sweep_root.glob("*/mlflow_parent_run_id")):
        assert proc.poll() is None and time.time() < deadline, "the sweep did not start"
        time.sleep(0.1)
    client = MlflowClient(uri)
    while time.time() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        runs = runs_of(uri, "resume", role="job")
        if len(runs) == 2:
            steps = [m.step for m in client.get_metric_history(runs[1].info.run_id, "loss")]
            if 1 <= len(steps) < EPOCHS:
                return runs[1].info.run_id, steps
        time.sleep(0.05)
    raise AssertionError("the second variant never reached mid-training")


def test_sigkilled_sweep_resumes_without_duplicate_or_missing_steps(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = subprocess.Popen(sweep_command(uri), cwd=tmp_path, env=quiet_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        killed_run, steps_before = wait_for_second_variant_mid_training(uri, proc, tmp_path / "multirun" / "resume")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    killed = MlflowClient(uri).get_run(killed_run)
    assert killed.info.status == "RUNNING"  # SIGKILL leaves it as it was
    # the killed run left a checkpoint of an epoch it had logged (so "no checkpoint left" below means deleted)
    folder = tmp_path / "checkpoints" / "resume" / killed.data.tags["xablate.identity"]
    state = json.loads((folder / "state.json").read_text())
    assert state["run_id"] == killed_run and state["epoch"] >= max(steps_before)
    assert (folder / state["weights_file"]).is_file()
    assert [row["epoch"] for row in state["history"]] == list(range(state["epoch"] + 1))

    rerun = subprocess.run(sweep_command(uri), cwd=tmp_path, env=quiet_env(), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    jobs = runs_of(uri, "resume", role="job")
    assert [r.info.status for r in jobs] == ["FINISHED", "FINISHED"]
    assert sorted(r.data.tags["xablate.residual"] for r in jobs) == ["False", "True"]
    first, second = jobs
    assert first.data.tags["xablate.residual"] == "True"
    assert f"skipping {first.data.tags['xablate.variant']}: run {first.info.run_id} already FINISHED" in rerun.stdout
    assert second.info.run_id == killed_run
    assert f"resuming MLflow run {killed_run}" in rerun.stdout
    assert second.data.tags["xablate.resumes"] == "1"
    client = MlflowClient(uri)
    for run in jobs:
        for key in ("loss", "val_accuracy", "learning_rate", "epoch_seconds"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(EPOCHS)), (run.data.tags["xablate.variant"], key, steps)
    assert second.data.metrics["epochs_completed"] == EPOCHS
    # the resumed run continued after its checkpoint rather than starting again from epoch 0
    assert f"restored the checkpoint of epoch {state['epoch']}" in rerun.stdout
    # the killed sweep's parent was closed, the rerun's parent finished with the resumed child
    parents = runs_of(uri, "resume", role="sweep")
    assert [p.info.status for p in parents] == ["KILLED", "FINISHED"]
    assert second.data.tags["mlflow.parentRunId"] == parents[1].info.run_id
    assert second.data.tags["xablate.previous_parent"] == parents[0].info.run_id
    assert "skipped" in rerun.stdout  # the rerun's summary table lists the skipped variant
    assert not list((tmp_path / "checkpoints").rglob("*.weights.h5"))  # finished runs leave no checkpoint

    # the same variant trained without interruption (another study: its identity is the same, and the
    # resumed run is not found there) gives the same learning rates and, within float noise, the same losses
    control = run_py("residual=false", "debug=default", f"train.epochs={EPOCHS}", *SCHEDULE, "study=control",
                     f"tracking.uri={uri}", cwd=tmp_path)
    assert control.returncode == 0, control.stderr[-3000:]
    (control_run,) = runs_of(uri, "control", role="job")
    assert control_run.data.tags["xablate.identity"] == second.data.tags["xablate.identity"]
    rates = history(client, killed_run, "learning_rate")
    assert rates == history(client, control_run.info.run_id, "learning_rate")
    assert [rates[e] for e in range(EPOCHS)] == pytest.approx([1e-3 * 0.5 ** (e + 1) for e in range(EPOCHS)])
    for key in ("loss", "val_loss"):
        resumed, uninterrupted = history(client, killed_run, key), history(client, control_run.info.run_id, key)
        assert sorted(resumed) == sorted(uninterrupted) == list(range(EPOCHS))
        assert [resumed[e] for e in range(EPOCHS)] == pytest.approx([uninterrupted[e] for e in range(EPOCHS)],
                                                                    rel=1e-4), key
