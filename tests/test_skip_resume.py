"""README, "Sweeps that survive": what a job does with the runs its study already holds for its identity.

| what the study holds                                   | what the job does                          |
| a FINISHED run                                         | skips; warns when its git commit differs   |
| a run that diverged                                    | skips: divergence is a result              |
| a RUNNING run whose process is alive                   | skips                                      |
| RUNNING, its pid now another process' (same host)      | resumes it (same run id)                   |
| RUNNING, heartbeat older than stale (any host)         | resumes it (same run id)                   |
| a FAILED (or KILLED) run                               | resumes it: same run id, from its checkpoint |
| anything, with force=true                              | starts a new run                           |

One store for the module; every test files its runs under a study of its own. The runs a job must find are
made by hand with MLflow's client, carrying the identity of a real run of the job (the identity leaves the study
out, so one identity serves every study); a job that must start or take over a run is stopped before its first
batch, as what it decided is then in the store. Only the FAILED run's resume trains, to see it continue from
its checkpoint.
"""

import json
import os
import socket
import subprocess
import sys
import time

import keras
import psutil
import pytest
from mlflow import MlflowClient

from helpers import runs_of
from xablate.analysis.store import runs_frame
from xablate.config import compose_job
from xablate.tracking.previous_runs import owner_alive, owner_tags, plan_run
from xablate.tracking.store import git_commit, open_experiment
from xablate.training.callbacks import log_missing_steps
from xablate.training.fitting import unlogged_params
from xablate.training.trainer import RunContext, train


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("skip_resume")
    return root, f"sqlite:///{root / 'mlflow.db'}"


def run_job(store, study, *overrides, callbacks=()):
    root, uri = store
    cfg = compose_job(["debug=default", "train.save_model=false", f"study={study}",
                                       f"tracking.uri={uri}", *overrides])
    return train(cfg,
                 RunContext(output_dir=root / "jobs" / study, callbacks=list(callbacks)))


class StopBeforeTraining(keras.callbacks.Callback):
    """Ends a job after its run is created (or taken over) and its model built, before any training step."""

    def on_train_begin(self, logs=None):
        raise RuntimeError("stopped by the test before the first batch")


def start_only(store, study, *overrides):
    """Runs the job up to its first batch: what it did with the study's runs is then in the store."""
    with pytest.raises(RuntimeError, match="stopped by the test"):
        run_job(store, study, *overrides, callbacks=[StopBeforeTraining()])


@pytest.fixture(scope="module")
def identity(store):
    """The identity of the debug job, from a run of it in a study of its own."""
    start_only(store, "base")
    (run,) = runs_of(store[1], "base")
    return run.data.tags["xablate.identity"]


def hand_made_run(store, study, identity, status, start_time=None, **tags):
    """A run as another process (or an older checkout) would have left it (`start_time`: epoch milliseconds)."""
    client, experiment_id = open_experiment(store[1], study)
    run_id = client.create_run(experiment_id, start_time=start_time,
                               tags={"xablate.identity": identity, **tags}).info.run_id
    if status != "RUNNING":
        client.set_terminated(run_id, status=status)
    return run_id


def test_a_finished_run_is_skipped_and_a_commit_change_is_warned_about(store, identity, capsys):
    here = git_commit()
    assert here, "the tests run from a git checkout"
    same = hand_made_run(store, "commit_same", identity, "FINISHED", **{"mlflow.source.git.commit": here})
    result = run_job(store, "commit_same")
    out, err = capsys.readouterr()
    assert (result.status, result.run_id) == ("SKIPPED", same)
    assert f"run {same} already FINISHED" in out
    assert "warning" not in err

    older = hand_made_run(store, "commit_older", identity, "FINISHED", **{"mlflow.source.git.commit": "0" * 40})
    result = run_job(store, "commit_older")
    out, err = capsys.readouterr()
    assert (result.status, result.run_id) == ("SKIPPED", older)
    assert f"run {older} was trained at commit 000000000000, this checkout is {here[:12]}" in err
    assert "force=true" in err
    assert [r.info.run_id for r in runs_of(store[1], "commit_older")] == [older]  # nothing new


def test_force_true_starts_a_new_run_beside_a_finished_one(store, identity):
    finished = hand_made_run(store, "force", identity, "FINISHED")
    start_only(store, "force", "force=true")
    runs = {r.info.run_id: r for r in runs_of(store[1], "force")}
    (new,) = set(runs) - {finished}
    assert runs[new].data.tags["xablate.identity"] == identity  # the same variant, started anew
    assert runs[finished].info.status == "FINISHED"  # the old result is kept, untouched
    assert "xablate.resumes" not in runs[new].data.tags


def test_a_diverged_cell_is_not_retrained(store, identity, capsys):
    # as a diverged run is recorded (tests/test_failures.py trains one): FAILED, outcome=diverged
    diverged = hand_made_run(store, "diverged", identity, "FAILED", **{
        "xablate.outcome": "diverged", "xablate.diverged_epoch": "0", "xablate.diverged_batch": "1",
        "xablate.error": "training diverged at epoch 0, batch 1: loss is nan"})
    before = MlflowClient(store[1]).get_run(diverged)
    result = run_job(store, "diverged")
    assert (result.status, result.run_id) == ("SKIPPED", diverged)
    assert f"run {diverged} diverged" in capsys.readouterr().out
    (again,) = runs_of(store[1], "diverged")  # no new run, and the old one untouched
    assert again.info.status == "FAILED" and again.info.end_time == before.info.end_time
    assert again.data.tags == before.data.tags


def test_a_pruned_tuning_run_is_a_result_not_retrained(store, identity, capsys):
    # as a pruned scout is recorded (tests/test_search_sweeps.py prunes some): KILLED, outcome=pruned
    pruned = hand_made_run(store, "pruned", identity, "KILLED", **{
        "xablate.outcome": "pruned", "xablate.pruned_epoch": "1",
        "xablate.pruned_reason": "median pruner stopped the trial after epoch 1 of its stage: val_accuracy 0.1"})
    result = run_job(store, "pruned", "tracking.stage=tune")
    assert (result.status, result.run_id) == ("SKIPPED", pruned)
    assert f"run {pruned} was pruned by its tuning trial" in capsys.readouterr().out
    (again,) = runs_of(store[1], "pruned")
    assert again.info.status == "KILLED" and "xablate.resumes" not in again.data.tags


@pytest.mark.slow
def test_a_pruned_run_never_stands_in_for_a_final_replicate(store, identity, capsys):
    pruned = hand_made_run(store, "pruned_final", identity, "KILLED", **{"xablate.outcome": "pruned",
                                                                          "xablate.pruned_epoch": "1"})
    result = run_job(store, "pruned_final")  # tracking.stage: final (the default)
    assert result.status == "FINISHED" and result.run_id != pruned
    assert "a pruned tuning run does not stand in for a final replicate" in capsys.readouterr().out
    runs = {r.info.run_id: r for r in runs_of(store[1], "pruned_final")}
    assert runs[pruned].info.status == "KILLED" and runs[result.run_id].data.tags["xablate.stage"] == "final"


def test_a_running_run_whose_process_is_alive_is_skipped(store, identity, capsys):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        running = hand_made_run(store, "alive", identity, "RUNNING", **{
            "xablate.host": socket.gethostname(), "xablate.pid": str(owner.pid),
            "xablate.heartbeat": str(int(time.time()) - 60)})  # started before the run, beating
        result = run_job(store, "alive")
    finally:
        owner.kill()
        owner.wait()
    assert (result.status, result.run_id) == ("SKIPPED", running)
    assert f"RUNNING in process {socket.gethostname()}:{owner.pid}" in capsys.readouterr().out
    (run,) = runs_of(store[1], "alive")
    assert run.info.status == "RUNNING"  # left to its owner


def test_a_running_run_from_another_host_with_a_fresh_heartbeat_is_skipped(store, identity, capsys):
    started_an_hour_ago = int(time.time() - 3600) * 1000  # only the heartbeat says it is alive
    running = hand_made_run(store, "fresh", identity, "RUNNING", start_time=started_an_hour_ago, **{
        "xablate.host": "another-host.invalid", "xablate.pid": "12345",
        "xablate.heartbeat": str(int(time.time()) - 60)})  # well within stale_after_seconds (600)
    result = run_job(store, "fresh")
    assert (result.status, result.run_id) == ("SKIPPED", running)
    assert "RUNNING in process another-host.invalid:12345" in capsys.readouterr().out
    assert [r.info.status for r in runs_of(store[1], "fresh")] == ["RUNNING"]


def test_a_running_run_from_another_host_with_an_old_heartbeat_is_resumed(store, identity, capsys):
    began = int(time.time() - 7200) * 1000  # two hours ago; it last beat an hour ago, then died without a word
    stale = hand_made_run(store, "stale", identity, "RUNNING", start_time=began, **{
        "xablate.host": "another-host.invalid", "xablate.pid": "12345",
        "xablate.heartbeat": str(int(time.time()) - 3600)})  # older than stale_after_seconds (600)
    before = time.time() * 1000
    start_only(store, "stale")
    assert f"resuming MLflow run {stale}" in capsys.readouterr().out
    (run,) = runs_of(store[1], "stale")  # the same run, taken over by this process
    assert run.info.run_id == stale
    assert run.data.tags["xablate.resumes"] == "1"
    assert run.data.tags["xablate.host"] == socket.gethostname()
    assert run.data.tags["xablate.pid"] == str(os.getpid())
    # its wall time: the hour up to its last heartbeat, then this attempt's own (not the hour it lay dead)
    assert float(run.data.tags["xablate.earlier_seconds"]) == pytest.approx(3600, abs=2)
    assert before <= int(run.data.tags["xablate.attempt_start"]) <= time.time() * 1000
    (row,) = runs_frame(store[1], study="stale").itertuples()
    attempt = (row.end_time.value / 1e6 - int(run.data.tags["xablate.attempt_start"])) / 1000
    assert row.wall_seconds == pytest.approx(3600 + attempt, abs=2) and attempt < 600


@pytest.fixture(scope="module")
def owner():
    """A live process of this host that could own a run: (its pid, its start time in epoch seconds)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield process.pid, psutil.Process(process.pid).create_time()
    finally:
        process.kill()
        process.wait()


def owned_run(store, study, pid, **tags):
    """A RUNNING run recorded by process `pid` of this host (no start time unless given): (run, its plan)."""
    client, experiment_id = open_experiment(store[1], study)
    run_id = hand_made_run(store, study, f"{study}-identity", "RUNNING", **{
        "xablate.host": socket.gethostname(), "xablate.pid": str(pid), **tags})
    plan = plan_run(client, experiment_id, f"{study}-identity", force=False, stale_after_seconds=600)
    return client.get_run(run_id), plan.action


@pytest.mark.parametrize("offset", [-30, 30], ids=["owner started earlier", "owner started later"])
def test_a_running_run_whose_pid_now_names_another_process_is_resumed(store, owner, offset):
    """The pid lives, beating freshly, but the process behind it is not the one that recorded the run."""
    pid, started = owner
    run, action = owned_run(store, f"reused_{offset + 30}", pid, **{
        "xablate.pid_start": f"{started + offset:.3f}", "xablate.heartbeat": str(int(time.time()))})
    assert not owner_alive(run, 600) and action == "resume"


def test_a_run_without_a_recorded_start_is_not_owned_by_a_process_started_after_it(store, owner):
    pid, started = owner
    before = int((started - 60) * 1000)  # the run began a minute before the process now holding its pid
    run, action = owned_run(store, "reused_old", pid, **{"xablate.heartbeat": str(int(time.time()))})
    assert owner_alive(run, 600) and action == "skip"  # created after the process started: it may own it
    client, _ = open_experiment(store[1], "reused_old")
    older = hand_made_run(store, "reused_older", "reused_older-identity", "RUNNING", start_time=before, **{
        "xablate.host": socket.gethostname(), "xablate.pid": str(pid), "xablate.heartbeat": str(int(time.time()))})
    assert not owner_alive(client.get_run(older), 600)
    client.set_tag(older, "xablate.attempt_start", str(int(started * 1000) + 1000))  # resumed by that process
    assert owner_alive(client.get_run(older), 600)


def test_a_running_run_whose_live_owner_stopped_beating_is_resumed_and_one_beating_is_skipped(store, owner):
    pid, started = owner
    stale, action = owned_run(store, "stale_here", pid, **{
        "xablate.pid_start": f"{started:.3f}", "xablate.heartbeat": str(int(time.time()) - 35 * 60)})
    assert not owner_alive(stale, 600) and action == "resume"
    alive, action = owned_run(store, "alive_here", pid, **{
        "xablate.pid_start": f"{started + 0.4:.3f}", "xablate.heartbeat": str(int(time.time()) - 60)})
    assert owner_alive(alive, 600) and action == "skip"
    assert f"RUNNING in process {socket.gethostname()}:{pid}" in plan_of(store, "alive_here").reason


def test_a_sweep_parent_run_of_a_live_launcher_is_alive_without_beating(store, owner):
    """A sweep's parent run records its owner once; it is not refreshed while the jobs run."""
    pid, started = owner
    parent, _ = owned_run(store, "sweep_here", pid, **{
        "xablate.role": "sweep", "xablate.pid_start": f"{started:.3f}",
        "xablate.heartbeat": str(int(time.time()) - 3 * 3600)})
    assert owner_alive(parent, 600)


def plan_of(store, study):
    client, experiment_id = open_experiment(store[1], study)
    return plan_run(client, experiment_id, f"{study}-identity", force=False, stale_after_seconds=600)


def test_the_owner_tags_record_the_process_start():
    tags = owner_tags()
    assert float(tags["xablate.pid_start"]) == pytest.approx(psutil.Process().create_time(), abs=0.01)


class FailAtSecondEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("disk on fire")


@pytest.mark.slow
def test_a_failed_run_is_resumed_under_the_same_run_id_from_its_checkpoint(store, capsys):
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_job(store, "failed", callbacks=[FailAtSecondEpoch()])
    (failed,) = runs_of(store[1], "failed")
    assert failed.info.status == "FAILED"
    assert failed.data.tags["xablate.error"] == "RuntimeError: disk on fire"
    capsys.readouterr()

    result = run_job(store, "failed")
    out = capsys.readouterr().out
    assert (result.status, result.run_id) == ("FINISHED", failed.info.run_id)
    assert f"resuming MLflow run {failed.info.run_id}" in out
    assert "restored the checkpoint of epoch 0" in out  # it continued; it did not start over
    (run,) = runs_of(store[1], "failed")
    assert run.info.status == "FINISHED"
    assert run.data.tags["xablate.previous_error"] == "RuntimeError: disk on fire"
    assert "xablate.error" not in run.data.tags
    client = MlflowClient(store[1])
    for key in ("loss", "val_loss", "learning_rate"):
        assert sorted(m.step for m in client.get_metric_history(failed.info.run_id, key)) == [0, 1], key
    assert run.data.metrics["epochs_completed"] == 2


def test_log_missing_steps_logs_only_the_checkpointed_epochs_mlflow_missed(store):
    client, experiment_id = open_experiment(store[1], "repair")
    run_id = client.create_run(experiment_id).info.run_id
    history = [{"epoch": e, "loss": 2.0 - e / 10, "val_accuracy": 0.1 * (e + 1)} for e in range(3)]
    client.log_metric(run_id, "loss", 2.0, step=0)  # epoch 0 reached MLflow, then the process was killed
    client.log_metric(run_id, "val_accuracy", 0.1, step=0)

    assert log_missing_steps(client, run_id, history) == 2
    for key in ("loss", "val_accuracy"):
        points = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        assert points == [(row["epoch"], pytest.approx(row[key])) for row in history], key
    assert log_missing_steps(client, run_id, history) == 0  # a second resume adds nothing
    assert len(client.get_metric_history(run_id, "loss")) == 3


def test_a_run_resumed_with_its_store_named_another_way_keeps_its_first_params_and_records_the_change(store):
    """MLflow refuses to change a logged param. A study file naming its store `results/store/mlflow.db` resumed a
    run first started with `tracking.uri=sqlite:///results/store/mlflow.db`, and the resume failed on that."""
    root, uri = store

    def attempt(named, heartbeat):
        cfg = compose_job(["debug=default", "train.save_model=false", "study=renamed", f"tracking.uri={named}",
                           f"tracking.heartbeat_seconds={heartbeat}"])
        with pytest.raises(RuntimeError, match="stopped by the test"):
            train(cfg, RunContext(output_dir=root / "jobs" / "renamed", callbacks=[StopBeforeTraining()]))

    attempt(uri, 30)
    (first,) = runs_of(uri, "renamed")
    assert first.info.status == "FAILED" and first.data.params["tracking.uri"] == "sqlite:///.../mlflow.db"
    attempt(str(root / "mlflow.db"), 45)  # the same store as a path, another heartbeat: resumed, not a new run
    (run,) = runs_of(uri, "renamed")
    assert run.info.run_id == first.info.run_id
    assert run.data.tags["xablate.resumes"] == "1"
    assert run.data.tags["xablate.error"] == "RuntimeError: stopped by the test before the first batch"
    assert run.data.params == first.data.params  # the first attempt's values stay
    assert json.loads(run.data.tags["xablate.resume_changed_params"]) == {
        "tracking.uri": ["sqlite:///.../mlflow.db", ".../mlflow.db"], "tracking.heartbeat_seconds": ["30", "45"]}


def test_a_value_mlflow_cut_at_its_length_limit_is_not_a_change_on_resume():
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    long = "x" * (MAX_PARAM_VAL_LENGTH + 1000)
    fresh, changed = unlogged_params({"a": long[:MAX_PARAM_VAL_LENGTH], "b": "1"}, {"a": long, "b": 2, "c": [3]})
    assert fresh == {"c": [3]} and changed == {"b": ["1", "2"]}


def test_a_tuning_run_never_stands_in_for_a_final_replicate_nor_a_final_run_for_a_trial(store, identity):
    """The tuning runs chose the value the finals are read at: as final replicates their scores would be selected
    ones (and they keep no per-image predictions). A pilot run may still be a final replicate."""
    def plan(study, stage):
        client, experiment_id = open_experiment(store[1], study)
        return plan_run(client, experiment_id, identity, force=False, stale_after_seconds=600, stage=stage)

    tuned = hand_made_run(store, "tuned", identity, "FINISHED", **{"xablate.stage": "tune"})
    final = plan("tuned", "final")
    assert (final.action, final.run) == ("new", None)
    assert final.reason == (f"run {tuned} of the same config was trained by the tune stage, which does not stand "
                            f"in for a final job (xablate.staging.may_serve)")
    assert (plan("tuned", "tune").action, plan("tuned", "tune").run.info.run_id) == ("skip", tuned)
    trained = hand_made_run(store, "finals", identity, "FINISHED", **{"xablate.stage": "final"})
    assert plan("finals", "tune").action == "new" and plan("finals", "final").run.info.run_id == trained
    piloted = hand_made_run(store, "piloted", identity, "FINISHED", **{"xablate.stage": "pilot"})
    assert (plan("piloted", "final").action, plan("piloted", "final").run.info.run_id) == ("skip", piloted)
    legacy = hand_made_run(store, "legacy", identity, "FINISHED", **{"xablate.stage": "tune,final"})
    assert plan("legacy", "final").action == "new" and plan("legacy", "tune").run.info.run_id == legacy
    untagged = hand_made_run(store, "untagged", identity, "FINISHED")  # from before stages: serves as it did
    assert plan("untagged", "final").run.info.run_id == untagged == plan("untagged", "tune").run.info.run_id
