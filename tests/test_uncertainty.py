"""The test set as a source of variance: the two-level (seeds x test images) paired bootstrap against scipy where
one level is degenerate, the probability of improvement against its closed form, and both in the verdict of a
made-up store whose runs kept their per-image predictions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from made_up_store import log_study
from xablate.analysis.uncertainty import (correctness, improvement_interval, probability_of_improvement,
                                          two_level_bootstrap)


def test_with_one_image_per_seed_it_is_scipys_bootstrap_over_seeds():
    d = np.random.default_rng(1).normal(0.01, 0.01, 10)
    ours = two_level_bootstrap(d[:, None], resamples=20_000)
    theirs = stats.bootstrap((d,), np.mean, method="percentile", n_resamples=20_000,
                             random_state=np.random.default_rng(2)).confidence_interval
    assert ours.mean == pytest.approx(d.mean())
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high), abs=4e-4)


def test_with_one_seed_it_is_scipys_bootstrap_over_images():
    rng = np.random.default_rng(3)
    d = (rng.random(2000) < 0.92).astype(float) - (rng.random(2000) < 0.90).astype(float)
    ours = two_level_bootstrap(d[None, :], resamples=20_000)
    theirs = stats.bootstrap((d,), np.mean, method="percentile", n_resamples=20_000,
                             random_state=np.random.default_rng(4)).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high), abs=1e-3)


def test_both_levels_widen_the_interval_of_either_alone():
    rng = np.random.default_rng(5)
    seed_effect = rng.normal(0.01, 0.01, 8)[:, None]
    d = seed_effect + rng.normal(0, 0.5, (8, 3000))  # per-image noise around each seed's difference
    both = two_level_bootstrap(d)
    seeds_only = two_level_bootstrap(d.mean(axis=1, keepdims=True))
    assert both.high - both.low > seeds_only.high - seeds_only.low
    assert two_level_bootstrap(d) == both  # a fixed seed: the same store, the same interval


def test_the_probability_of_improvement_is_the_share_of_run_pairs_won_ties_half():
    assert probability_of_improvement([3, 4], [1, 3]) == pytest.approx(3.5 / 4)
    assert probability_of_improvement([1, 2, 3], [1, 2, 3]) == 0.5
    assert probability_of_improvement([5, 6], [1, 2]) == 1.0
    low, high = improvement_interval([0.91, 0.92, 0.90, 0.93], [0.90, 0.89, 0.91, 0.88])
    p = probability_of_improvement([0.91, 0.92, 0.90, 0.93], [0.90, 0.89, 0.91, 0.88])
    assert 0 <= low <= p <= high <= 1
    assert improvement_interval([0.9, 0.9], [0.9, 0.9]) == (0.5, 0.5)
    assert np.isnan(improvement_interval([0.9], [0.8])[0])  # one run each: no interval


def test_predictions_over_another_test_set_are_refused(tmp_path):
    from xablate.tracking.predictions import predictions_bytes

    (tmp_path / "a.npz").write_bytes(predictions_bytes(np.array([0, 1, 2]), np.array([0, 1, 1])))
    (tmp_path / "b.npz").write_bytes(predictions_bytes(np.array([0, 2, 1]), np.array([0, 1, 1])))
    assert correctness([str(tmp_path / "a.npz")]).tolist() == [[True, True, False]]
    with pytest.raises(ValueError, match="another test set"):
        correctness([str(tmp_path / "a.npz"), str(tmp_path / "b.npz")])


def test_the_verdict_carries_the_test_sets_variance_where_predictions_were_kept(tmp_path, monkeypatch):
    from xablate.analysis.report import selected_runs
    from xablate.analysis.store import history_frame
    from xablate.analysis.verdicts import verdict_tables
    from xablate.studies import parse_study

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 10, 400)
    kept = {v: {s: (labels, np.where(rng.random(400) < rate, labels, (labels + 1) % 10)) for s in range(4)}
            for v, rate in (("none", 0.9), ("elu", 0.8))}
    accuracy = {v: [float((p == labels).mean()) for _, p in (kept[v][s] for s in range(4))] for v in kept}
    log_study(uri, "kept", accuracy, predictions=kept)
    log_study(uri, "old", accuracy)  # the same numbers, runs from before predictions were kept
    spec = {"analysis": {"axes": ["intermediate_act"], "baseline": {"intermediate_act": "elu"},
                         "claims": [{"claim": "none beats elu", "metric": "test_accuracy", "better": "none",
                                     "than": ["elu"]}]}}
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, spec))
    rows = {}
    for study in ("kept", "old"):
        selection = selected_runs(uri, study)
        table, rows[study] = verdict_tables([(selection, history_frame(uri, selection.runs, metrics=["loss"],
                                                                       axes=selection.axes))])
    row = rows["kept"].iloc[0]
    d = np.vstack([kept["none"][s][1] == labels for s in range(4)]).astype(float) - \
        np.vstack([kept["elu"][s][1] == labels for s in range(4)]).astype(float)
    expected = two_level_bootstrap(d)
    assert (row.boot_low, row.boot_high) == pytest.approx((expected.low, expected.high))
    assert row.delta == pytest.approx(d.mean()) and row.boot_low < row.delta < row.boot_high
    assert row.predictions == "kept: 4 seeds x 400 test images"
    assert row.p_improvement == pytest.approx(probability_of_improvement(accuracy["none"], accuracy["elu"]))
    old = rows["old"].iloc[0]
    assert np.isnan(old.boot_low) and old.predictions == "not kept (0 of 4 pairs): seed variance only"
    assert old.p_improvement == row.p_improvement  # over the runs' scores: no predictions needed


@pytest.mark.slow
def test_a_run_keeps_predictions_that_score_its_test_accuracy(tmp_path):
    from pathlib import Path

    from mlflow import MlflowClient

    from xablate.analysis.store import runs_frame
    from xablate.config import compose_job
    from xablate.tracking.predictions import PREDICTIONS_TAG, read_predictions
    from xablate.training.trainer import RunContext, train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_job(["debug=default", "train.epochs=1", "train.save_model=false", f"tracking.uri={uri}"])
    result = train(cfg, RunContext(output_dir=Path(tmp_path / "out")))
    run = MlflowClient(uri).get_run(result.run_id)
    assert run.data.tags[PREDICTIONS_TAG] == "predictions.npz"
    [location] = runs_frame(uri)["predictions"].tolist()
    labels, predicted = read_predictions(Path(location))
    assert labels.size == int(run.data.params["data.test_size"])
    assert float((labels == predicted).mean()) == pytest.approx(run.data.metrics["test_accuracy"], abs=1e-6)
