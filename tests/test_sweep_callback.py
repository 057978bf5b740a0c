"""The sweep callback in the launcher's process: its parent run stays RUNNING while the jobs run (regression:
the stale-parent sweep closed the parent it had just created, as it belongs to this very process), a parent
left RUNNING by a dead launcher is closed KILLED, and the sweep's keys reach its jobs."""

from mlflow import MlflowClient

from helpers import sqlite_uri
from xablate.config import compose_job
from xablate.sweeps import SWEEP_KEYS_FILE
from xablate.tracking.hydra_callback import MlflowSweepCallback
from xablate.tracking.previous_runs import HOST_TAG, PID_TAG
from xablate.tracking.store import PARENT_RUN_FILE, open_experiment


def test_the_parent_runs_while_its_jobs_do_and_a_dead_launchers_parent_is_closed(tmp_path):
    uri = sqlite_uri(tmp_path)
    client, experiment_id = open_experiment(uri, "fig10_intermediate_act")
    import socket

    dead = client.create_run(experiment_id, tags={"xablate.role": "sweep", HOST_TAG: socket.gethostname(),
                                                  PID_TAG: "999999999"}).info.run_id
    cfg = compose_job([f"tracking.uri={uri}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                       "experiment=fig10_intermediate_act", "hydra.sweeper.params.seed='0,1'"], hydra=True)
    callback = MlflowSweepCallback()
    callback.on_multirun_start(cfg)
    parent = (tmp_path / "sweep" / PARENT_RUN_FILE).read_text()
    run = client.get_run(parent)
    assert run.info.status == "RUNNING"
    assert run.info.run_name == "fig10_intermediate_act: act × seed" and run.data.tags["xablate.sweep_keys"] == "intermediate_act seed"
    assert (tmp_path / "sweep" / SWEEP_KEYS_FILE).read_text().split() == ["intermediate_act", "seed"]
    assert client.get_run(dead).info.status == "KILLED"
    callback._close_parent()
    assert client.get_run(parent).info.status == "FAILED"  # no child finished


def test_a_command_running_one_value_of_a_studys_axis_names_its_runs_by_that_value(tmp_path):
    """`-m experiment=fig10_intermediate_act intermediate_act=elu` sweeps nothing on the command line, but its runs
    are the study's ELU variant: the sweep's keys include the study's axes (so the job's tag says so)."""
    uri = sqlite_uri(tmp_path)
    cfg = compose_job([f"tracking.uri={uri}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                       "experiment=fig10_intermediate_act", "intermediate_act=elu"], hydra=True)
    MlflowSweepCallback().on_multirun_start(cfg)
    assert (tmp_path / "sweep" / SWEEP_KEYS_FILE).read_text().split() == ["seed", "intermediate_act"]
    from xablate.gate import parse_job
    from xablate.training.job import Job, RunContext

    job = Job.prepare(parse_job(compose_job(["debug=default", "experiment=fig10_intermediate_act",
                                             "intermediate_act=elu"])),
                      RunContext(output_dir=tmp_path, sweep_dir=tmp_path / "sweep"), "tensorflow")
    assert (job.label, job.name) == ("intermediate_act=elu", "act=elu · seed 0")
    single = Job.prepare(parse_job(compose_job(["debug=default", "experiment=fig9_residual", "residual=false"])),
                         RunContext(output_dir=tmp_path), "tensorflow")  # one run, no sweep: the study's axes
    assert single.label == "residual=False"


def test_variant_tags_are_repaired_from_params(tmp_path):
    import json

    from made_up_store import log_study
    from xablate.tracking.retag import retag_variants

    uri = sqlite_uri(tmp_path)
    ids = log_study(uri, "s", {"elu": [0.8, 0.81], "relu": [0.7, 0.71]})
    client = MlflowClient(uri)
    for run_id in ids["elu"]:
        client.set_tag(run_id, "xablate.variant", "baseline")
        client.set_tag(run_id, "xablate.axes", "{}")
    assert retag_variants(uri, "s", ["intermediate_act"]) == 2
    tags = [client.get_run(r).data.tags for r in ids["elu"] + ids["relu"]]
    assert [t["xablate.variant"] for t in tags] == ["intermediate_act=elu"] * 2 + ["intermediate_act=relu"] * 2
    assert json.loads(tags[0]["xablate.axes"]) == {"intermediate_act": "elu"}
    assert retag_variants(uri, "s", ["intermediate_act"]) == 0


def test_a_stopped_sweep_closes_its_parent_killed_unless_a_child_failed_otherwise(tmp_path):
    """Ctrl-C/SIGTERM: KILLED, like its interrupted run; a child that FAILED for its own reason keeps the parent
    FAILED, so a stop never hides a failure."""
    import signal

    from xablate import stop_request

    uri = sqlite_uri(tmp_path)
    previous = {signum: signal.getsignal(signum) for signum in stop_request.SIGNALS}

    def close(sweep: str, children: list[str], stopped: bool) -> str:
        cfg = compose_job([f"tracking.uri={uri}", f"hydra.sweep.dir={tmp_path / sweep}",
                           "experiment=fig10_intermediate_act", "hydra.sweeper.params.seed='0,1'"], hydra=True)
        callback = MlflowSweepCallback()
        callback.on_multirun_start(cfg)
        parent = (tmp_path / sweep / PARENT_RUN_FILE).read_text()
        client, experiment_id = open_experiment(uri, "fig10_intermediate_act")
        for status in children:
            child = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
            client.set_terminated(child, status=status)
        if stopped:
            stop_request._received.append(signal.SIGTERM)
        try:
            callback._close_parent(jobs_raised=stopped)
        finally:
            stop_request.forget()
        return client.get_run(parent).info.status

    try:
        assert close("a", ["FINISHED", "KILLED"], stopped=True) == "KILLED"
        assert close("b", ["FAILED", "KILLED"], stopped=True) == "FAILED"
        assert close("c", ["FINISHED"], stopped=True) == "KILLED"  # stopped between two jobs
        assert close("d", ["FINISHED", "KILLED"], stopped=False) == "KILLED"  # the stop reached a worker only
        assert close("e", ["FINISHED", "FAILED"], stopped=False) == "FAILED"
        assert close("f", ["FINISHED", "FINISHED"], stopped=False) == "FINISHED"
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
