"""The study's conclusion on its sweep's parent run: per variant the mean and 95 % CI of every claimed metric, as
variant_table computes them, plus the verdict and the figures as artifacts; nothing for a sweep without a finished
run; never a failed sweep."""

import math

import pandas as pd
import pytest
from mlflow import MlflowClient
from scipy import stats

from made_up_store import log_study
from xablate.analysis.report import selected_runs
from xablate.analysis.store import history_frame, with_history_measures
from xablate.analysis.tables import variant_table
from xablate.tracking.hydra_callback import summarize_sweep
from xablate.tracking.parent_summary import metric_key, summarize_parent

STUDY = "fig10_intermediate_act"  # declared: claims on test_accuracy and train_loss_auc, baseline none
VALUES = {"none": [0.95, 0.96, 0.97], "elu": [0.90, 0.92, 0.91], "relu": [0.80, 0.85, 0.83]}
LOSSES = {v: {s: [1.0 + k + 0.1 * s, 0.4 + k + 0.05 * s * s] for s in range(3)} for k, v in enumerate(VALUES)}


def artifacts(client, run_id, path=None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.fixture(scope="module")
def summarized(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('summary') / 'mlflow.db'}"
    log_study(uri, STUDY, {"none": [0.5], "elu": [0.5], "relu": [0.5]})  # an older sweep: superseded below
    log_study(uri, STUDY, VALUES, losses=LOSSES)
    return uri, summarize_parent(uri, STUDY)


def test_the_latest_parent_carries_variant_table_s_means_and_intervals(summarized):
    uri, parent_id = summarized
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    parents = client.search_runs([experiment], "tags.`xablate.role` = 'sweep'", order_by=["attributes.start_time DESC"])
    assert parent_id == parents[0].info.run_id and not parents[1].data.metrics  # the latest sweep's parent only
    logged = client.get_run(parent_id).data.metrics
    selection = selected_runs(uri, STUDY)
    selection.runs = with_history_measures(selection.runs, history_frame(uri, selection.runs, metrics=["loss"]))
    expected = {}
    for metric in ("test_accuracy", "train_loss_auc"):
        for row in variant_table(selection, metric).itertuples():
            expected.update({metric_key(metric, row.variant, s): getattr(row, s) for s in ("mean", "low", "high")})
    assert set(logged) == set(expected) and len(expected) == 18
    assert logged == pytest.approx(expected, rel=1e-12)
    # and in closed form: none's test accuracy, 0.95/0.96/0.97, is 0.96 ± t(0.975, 2) · 0.01 / √3
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert logged["test_accuracy.intermediate_act_none.mean"] == pytest.approx(0.96)
    assert logged["test_accuracy.intermediate_act_none.low"] == pytest.approx(0.96 - half)
    assert logged["test_accuracy.intermediate_act_none.high"] == pytest.approx(0.96 + half)
    # train_loss_auc: each run's loss averaged over its two epochs; relu (k=2), seed s: 2.7 + 0.05 s + 0.025 s²
    assert logged["train_loss_auc.intermediate_act_relu.mean"] == pytest.approx(
        sum(2.7 + 0.05 * s + 0.025 * s * s for s in range(3)) / 3)


def test_the_parent_carries_the_table_the_verdict_and_the_figures(summarized, tmp_path):
    uri, parent_id = summarized
    client = MlflowClient(uri)
    found = artifacts(client, parent_id)
    assert {"summary/variants.csv", "summary/variants.md", "summary/verdict.md", "summary/verdict.csv",
            f"summary/figures/{STUDY}.png", "summary/figures/capacity.png", "summary/figures/claims.png",
            "summary/figures/table.md"} <= found
    table = pd.read_csv(client.download_artifacts(parent_id, "summary/variants.csv", str(tmp_path)))
    assert list(table["variant"][:3]) == ["intermediate_act=none", "intermediate_act=elu", "intermediate_act=relu"]
    assert list(table["metric"].unique()) == ["test_accuracy", "train_loss_auc"]
    verdict = open(client.download_artifacts(parent_id, "summary/verdict.md", str(tmp_path))).read()
    assert "no intermediate activation gives higher final accuracy" in verdict  # recorded by no sweep: exploratory,
    assert "| reproduced | exploratory (claim not recorded before its runs) |" in verdict  # so not in bold
    note = client.get_run(parent_id).data.tags["mlflow.note.content"]  # the run's description in the UI
    assert "| test_accuracy | intermediate_act=none | 3 | 0 | 0 | 0.9600 [" in note and "**Verdict**" in note


def test_a_sweep_without_a_finished_run_gets_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_study(uri, STUDY, {"none": [0.9], "elu": [0.8]}, diverged={"none": [0], "elu": [0]})  # all FAILED
    client = MlflowClient(uri)
    [parent] = client.search_runs([client.get_experiment_by_name(STUDY).experiment_id], "tags.`xablate.role` = 'sweep'")
    assert summarize_parent(uri, STUDY, parent.info.run_id) is None
    assert summarize_parent(uri, "no_such_study") is None
    run = client.get_run(parent.info.run_id)
    assert not run.data.metrics and "mlflow.note.content" not in run.data.tags
    assert artifacts(client, parent.info.run_id) == set()


def test_an_error_in_the_summary_is_one_line_never_a_failed_sweep(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_study(uri, STUDY, {"none": [0.9]})
    capsys.readouterr()
    summarize_sweep(uri, STUDY, "0" * 32)  # no such parent run
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("[xablate] could not log the study's summary on the sweep's parent run: ")
    assert err.count("\n") == 1
