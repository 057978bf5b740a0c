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
