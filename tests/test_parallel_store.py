"""Four joblib workers training at once into one SQLite store, through xablate's `hydra/launcher=parallel`
config: one parent, every run and every metric point arrives."""

from mlflow import MlflowClient

from helpers import run_py, runs_of, sqlite_uri
import pytest  # noqa: E402

pytestmark = pytest.mark.slow  # starts run.py or trains for many seconds: the full suite's tier

VARIANTS = ["1", "2", "4", "depthwise"]
EPOCH_METRICS = {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds",
                 "images_per_second"}


def test_four_joblib_workers_write_one_sqlite_store(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = run_py("-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=4", f"segments={','.join(VARIANTS)}",
                  "debug=default", "study=parallel", f"tracking.uri={uri}", cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=4" in proc.stdout + proc.stderr  # really the joblib launcher, 4 workers

    parents = runs_of(uri, "parallel", role="sweep")
    jobs = runs_of(uri, "parallel", role="job")
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert sorted(r.data.tags["xablate.segments"] for r in jobs) == sorted(VARIANTS)
    assert {r.info.status for r in jobs} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parents[0].info.run_id}
    assert len({r.data.tags["xablate.pid"] for r in jobs}) > 1  # written from several processes
    client = MlflowClient(uri)
    for run in jobs:
        assert EPOCH_METRICS <= set(run.data.metrics)
        for key in EPOCH_METRICS:
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1], key
        assert int(run.data.params["model.total_params"]) > 0
        assert {"config.yaml", "history.csv", "model.keras"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
