"""The analysis reads a SQLite store with plain SQL (xablate.tracking.reader) and any other store through
MlflowClient: both must give the same records, run by run, in the same order — on the committed store and on a
made-up one holding every case MLflow treats specially (deleted runs and experiments, NaN and infinite metrics,
an empty tag, equal start times, a metric logged twice at one step)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from xablate.tracking.reader import StoreReader

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "store" / "mlflow.db"


class ThroughMlflow(StoreReader):
    """The same reader forced onto MlflowClient, as for a server or PostgreSQL store."""

    def __init__(self, uri: str):
        super().__init__(uri)
        self.path = None


def records(runs) -> list[tuple]:
    def same_nan(metrics):
        return {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
    return [(r.info, r.data.params, same_nan(r.data.metrics), r.data.tags) for r in runs]


def points(history) -> list[tuple]:
    return [(p.run_id, p.key, p.step, "nan" if math.isnan(p.value) else p.value, p.timestamp) for p in history]


QUESTIONS = [dict(tag="xablate.variant"), dict(tag="xablate.variant", newest_first=True),
             dict(tag_equals=("xablate.role", "sweep")), dict(tag="xablate.variant", status="FINISHED", limit=1),
             dict(tag="xablate.identity", newest_first=True, limit=3), dict()]


def compare(uri: str) -> int:
    fast, slow = StoreReader(uri), ThroughMlflow(uri)
    assert fast.path is not None
    assert fast.experiments() == slow.experiments()
    compared = 0
    for name, experiment_id in fast.experiments().items():
        assert fast.experiment_id(name) == slow.experiment_id(name) == experiment_id
        for question in QUESTIONS:
            runs = fast.runs([experiment_id], **question)
            assert records(runs) == records(slow.runs([experiment_id], **question)), (name, question)
            compared += len(runs)
        ids = [r.info.run_id for r in fast.runs([experiment_id], tag="xablate.variant")][:12]
        keys = ["loss", "val_accuracy", "never_logged"]
        assert points(fast.metric_history(ids, keys)) == points(slow.metric_history(ids, keys)), name
    assert fast.experiment_id("no such study") is None and slow.experiment_id("no such study") is None
    return compared


@pytest.mark.skipif(not COMMITTED.is_file(), reason="the committed store is part of the checkout")
def test_sql_and_mlflow_read_the_committed_store_alike(tmp_path):
    copy = tmp_path / "mlflow.db"
    shutil.copy(COMMITTED, copy)  # MlflowClient may touch the file it opens; the committed one stays as it is
    assert compare(f"sqlite:///{copy}") > 500


def test_sql_and_mlflow_agree_on_the_cases_mlflow_treats_specially(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    kept, dropped = client.create_experiment("kept"), client.create_experiment("dropped")
    made = []
    for i in range(6):
        run = client.create_run(kept, start_time=1000 if i < 3 else 2000 + i,  # three equal start times
                                tags={"xablate.variant": "" if i == 5 else f"v={i}"})  # an empty tag: not a variant
        made.append(run.info.run_id)
        client.log_param(run.info.run_id, "seed", str(i))
        client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0 / (i + 1), 10, 0), Metric("loss", 0.5, 11, 1),
                                                   Metric("loss", 0.25, 12, 1),  # one step logged twice
                                                   Metric("val_accuracy", 0.9, 0, 0),  # the latest counts:
                                                   Metric("val_accuracy", {1: math.nan, 2: math.inf}.get(i, 0.8), 0, 1)])
        if i % 2:
            client.set_terminated(run.info.run_id, "FINISHED")
    client.create_run(kept, tags={"xablate.role": "sweep"})
    client.delete_run(made[4])
    client.create_run(dropped, tags={"xablate.variant": "v=9"})
    client.delete_experiment(dropped)

    assert compare(uri) > 0
    reader = StoreReader(uri)
    assert "dropped" not in reader.experiments() and reader.experiment_id("dropped") == dropped  # as MLflow
    variants = reader.runs([kept], tag="xablate.variant")
    assert [r.info.run_id for r in variants] == sorted(made[:3]) + [made[3]]  # ties by run id; deleted, empty out
    latest = {r.info.run_id: r.data.metrics["val_accuracy"] for r in variants}
    assert math.isnan(latest[made[1]]) and latest[made[0]] == 0.8 and latest[made[2]] > 1e308  # MLflow's stored inf
    assert [r.info.run_id for r in reader.runs([kept], tag="xablate.variant", status="FINISHED")] == \
        sorted([made[1]]) + [made[3]]


def test_a_store_not_created_yet_is_left_to_mlflow(tmp_path):
    """Reading never creates or migrates a store by SQL: a missing file goes through MLflow as before."""
    reader = StoreReader(f"sqlite:///{tmp_path / 'none.db'}")
    assert reader.path is None
