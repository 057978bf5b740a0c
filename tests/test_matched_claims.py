"""Claims at matched settings of a nuisance factor: read at every level of a factorial, `depends on <factor>` when
the levels disagree, and the variant x factor interaction tested by a repeated-measures ANOVA — which for a 2 x 2
design is exactly the paired t-test of the difference of differences (F = t^2)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from made_up_store import log_study
from xablate.analysis.report import selected_runs
from xablate.analysis.store import history_frame
from xablate.analysis.verdicts import INCONCLUSIVE, REPRODUCED, combine_levels, verdict_tables
from xablate.studies import parse_study

RATES = (0.002, 0.008)
SPEC = {"analysis": {"axes": ["intermediate_act", "optim.learning_rate"],
                     "baseline": {"intermediate_act": "elu", "optim.learning_rate": 0.002},
                     "claims": [{"claim": "none beats elu at matched rates", "metric": "test_accuracy",
                                 "better": "none", "than": ["elu"], "at": {"optim.learning_rate": list(RATES)}}]}}


def _factorial(uri, study, effects: dict[float, float], n: int = 8):
    """none and elu at each rate: elu's accuracy per seed, none = elu + the rate's effect (+ small noise)."""
    rng = np.random.default_rng(7)
    seed_level = rng.normal(0.85, 0.02, n)
    cells = {}
    for rate, effect in effects.items():
        elu = seed_level + rng.normal(0, 0.003, n)
        cells[rate] = {"none": list(elu + effect + rng.normal(0, 0.003, n)), "elu": list(elu)}
        log_study(uri, study, cells[rate], value_params={v: {"optim.learning_rate": str(rate)} for v in cells[rate]})
    return cells


def _verdict(uri, study, spec, monkeypatch):
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, spec))
    selection = selected_runs(uri, study)
    return verdict_tables([(selection, history_frame(uri, selection.runs, metrics=["loss"], axes=selection.axes))])


def test_opposite_decisions_at_two_rates_read_depends_on_the_rate(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cells = _factorial(uri, "flip", {0.002: 0.05, 0.008: -0.05})
    table, rows = _verdict(uri, "flip", SPEC, monkeypatch)
    assert table["verdict"].tolist() == ["depends on optim.learning_rate"]
    assert rows["at"].tolist() == ["optim.learning_rate=0.002", "optim.learning_rate=0.008"]
    assert rows["outcome"].tolist() == [REPRODUCED, "contradicted"]
    assert rows["claim"].tolist() == ["none beats elu at matched rates"] * 2
    assert rows["holm_family"].tolist() == ["this claim of flip alone (2 comparisons)"] * 2  # both levels, one family
    contrast = (np.subtract(cells[0.002]["none"], cells[0.002]["elu"])
                - np.subtract(cells[0.008]["none"], cells[0.008]["elu"]))
    assert rows["interaction_p"].iloc[0] == pytest.approx(stats.ttest_1samp(contrast, 0).pvalue, rel=1e-6)
    evidence = table["evidence"].iloc[0]
    t = stats.ttest_1samp(contrast, 0).statistic
    assert f"F={t ** 2:.3g}" in evidence and "replicate as subject" in evidence
    assert evidence.startswith("matched at each optim.learning_rate (0.002, 0.008): at optim.learning_rate=0.002: "
                               "reproduced;")


def test_the_same_effect_at_every_rate_holds_and_shows_no_interaction(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cells = _factorial(uri, "same", {0.002: 0.05, 0.008: 0.05})
    table, rows = _verdict(uri, "same", SPEC, monkeypatch)
    assert table["verdict"].tolist() == [REPRODUCED] and rows["outcome"].tolist() == [REPRODUCED] * 2
    contrast = (np.subtract(cells[0.002]["none"], cells[0.002]["elu"])
                - np.subtract(cells[0.008]["none"], cells[0.008]["elu"]))
    assert rows["interaction_p"].iloc[0] == pytest.approx(stats.ttest_1samp(contrast, 0).pvalue, rel=1e-6)
    assert rows["interaction_p"].iloc[0] > 0.05


@pytest.mark.parametrize("levels, verdict", [
    (["reproduced", "reproduced"], "reproduced"),
    (["reproduced", "contradicted"], "depends on lr"),
    (["reproduced", "not reproduced (equivalent to elu)"], "depends on lr"),
    (["reproduced", "inconclusive"], INCONCLUSIVE),
    (["contradicted", "not reproduced (equivalent to elu)"], "contradicted"),
    (["not reproduced (equivalent to elu)"] * 2, "not reproduced (equivalent to elu)"),
])
def test_levels_combine_into_one_outcome(levels, verdict):
    assert combine_levels(levels, "lr", "better") == verdict


@pytest.mark.parametrize("at, message", [
    ({"intermediate_act": ["none", "elu"]}, "is one its variants name"),
    ({"optim.weight_decay": [0, 1]}, "not a study axis"),
    ({"optim.learning_rate": [0.002]}, "two or more"),
    ({"optim.learning_rate": [0.002, 0.002]}, "distinct values"),
    ([0.002, 0.008], "allowed: a mapping of one study axis"),
])
def test_a_bad_matched_setting_is_refused(at, message):
    claim = {**SPEC["analysis"]["claims"][0], "at": at}
    if "intermediate_act" in (at if isinstance(at, dict) else {}):
        claim = {**claim, "better": {"intermediate_act": "none"}, "than": [{"intermediate_act": "elu"}]}
    with pytest.raises(ValueError, match=message):
        parse_study("bad", {"analysis": {**SPEC["analysis"], "claims": [claim]}})


def test_at_changes_a_claims_hash_only_where_it_is_set():
    from xablate.studies import claim_hash

    plain = parse_study("s", {"analysis": {"axes": ["intermediate_act"], "claims": [
        {"claim": "c", "metric": "test_accuracy", "better": "none", "than": ["elu"]}]}}).claims[0]
    assert "at" not in plain.as_record()  # a claim registered before `at` existed keeps its hash
    matched = parse_study("flip", SPEC).claims[0]
    assert matched.as_record()["at"] == {"optim.learning_rate": [0.002, 0.008]}
    unmatched = {**{k: v for k, v in SPEC["analysis"]["claims"][0].items() if k != "at"},
                 "better": {"intermediate_act": "none"}, "than": [{"intermediate_act": "elu"}]}
    assert claim_hash(matched) != claim_hash(parse_study("flip", {"analysis": {**SPEC["analysis"],
                                                                              "claims": [unmatched]}}).claims[0])


@pytest.mark.slow
def test_a_debug_factorial_study_end_to_end(tmp_path, monkeypatch):
    """Activation x learning rate, two seeds: the sweep records the matched claim before its runs, and the
    verdict reads it at both rates, with the interaction, pre-registered."""
    from helpers import run_py, runs_of, sqlite_uri
    from xablate.analysis.registration import registrations

    analysis = ("analysis={axes: [intermediate_act, optim.learning_rate], baseline: {intermediate_act: elu, "
                "optim.learning_rate: 0.01}, claims: [{claim: 'none beats elu at matched rates', metric: final_loss, "
                "better: none, than: [elu], at: {optim.learning_rate: [0.01, 1.0e-7]}}]}")
    uri = sqlite_uri(tmp_path)
    proc = run_py("-m", "study=fact", "debug=default", "train.save_model=false", "intermediate_act=none,elu",
                  "optim.learning_rate=0.01,1e-7", "seed=0,1", analysis, f"tracking.uri={uri}", cwd=tmp_path,
                  timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(runs_of(uri, "fact", role="job")) == 8
    spec = parse_study("fact", {"analysis": {
        "axes": ["intermediate_act", "optim.learning_rate"],
        "baseline": {"intermediate_act": "elu", "optim.learning_rate": 0.01},
        "claims": [{"claim": "none beats elu at matched rates", "metric": "final_loss", "better": "none",
                    "than": ["elu"], "at": {"optim.learning_rate": [0.01, 1.0e-7]}}]}})
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: spec)
    selection = selected_runs(uri, "fact")
    labels = registrations(uri, "fact", spec.claims, selection.runs)
    assert labels["none beats elu at matched rates"].startswith("pre-registered (")  # `at` recorded in its hash
    table, rows = verdict_tables([(selection, history_frame(uri, selection.runs, metrics=["loss"],
                                                            axes=selection.axes))])
    assert rows["at"].tolist() == ["optim.learning_rate=0.01", "optim.learning_rate=1e-07"]
    assert rows["n"].tolist() == [2, 2] and not np.isnan(rows["interaction_p"].iloc[0])
    assert table["evidence"].iloc[0].startswith("matched at each optim.learning_rate (0.01, 1e-07):")
