"""A 2-variant debug sweep through each of Hydra's launchers (our ready configs over the plugins): one
parent, two FINISHED children, in one store; the Ray one against a local Ray instance the test starts."""

from pathlib import Path

import pytest

from helpers import run_py, runs_of, sqlite_uri

pytestmark = pytest.mark.slow  # starts run.py or trains for many seconds: the full suite's tier


def assert_one_parent_two_finished_children(uri, study):
    parents = runs_of(uri, study, role="sweep")
    children = runs_of(uri, study, role="job")
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert sorted(c.data.tags["xablate.residual"] for c in children) == ["False", "True"]
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert all(c.data.metrics["epochs_completed"] == 2 for c in children)
    return children


def sweep(tmp_path, study, *launcher, env=None):
    uri = sqlite_uri(tmp_path)
    proc = run_py("-m", *launcher, "residual=true,false", "debug=default", f"study={study}", f"tracking.uri={uri}",
                  cwd=tmp_path, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return uri, proc


# the joblib launcher (hydra/launcher=parallel): tests/test_parallel_store.py, four workers into one store


def test_submitit_local_launcher(tmp_path):
    uri, proc = sweep(tmp_path, "submitit", "hydra/launcher=slurm_local")
    assert "Submitit 'local' sweep output dir" in proc.stdout + proc.stderr
    children = assert_one_parent_two_finished_children(uri, "submitit")
    assert len({c.data.tags["xablate.pid"] for c in children}) == 2
    assert list(Path(tmp_path, "multirun", "submitit").glob("*/.submitit/*"))  # submitit's own job folders


# the Ray launcher against a Ray instance: tests/test_cluster.py (inside a network namespace of its own, where Ray
# keeps to loopback; here its head would advertise this machine's own address)
