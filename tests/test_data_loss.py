"""Metrics that measure one thing: Keras' `loss` adds the weight penalty (optim.weight_decay) to the cross-entropy,
so every run also logs the data loss (the cross-entropy alone), convergence can be read on it, and a claim read
on a loss that includes the penalty says so when the variants' parameter counts make the penalty differ."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from xablate.analysis.store import with_history_measures
from xablate.analysis.verdicts import penalty_note


def test_both_areas_are_each_runs_mean_over_its_epochs():
    runs = pd.DataFrame({"run_id": ["a", "b", "old"]})
    history = pd.DataFrame(
        [{"run_id": "a", "metric": "loss", "epoch": e, "value": v} for e, v in enumerate([1.0, 0.8, 0.6])]
        + [{"run_id": "a", "metric": "data_loss", "epoch": e, "value": v} for e, v in enumerate([0.9, 0.7, 0.5])]
        + [{"run_id": "b", "metric": "loss", "epoch": e, "value": v} for e, v in enumerate([2.0, 1.0])]
        + [{"run_id": "b", "metric": "data_loss", "epoch": e, "value": v} for e, v in enumerate([1.5, 0.5])]
        + [{"run_id": "old", "metric": "loss", "epoch": 0, "value": 3.0}])  # logged before the data loss was
    measured = with_history_measures(runs, history).set_index("run_id")
    assert measured["train_loss_auc"].tolist() == pytest.approx([0.8, 1.5, 3.0])
    assert measured.loc["a", "train_data_loss_auc"] == pytest.approx(0.7)
    assert measured.loc["b", "train_data_loss_auc"] == pytest.approx(1.0)
    assert math.isnan(measured.loc["old", "train_data_loss_auc"])


def _runs(decay: str, params: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame([{"variant": v, "total_params": n, "params": {"optim.weight_decay": decay}}
                         for v, n in params.items() for _ in range(2)])


def test_a_loss_with_a_penalty_that_differs_by_construction_says_so():
    differ = penalty_note("train_loss_auc", _runs("0.0001", {"residual=True": 736_890, "residual=False": 673_306}))
    assert differ == (" — train_loss_auc includes the weight penalty (optim.weight_decay 0.0001), which differs "
                      "between these variants by construction (parameters: residual=False 673,306, residual=True "
                      "736,890); train_data_loss_auc reads the cross-entropy alone")
    same = penalty_note("test_loss", _runs("0.0001", {"act=none": 1000, "act=elu": 1000}))
    assert same.endswith("(optim.weight_decay 0.0001); test_data_loss reads the cross-entropy alone")
    assert penalty_note("train_loss_auc", _runs("0.0", {"a": 1, "b": 2})) == ""  # no penalty: one thing
    assert penalty_note("train_loss_auc", _runs("None", {"a": 1, "b": 2})) == ""
    assert penalty_note("test_accuracy", _runs("0.0001", {"a": 1, "b": 2})) == ""
    assert penalty_note("train_data_loss_auc", _runs("0.0001", {"a": 1, "b": 2})) == ""


@pytest.mark.slow
def test_a_run_logs_its_data_loss_below_its_penalised_loss(tmp_path):
    from mlflow import MlflowClient

    from xablate.config import compose_job
    from xablate.training.trainer import RunContext, train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_job(["debug=default", "train.epochs=2", "train.save_model=false", "optim.weight_decay=0.01",
                       f"tracking.uri={uri}"])
    result = train(cfg, RunContext(output_dir=Path(tmp_path / "out")))
    client = MlflowClient(uri)
    metrics = client.get_run(result.run_id).data.metrics

    def per_epoch(key):
        return [m.value for m in sorted(client.get_metric_history(result.run_id, key), key=lambda m: m.step)]

    loss, data = per_epoch("loss"), per_epoch("data_loss")
    assert len(loss) == len(data) == 2 and len(per_epoch("val_data_loss")) == 2
    assert all(penalised > alone > 0 for penalised, alone in zip(loss, data))  # the penalty is positive
    assert metrics["test_loss"] > metrics["test_data_loss"] > 0
