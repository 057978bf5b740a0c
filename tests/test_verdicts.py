"""Verdicts, tables and the seed plan on made-up stores whose right answers are known in closed form: real
MLflow runs logged as the trainer logs them (tests/made_up_store.py), read back through xablate.analysis."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from made_up_store import log_study
from xablate.analysis.plan import plan_seeds
from xablate.analysis.report import selected_runs
from xablate.analysis.store import history_frame
from xablate.analysis.tables import variant_table
from xablate.analysis.verdicts import (CONTRADICTED, EQUIVALENT, INCONCLUSIVE, NON_INFERIOR, REPRODUCED, spread_range,
                                      verdict_table, verdict_tables)
from xablate.studies import parse_study

FIG10 = {"analysis": {"title": "made-up Fig. 10", "axes": ["intermediate_act"],
                      "baseline": {"intermediate_act": "none"},
                      "claims": [{"claim": "none beats elu and relu", "metric": "test_accuracy", "better": "none",
                                  "than": ["elu", "relu"]}]}}


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _analysed(uri, study, spec, monkeypatch):
    """The study's selection and history, its analysis block `spec` standing in for a study file."""
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, spec))
    selection = selected_runs(uri, study)
    return selection, history_frame(uri, selection.runs, metrics=["loss"], axes=selection.axes)


def _verdict(uri, study, spec, monkeypatch):
    selection, history = _analysed(uri, study, spec, monkeypatch)
    return selection, verdict_table([(selection, history)])


def _log_converging(uri, study, seeds, rates, rng_seed, accuracy):
    """Two variants whose training losses fall as exp(-rate * epoch) (plus noise) over 5 epochs, per seed."""
    rng = np.random.default_rng(rng_seed)
    losses = {v: {s: list(np.exp(-np.arange(5) * rate) + rng.normal(0, 0.01, 5)) for s in range(seeds)}
              for v, rate in rates.items()}
    log_study(uri, study, {v: _seeds(mean, 0.01, n=seeds, seed=i) for v, (i, mean) in accuracy.items()},
              losses=losses)
    return losses


def _seeds(mean, spread, n=10, seed=0):
    return list(mean + np.random.default_rng(seed).normal(0, spread, n))


def test_a_clear_win_over_both_is_reproduced(uri, monkeypatch):
    log_study(uri, "f10", {"none": _seeds(0.90, 0.01, seed=1), "elu": _seeds(0.80, 0.01, seed=2),
                           "relu": _seeds(0.82, 0.01, seed=3)})
    _, table = _verdict(uri, "f10", FIG10, monkeypatch)
    assert table["verdict"].tolist() == [REPRODUCED]


def test_a_clear_loss_to_one_is_contradicted(uri, monkeypatch):
    log_study(uri, "f10", {"none": _seeds(0.80, 0.01, seed=1), "elu": _seeds(0.90, 0.01, seed=2),
                           "relu": _seeds(0.70, 0.01, seed=3)})
    _, table = _verdict(uri, "f10", FIG10, monkeypatch)
    assert table["verdict"].tolist() == [CONTRADICTED]


def test_noise_is_inconclusive_and_says_what_it_could_not_detect(uri, monkeypatch):
    values = {"none": _seeds(0.85, 0.03, seed=1), "elu": _seeds(0.85, 0.03, seed=2), "relu": _seeds(0.85, 0.03, seed=3)}
    log_study(uri, "f10", values)
    _, table = _verdict(uri, "f10", FIG10, monkeypatch)
    [row] = table.itertuples()
    assert row.verdict == INCONCLUSIVE
    sds = [np.std(np.subtract(values["none"], values[o]), ddof=1) for o in ("elu", "relu")]
    from xablate.analysis.stats import min_detectable_effect
    assert row.mde == pytest.approx(max(min_detectable_effect(sd, 10) for sd in sds))
    assert f"post hoc: at the observed spread a true difference of {row.mde:.4f} would be found 80% of the time" \
        in row.evidence
    low, high = spread_range(10)  # chi-square interval of a standard deviation from 10 values
    assert (low, high) == pytest.approx((math.sqrt(9 / stats.chi2.ppf(0.975, 9)), math.sqrt(9 / stats.chi2.ppf(0.025, 9))))
    assert f"the true one may be {low:.2f}x to {high:.2f}x it" in row.evidence
    assert spread_range(3) == pytest.approx((0.52, 6.28), abs=0.01)  # the "0.52x to 6.3x" at n = 3


def test_zero_spread_is_inconclusive_however_consistent(uri, monkeypatch):
    """The same one-image gain (1/359) in every seed: no noise estimate, so no verdict either way."""
    base = _seeds(0.90, 0.02, n=3, seed=4)
    log_study(uri, "f10", {"none": [b + 1 / 359 for b in base], "elu": base, "relu": base})
    _, table = _verdict(uri, "f10", FIG10, monkeypatch)
    assert table["verdict"].tolist() == [INCONCLUSIVE]
    assert "zero spread" in table["evidence"].iloc[0]


def test_holm_runs_across_a_studys_pre_registered_claims_and_within_an_exploratory_one(uri, monkeypatch):
    """Two claims of one comparison each, both p between 0.025 and 0.05: pre-registered together, Holm doubles
    both p (inconclusive); exploratory, each is its own family (reproduced, Holm p = p)."""
    from xablate.analysis.verdicts import verdict_tables

    rng = np.random.default_rng(0)
    base = list(rng.uniform(0.80, 0.85, 6))
    diffs = [0.011, 0.002, 0.018, 0.009, 0.015, -0.003]
    p = stats.ttest_1samp(diffs, 0).pvalue
    log_study(uri, "f10", {"none": [b + d for b, d in zip(base, diffs)], "elu": base, "relu": base})
    claims = [{"claim": f"none beats {o}", "metric": "test_accuracy", "better": "none", "than": [o]}
              for o in ("elu", "relu")]
    selection, history = _analysed(uri, "f10", {"analysis": {**FIG10["analysis"], "claims": claims}}, monkeypatch)
    both = {("f10", c["claim"]): "pre-registered (2026-01-01 00:00 UTC)" for c in claims}
    table, rows = verdict_tables([(selection, history)], both)
    assert table["verdict"].tolist() == [INCONCLUSIVE, INCONCLUSIVE]
    assert rows["p_holm"].tolist() == pytest.approx([2 * p, 2 * p])
    assert rows["holm_family"].tolist() == ["the pre-registered claims of f10 (2 comparisons)"] * 2
    one = {("f10", "none beats elu"): both[("f10", "none beats elu")]}  # the other claim written after its runs
    table, rows = verdict_tables([(selection, history)], one)
    assert table["verdict"].tolist() == [REPRODUCED, REPRODUCED]
    assert rows["p_holm"].tolist() == pytest.approx([p, p])
    assert rows["holm_family"].tolist() == ["the pre-registered claims of f10 (1 comparison)",
                                            "this claim of f10 alone (1 comparison)"]


def test_holm_turns_a_borderline_family_inconclusive(uri, monkeypatch):
    """Two comparisons each significant alone (p < 0.05) but not after Holm (2 x p > 0.05)."""
    rng = np.random.default_rng(0)
    base = list(rng.uniform(0.80, 0.85, 6))
    diffs = [0.011, 0.002, 0.018, 0.009, 0.015, -0.003]  # p between 0.025 and 0.05 (checked below)
    p = stats.ttest_1samp(diffs, 0).pvalue
    assert 0.025 < p < 0.05
    log_study(uri, "f10", {"none": [b + d for b, d in zip(base, diffs)], "elu": base, "relu": base})
    _, table = _verdict(uri, "f10", FIG10, monkeypatch)
    assert table["verdict"].tolist() == [INCONCLUSIVE]
    assert f"p={p:.3g}, Holm p={2 * p:.3g}, n=6" in table["evidence"].iloc[0]
    one = {"analysis": {**FIG10["analysis"], "claims": [{**FIG10["analysis"]["claims"][0], "than": ["elu"]}]}}
    _, single = _verdict(uri, "f10", one, monkeypatch)  # the same comparison alone: reproduced
    assert single["verdict"].tolist() == [REPRODUCED]


def test_a_diverged_seed_counts_against_its_variant(uri, monkeypatch):
    """relu wins every seed it finishes, but two of its ten seeds diverged: scored at chance (0.1), they turn a
    clear loss for `none` into no significant difference; the table counts them apart from failures."""
    none, relu = _seeds(0.80, 0.01, seed=5), _seeds(0.83, 0.01, seed=6)
    spec = {"analysis": {**FIG10["analysis"], "claims": [{**FIG10["analysis"]["claims"][0], "than": ["relu"]}]}}
    log_study(uri, "dropped", {"none": none, "relu": relu})
    _, without = _verdict(uri, "dropped", spec, monkeypatch)
    assert without["verdict"].tolist() == [CONTRADICTED]
    log_study(uri, "scored", {"none": none, "relu": relu}, diverged={"relu": [1, 7]})
    selection, table = _verdict(uri, "scored", spec, monkeypatch)
    assert table["verdict"].tolist() == [INCONCLUSIVE]
    rows = variant_table(selection).set_index("variant")
    assert rows.loc["intermediate_act=relu", ["seeds", "diverged", "failed"]].tolist() == [8, 2, 0]
    expected = np.mean([0.1 if i in (1, 7) else v for i, v in enumerate(relu)])
    assert rows.loc["intermediate_act=relu", "mean"] == pytest.approx(expected)


def test_convergence_is_judged_on_the_training_loss_area_not_on_accuracy(uri, monkeypatch):
    """`none` ends less accurate but its training loss falls faster: the convergence claim follows the loss."""
    _log_converging(uri, "conv", 8, {"none": 0.9, "elu": 0.4}, 7, {"none": (8, 0.80), "elu": (9, 0.90)})
    claims = [{"claim": "none converges faster", "metric": "train_loss_auc", "better": "none", "than": ["elu"]},
              {"claim": "none ends more accurate", "metric": "test_accuracy", "better": "none", "than": ["elu"]}]
    spec = {"analysis": {**FIG10["analysis"], "claims": claims}}
    _, table = _verdict(uri, "conv", spec, monkeypatch)
    assert table["verdict"].tolist() == [REPRODUCED, CONTRADICTED]


def test_non_inferiority_with_a_margin(uri, monkeypatch):
    spec = {"analysis": {"axes": ["segments"], "baseline": {"segments": "depthwise"},
                         "claims": [{"claim": "depthwise no worse than k=4 within 1 point", "metric": "test_accuracy",
                                     "no_worse": "depthwise", "than": [4], "margin": 0.01}]}}
    base = _seeds(0.90, 0.01, seed=10)
    noise = np.random.default_rng(11).normal(0, 0.002, 10)
    log_study(uri, "close", {"depthwise": list(np.add(base, noise) - 0.002), 4: base}, axis="segments")
    log_study(uri, "worse", {"depthwise": list(np.add(base, noise) - 0.05), 4: base}, axis="segments")
    assert _verdict(uri, "close", spec, monkeypatch)[1]["verdict"].tolist() == [NON_INFERIOR]
    assert _verdict(uri, "worse", spec, monkeypatch)[1]["verdict"].tolist() == [CONTRADICTED]


def test_table_rows_intervals_and_holm(uri, monkeypatch):
    values = {"none": [0.90, 0.92, 0.91], "elu": [0.88, 0.91, 0.87], "relu": [1.0, 1.0, 0.99]}
    log_study(uri, "t", values)
    selection, _ = _verdict(uri, "t", FIG10, monkeypatch)
    table = variant_table(selection).set_index("variant")
    assert list(table.index) == ["intermediate_act=none", "intermediate_act=elu", "intermediate_act=relu"]
    assert (table["high"] <= 1.0).all() and (table["low"] >= 0.0).all()  # relu's t-band would pass 1
    p = [stats.ttest_rel(values[v], values["none"]).pvalue for v in ("elu", "relu")]
    assert table.loc["intermediate_act=elu", "p_value"] == pytest.approx(p[0])
    assert table.loc[["intermediate_act=elu", "intermediate_act=relu"], "p_holm"].tolist() == pytest.approx(
        [min(1, max(2 * min(p), p[0] if p[0] > p[1] else 2 * p[0])), min(1, max(2 * min(p), p[1] if p[1] > p[0] else 2 * p[1]))])
    assert math.isnan(table.loc["intermediate_act=none", "p_value"])


def test_the_seed_plan_matches_a_closed_form_power_calculation(uri, monkeypatch):
    """3 seeds with paired differences of known spread -> the n at which a two-sided paired t-test reaches
    80 % power for a 0.01 difference, computed here straight from the noncentral t."""
    base = [0.90, 0.88, 0.91]
    diffs = [0.010, -0.012, 0.004]
    log_study(uri, "p", {"none": base, "elu": list(np.add(base, diffs))})
    spec = {"analysis": {"axes": ["intermediate_act"], "baseline": {"intermediate_act": "none"}}}
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, spec))
    selection = selected_runs(uri, "p")
    history = history_frame(uri, selection.runs, metrics=["loss"], axes=selection.axes)
    plan = plan_seeds(selection, history, 0.01, ["study=p", "intermediate_act=none,elu"])
    sd = float(np.std(diffs, ddof=1))

    def power(n):
        shift, critical = 0.01 / sd * math.sqrt(n), stats.t.ppf(0.975, n - 1)
        return stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift)

    expected = next(n for n in range(2, 500) if power(n) >= 0.8)
    assert plan.seeds == expected and plan.seeds_now == 3
    assert plan.rows["seeds_needed"].tolist() == [expected]
    assert plan.command == "python run.py -m study=p intermediate_act=none,elu seed=" + ",".join(
        str(s) for s in range(3, expected))


EQUIVALENCE = {"analysis": {"axes": ["intermediate_act"], "baseline": {"intermediate_act": "none"},
                            "claims": [{"claim": "none and elu are equivalent", "metric": "test_accuracy",
                                        "equivalent": ["none", "elu"], "margin": 0.01}]}}


def _comparisons(uri, study, spec, monkeypatch):
    return verdict_tables([_analysed(uri, study, spec, monkeypatch)])


def test_a_small_tight_difference_is_equivalent_at_one_point_and_not_at_a_tenth(uri, monkeypatch):
    """A and B differ by 0.2 points with a tight spread: TOST at ±1 point says equivalent, at ±0.1 point it
    cannot (the difference itself is larger than the margin); the p-values are scipy's two one-sided tests."""
    base = _seeds(0.90, 0.01, seed=12)
    diffs = 0.002 + np.random.default_rng(13).normal(0, 0.001, 10)
    log_study(uri, "eq", {"none": list(np.add(base, diffs)), "elu": base})
    claims, rows = _comparisons(uri, "eq", EQUIVALENCE, monkeypatch)
    assert claims["verdict"].tolist() == [EQUIVALENT]
    [row] = rows.itertuples()
    tost = max(stats.ttest_1samp(diffs, -0.01, alternative="greater").pvalue,
               stats.ttest_1samp(diffs, 0.01, alternative="less").pvalue)
    assert row.p == pytest.approx(tost) and row.p_holm == pytest.approx(tost) and row.p < 0.05
    assert row.effect_size == pytest.approx(np.mean(diffs) / np.std(diffs, ddof=1))
    assert row.delta == pytest.approx(np.mean(diffs)) and row.n == 10 and row.margin == 0.01
    from statsmodels.stats.power import TTestPower
    one_sided = TTestPower().power(0.01 / np.std(diffs, ddof=1), 10, 0.05, alternative="larger")
    assert row.power == pytest.approx(2 * one_sided - 1) and row.power_basis == "declared effect, observed spread"
    tight = {"analysis": {**EQUIVALENCE["analysis"],
                          "claims": [{**EQUIVALENCE["analysis"]["claims"][0], "margin": 0.001}]}}
    claims, rows = _comparisons(uri, "eq", tight, monkeypatch)
    assert claims["verdict"].tolist() == [CONTRADICTED]  # the whole 95 % CI lies above +0.1 point
    assert rows["p"].iloc[0] > 0.05


def test_equivalence_is_inconclusive_when_the_interval_straddles_the_margin(uri, monkeypatch):
    base = _seeds(0.90, 0.01, seed=14)
    diffs = 0.008 + np.random.default_rng(15).normal(0, 0.01, 10)
    log_study(uri, "eq", {"none": list(np.add(base, diffs)), "elu": base})
    claims, rows = _comparisons(uri, "eq", EQUIVALENCE, monkeypatch)
    assert claims["verdict"].tolist() == [INCONCLUSIVE]
    assert rows["ci_low"].iloc[0] < 0.01 < rows["ci_high"].iloc[0]


def test_a_superiority_claim_with_a_margin_says_equivalent_when_there_is_no_difference_that_matters(uri, monkeypatch):
    base = _seeds(0.90, 0.01, seed=16)
    diffs = np.random.default_rng(17).normal(0, 0.002, 10)
    log_study(uri, "sup", {"none": list(np.add(base, diffs)), "elu": base})
    spec = {"analysis": {**FIG10["analysis"], "claims": [{**FIG10["analysis"]["claims"][0], "than": ["elu"],
                                                          "margin": 0.01, "smallest_effect": 0.01}]}}
    claims, rows = _comparisons(uri, "sup", spec, monkeypatch)
    # decided, against the claim without contradicting it: the comparison is equivalent, the claim not reproduced
    assert claims["verdict"].tolist() == ["not reproduced (equivalent to intermediate_act=elu)"]
    [row] = rows.itertuples()
    assert row.outcome == EQUIVALENT
    assert row.p == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue) and row.p > 0.05 and row.p_tost < 0.05
    from statsmodels.stats.power import TTestPower
    sd = np.std(diffs, ddof=1)
    expected = TTestPower().power(0.01 / sd, 10, 0.05, alternative="two-sided")
    if math.isnan(expected):  # statsmodels' two-sided form is NaN this far out; its upper tail at alpha/2 is all
        expected = TTestPower().power(0.01 / sd, 10, 0.025, alternative="larger")
    assert row.power == pytest.approx(expected) and row.power > 0.99
    assert "TOST p=" in claims["evidence"].iloc[0] and "power " in claims["evidence"].iloc[0]


@pytest.mark.parametrize("kind, decisions, verdict", [
    ("better", [REPRODUCED, REPRODUCED], REPRODUCED),
    ("better", [REPRODUCED, EQUIVALENT], "not reproduced (equivalent to b)"),  # decided both: stops the seeds
    ("better", [EQUIVALENT, EQUIVALENT], "not reproduced (equivalent to a; equivalent to b)"),
    ("better", [REPRODUCED, INCONCLUSIVE], INCONCLUSIVE),  # one still open: more seeds
    ("better", [EQUIVALENT, INCONCLUSIVE], INCONCLUSIVE),
    ("better", [CONTRADICTED, INCONCLUSIVE], CONTRADICTED),  # significant against: decided whatever the rest
    ("better", [REPRODUCED, CONTRADICTED], CONTRADICTED),
    ("no_worse", [NON_INFERIOR, NON_INFERIOR], NON_INFERIOR),
    ("no_worse", [NON_INFERIOR, INCONCLUSIVE], INCONCLUSIVE),
    ("equivalent", [EQUIVALENT, EQUIVALENT], EQUIVALENT),
    ("equivalent", [EQUIVALENT, CONTRADICTED], CONTRADICTED),
    ("better", [], INCONCLUSIVE),
])
def test_a_claim_is_decided_when_each_comparison_is_in_whatever_direction(kind, decisions, verdict):
    from xablate.analysis.verdicts import combine

    assert combine(decisions, ["a", "b"][:len(decisions)], kind) == verdict


def test_the_comparison_rows_recompute_from_the_store_for_a_metric_where_lower_is_better(uri, monkeypatch):
    """Δ is variant − baseline in the metric's own units; for a loss the claim's sign flips only the test."""
    losses = _log_converging(uri, "conv", 6, {"none": 0.9, "elu": 0.5}, 18, {"none": (1, 0.8), "elu": (2, 0.8)})
    fast, slow = losses["none"], losses["elu"]
    spec = {"analysis": {**FIG10["analysis"], "claims": [
        {"claim": "none converges faster", "metric": "final_loss", "better": "none", "than": ["elu"]}]}}
    claims, rows = _comparisons(uri, "conv", spec, monkeypatch)
    [row] = rows.itertuples()
    raw = [fast[s][-1] - slow[s][-1] for s in range(6)]
    half = stats.t.ppf(0.975, 5) * np.std(raw, ddof=1) / math.sqrt(6)
    assert row.delta == pytest.approx(np.mean(raw)) and row.delta < 0 and not row.higher_is_better
    assert (row.ci_low, row.ci_high) == pytest.approx((np.mean(raw) - half, np.mean(raw) + half))
    assert row.p == pytest.approx(stats.ttest_1samp(raw, 0).pvalue)
    assert row.effect_size == pytest.approx(np.mean(raw) / np.std(raw, ddof=1))  # signed like delta
    evidence = claims["evidence"].iloc[0]  # the text signed as the table: variant - baseline (lower is better)
    assert "d=" + f"{np.mean(raw) / np.std(raw, ddof=1):.2f}" in evidence and "final_loss (lower is better)" in evidence
    assert f"{np.mean(raw):+.4f} [{np.mean(raw) - half:+.4f}, {np.mean(raw) + half:+.4f}]" in evidence
    assert row.outcome == REPRODUCED and row.power_basis == "post hoc" and math.isnan(row.power)
    assert list(rows.columns) == ["study", "claim", "metric", "higher_is_better", "kind", "variant", "baseline", "n",
                                  "delta", "ci_low", "ci_high", "p", "p_holm", "p_tost", "p_tost_holm",
                                  "effect_size", "outcome", "margin", "power", "power_basis", "mde", "look",
                                  "look_number", "looks_planned", "next_look_n", "confidence", "registration",
                                  "tuned", "holm_family", "boot_low", "boot_high", "p_improvement",
                                  "p_improvement_low", "p_improvement_high", "predictions", "at", "interaction_p"]
    assert row.confidence == 0.95  # a fixed design: no look
    assert pd.isna(row.look_number) and pd.isna(row.looks_planned) and pd.isna(row.next_look_n)
    assert rows["tuned"].isna().all()  # an untuned study: each variant at the shared settings


def test_one_seed_or_values_at_the_ceiling_give_no_test(uri, monkeypatch):
    log_study(uri, "one", {"none": [0.9], "elu": [0.8]})
    claims, rows = _comparisons(uri, "one", EQUIVALENCE, monkeypatch)
    assert claims["verdict"].tolist() == [INCONCLUSIVE] and math.isnan(rows["p"].iloc[0])
    assert "fewer than 2 paired seeds" in claims["evidence"].iloc[0]
    log_study(uri, "ceiling", {"none": [1.0, 1.0, 1.0], "elu": [1.0, 1.0, 1.0]})
    claims, rows = _comparisons(uri, "ceiling", EQUIVALENCE, monkeypatch)
    assert claims["verdict"].tolist() == [INCONCLUSIVE] and math.isnan(rows["effect_size"].iloc[0])
    assert "zero spread" in claims["evidence"].iloc[0]


def _parent_with_claims(uri, study, claims_spec):
    """A sweep's parent run recording `claims_spec` as the sweep callback does (tag xablate.claims)."""
    from mlflow import MlflowClient

    from xablate.studies import CLAIMS_TAG, claims_record

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(study)
    parent = client.create_run(experiment_id, tags={"xablate.role": "sweep", "mlflow.source.git.commit": "abc1234def5",
                                                    CLAIMS_TAG: claims_record(parse_study(study, claims_spec))})
    client.set_terminated(parent.info.run_id)


def test_a_claim_recorded_before_its_runs_is_pre_registered_and_an_edited_one_exploratory(uri, monkeypatch, tmp_path):
    import time

    from xablate.analysis.registration import registrations

    _parent_with_claims(uri, "reg", FIG10)
    time.sleep(0.01)
    values = {"none": _seeds(0.90, 0.01, seed=1), "elu": _seeds(0.80, 0.01, seed=2), "relu": _seeds(0.82, 0.01, seed=3)}
    log_study(uri, "reg", values)
    edited = {"analysis": {**FIG10["analysis"], "claims": [{**FIG10["analysis"]["claims"][0], "than": ["elu"]}]}}
    late = {"analysis": {**FIG10["analysis"], "claims": [{"claim": "relu beats elu", "metric": "test_accuracy",
                                                          "better": "relu", "than": ["elu"]}]}}
    time.sleep(0.01)
    _parent_with_claims(uri, "reg", edited)  # the same claim's text, another comparison: after 30 runs
    _parent_with_claims(uri, "reg", late)
    selection = selected_runs(uri, "reg")
    labels = {}
    for spec in (FIG10, edited, late):
        study = parse_study("reg", spec)
        labels.update({(spec is FIG10, k): v for k, v in registrations(uri, "reg", study.claims, selection.runs).items()})
    assert labels[(True, "none beats elu and relu")].startswith("pre-registered (")
    assert labels[(True, "none beats elu and relu")].endswith(", commit abc1234def)")
    assert labels[(False, "none beats elu and relu")] == "exploratory (changed after 30 runs)"
    assert labels[(False, "relu beats elu")] == "exploratory (first recorded after 30 runs)"
    never = parse_study("reg", {"analysis": {**FIG10["analysis"], "claims": [{**FIG10["analysis"]["claims"][0],
                                                                            "metric": "test_loss"}]}})
    assert registrations(uri, "reg", never.claims, selection.runs) == {
        "none beats elu and relu": "exploratory (claim not recorded before its runs)"}
    # through the report: both files say which rows are pre-registered
    from xablate.analysis.report import write_verdict

    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, edited))
    csv_path, md_path, headline_path = write_verdict(uri, tmp_path / "out", ["reg"])
    assert pd.read_csv(csv_path)["registration"].tolist() == ["exploratory (changed after 30 runs)"]
    assert "| exploratory (changed after 30 runs) |" in md_path.read_text()
    assert headline_path.read_text().startswith("No claim in the store was recorded before")  # nothing headline


def test_group_sequential_boundaries_match_published_values():
    """Lan-DeMets spending, 5 equally spaced looks, two-sided alpha 0.05 (one-sided 0.025 per side): the
    boundaries of Jennison & Turnbull / gsDesign's sfLDOF and sfLDPocock."""
    from xablate.analysis.sequential import boundaries, spent

    looks = tuple(k / 5 for k in range(1, 6))
    assert boundaries(looks, 0.05, "obrien_fleming", 2) == pytest.approx((4.877, 3.357, 2.680, 2.290, 2.031), abs=2e-3)
    assert boundaries(looks, 0.05, "pocock", 2) == pytest.approx((2.438, 2.427, 2.410, 2.397, 2.386), abs=2e-3)
    assert boundaries(looks, 0.025, "obrien_fleming", 1) == pytest.approx(boundaries(looks, 0.05, "obrien_fleming", 2),
                                                                         abs=1e-3)
    assert boundaries((1.0,), 0.05, "pocock", 2) == pytest.approx((stats.norm.isf(0.025),))  # one look: fixed design
    assert spent(1.0, 0.05, "obrien_fleming") == pytest.approx(0.05) and spent(1.0, 0.05, "pocock") == pytest.approx(0.05)



@pytest.mark.parametrize("fractions, spending, sides", [((0.3, 0.5, 1.0), "pocock", 2),
                                                        ((0.25, 0.6, 0.8, 1.0), "obrien_fleming", 1)])
def test_group_sequential_boundaries_spend_exactly_their_alpha(fractions, spending, sides):
    """The defining equation, checked by another method: at every look, the probability (joint normal, scipy's
    multivariate normal CDF with corr sqrt(t_i / t_j)) that no statistic crossed its boundary is 1 - alpha*(t_k);
    and the boundaries are the same numbers each time they are computed."""
    from xablate.analysis.sequential import boundaries, spent

    limits = boundaries(fractions, 0.05, spending, sides)
    boundaries.cache_clear()
    assert boundaries(fractions, 0.05, spending, sides) == limits  # deterministic, not Monte Carlo
    t = np.asarray(fractions)
    for k in range(2, len(fractions) + 1):
        cov = np.sqrt(np.minimum.outer(t[:k], t[:k]) / np.maximum.outer(t[:k], t[:k]))
        upper = np.asarray(limits[:k])
        lower = -upper if sides == 2 else np.full(k, -np.inf)
        kept = stats.multivariate_normal.cdf(upper, mean=np.zeros(k), cov=cov, lower_limit=lower, maxpts=200_000 * k,
                                             abseps=1e-8, releps=1e-7, rng=np.random.default_rng(0))
        assert kept == pytest.approx(1 - spent(fractions[k - 1], 0.05, spending, sides), abs=2e-6)

SEQUENTIAL = {"analysis": {**FIG10["analysis"], "sequential": {"looks": [3, 5, 10], "spending": "pocock"},
                           "claims": [{**FIG10["analysis"]["claims"][0], "than": ["elu"]}]}}


def test_a_claim_decided_against_at_the_first_look_stops_there(uri, monkeypatch):
    """none ≡ elu within the margin and none ≫ relu, both clear at 3 seeds: the claim "none beats both" is decided
    at look 1, against it — `not reproduced (equivalent to elu)` — and the seeds after that look are not read."""
    base = _seeds(0.85, 0.01, seed=40)
    close = list(np.add(base, np.random.default_rng(41).normal(0, 0.0005, 10)))
    log_study(uri, "against", {"none": close, "elu": base, "relu": list(np.subtract(base, 0.05))})
    spec = {"analysis": {**FIG10["analysis"], "sequential": {"looks": [3, 5, 10], "spending": "pocock"},
                         "claims": [{**FIG10["analysis"]["claims"][0], "than": ["elu", "relu"], "margin": 0.01}]}}
    claims, rows = _comparisons(uri, "against", spec, monkeypatch)
    assert claims["verdict"].tolist() == ["not reproduced (equivalent to intermediate_act=elu)"]
    assert rows["outcome"].tolist() == [EQUIVALENT, REPRODUCED] and rows["n"].tolist() == [3, 3]
    assert _look(rows) == (1, 3, None)  # decided: no next look


def test_a_clear_effect_is_decided_at_the_first_look_and_noise_runs_to_the_last(uri, monkeypatch):
    from xablate.analysis.sequential import SequentialSpec

    clear = {"none": _seeds(0.90, 0.005, seed=20), "elu": _seeds(0.80, 0.005, seed=21)}
    log_study(uri, "seq", clear)
    claims, rows = _comparisons(uri, "seq", SEQUENTIAL, monkeypatch)
    assert claims["verdict"].tolist() == [REPRODUCED] and rows["n"].tolist() == [3]
    nominal = SequentialSpec((3, 5, 10), "pocock").nominal(0, 2)
    assert nominal == pytest.approx(2 * stats.norm.sf(stats.norm.isf(0.05 * math.log(1 + (math.e - 1) * 0.3)
                                                                     / 2)))  # one look spent: its own boundary
    assert rows["look"].iloc[0].startswith(f"look 1 of 3 (n=3, pocock nominal p < {nominal:.3g} two-sided)")
    assert _look(rows) == (1, 3, None)  # decided: no next look
    p = stats.ttest_rel(clear["none"][:3], clear["elu"][:3]).pvalue
    assert rows["p"].iloc[0] == pytest.approx(p) and p < nominal
    noise = {"none": _seeds(0.85, 0.02, seed=24), "elu": _seeds(0.85, 0.02, seed=25)}
    log_study(uri, "noise", noise)
    claims, rows = _comparisons(uri, "noise", SEQUENTIAL, monkeypatch)
    assert claims["verdict"].tolist() == [INCONCLUSIVE] and rows["n"].tolist() == [10]
    assert rows["look"].iloc[0].startswith("look 3 of 3 (n=10") and _look(rows) == (3, 3, None)
    log_study(uri, "short", {k: v[:6] for k, v in noise.items()})  # 6 seeds: the second look, then more to run
    claims, rows = _comparisons(uri, "short", SEQUENTIAL, monkeypatch)
    assert rows["n"].tolist() == [5] and rows["look"].iloc[0].endswith("; continuing to n=10")
    assert _look(rows) == (2, 3, 10)
    # one variant far along, the baseline not started (a study stopped midway): no look is reached without pairs
    log_study(uri, "one_sided", {"none": noise["none"], "elu": noise["elu"][:2]})
    claims, rows = _comparisons(uri, "one_sided", SEQUENTIAL, monkeypatch)
    assert claims["verdict"].tolist() == [INCONCLUSIVE] and rows["look"].iloc[0] == "before the first look (n=2 of 3)"
    assert _look(rows) == (0, 3, 3)


def test_at_each_look_the_family_is_the_pre_registered_claims_still_undecided(uri, monkeypatch):
    """A clear claim and a noisy one, pre-registered together: at look 1 both are adjusted together (2
    comparisons); the clear one is decided there and leaves; the noisy one goes on alone to the last look."""
    from xablate.analysis.verdicts import verdict_tables

    none = _seeds(0.90, 0.005, seed=20)
    noise = [0.01, -0.01, 0.012, -0.011, 0.009, -0.01, 0.011, -0.009, 0.01, -0.012]  # no difference, at any look
    values = {"none": none, "elu": _seeds(0.80, 0.005, seed=21), "relu": [a + e for a, e in zip(none, noise)]}
    log_study(uri, "seq", values)
    claims = [{"claim": "none beats elu", "metric": "test_accuracy", "better": "none", "than": ["elu"]},
              {"claim": "none beats relu", "metric": "test_accuracy", "better": "none", "than": ["relu"]}]
    spec = {"analysis": {**SEQUENTIAL["analysis"], "claims": claims}}
    selection, history = _analysed(uri, "seq", spec, monkeypatch)
    registered = {("seq", c["claim"]): "pre-registered (2026-01-01 00:00 UTC)" for c in claims}
    table, rows = verdict_tables([(selection, history)], registered)
    assert table["verdict"].tolist() == [REPRODUCED, INCONCLUSIVE]
    assert rows["n"].tolist() == [3, 10]
    assert rows["holm_family"].tolist() == ["the pre-registered claims of seq (2 comparisons)",
                                            "the pre-registered claims of seq (1 comparison)"]
    at_first = stats.ttest_rel(values["none"][:3], values["elu"][:3]).pvalue
    other_first = stats.ttest_rel(values["none"][:3], values["relu"][:3]).pvalue
    assert rows["p_holm"].iloc[0] == pytest.approx(min(1.0, 2 * at_first)) and at_first < other_first
    assert rows["p_holm"].iloc[1] == pytest.approx(stats.ttest_rel(values["none"], values["relu"]).pvalue)


def _look(rows):
    """verdict.csv's structured look of a claim's first comparison: (look number, looks planned, next look's n)."""
    first = rows.iloc[0]
    return (int(first["look_number"]), int(first["looks_planned"]),
            None if pd.isna(first["next_look_n"]) else int(first["next_look_n"]))


@pytest.mark.parametrize("sequential, message", [
    ({"looks": [5, 3]}, "Received analysis.sequential.looks=[5, 3]"),
    ({"looks": [1, 3]}, "allowed: increasing integers >= 2"),
    ({"looks": [3, 5], "spending": "haybittle"}, "Received analysis.sequential.spending='haybittle'; allowed: "
                                                "obrien_fleming, pocock"),
    ({"looks": [3, 5], "alpha": 0.9}, "Received analysis.sequential.alpha=0.9"),
    ({"looks": [3, 5], "stop": "early"}, "Received analysis.sequential.stop='early'")])
def test_a_bad_sequential_design_is_refused(sequential, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_study("s", {"analysis": {**FIG10["analysis"], "sequential": sequential}})


def test_the_sequential_replay_counts_the_runs_each_design_needed(uri, monkeypatch):
    from xablate.bench.sequential import replay

    log_study(uri, "clear", {"none": _seeds(0.90, 0.005, seed=20), "elu": _seeds(0.80, 0.005, seed=21)})
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, {
        "analysis": {**FIG10["analysis"], "claims": [{**FIG10["analysis"]["claims"][0], "than": ["elu"]}]}}))
    selection = selected_runs(uri, "clear")
    history = history_frame(uri, selection.runs, metrics=["loss"], axes=selection.axes)
    row = replay(selection, history, "pocock")
    assert (row["looks"], row["fixed_runs"], row["stopped_at"], row["sequential_runs"]) == ("3 5 10", 20, 3, 6)
    assert row["same_outcomes"] and row["fixed_outcomes"] == REPRODUCED and row["runs_ratio"] == 0.3


def test_before_the_first_look_nothing_is_decided_and_looks_use_their_own_interval(uri, monkeypatch):
    """Two seeds far worse than the margin: a fixed design would say contradicted, a sequential one waits for its
    first look; at a look the interval is the look's nominal level, wider than 95 %."""
    spec = {"analysis": {**FIG10["analysis"], "sequential": {"looks": [3, 5], "spending": "obrien_fleming"},
                         "claims": [{"claim": "none no worse than elu", "metric": "test_accuracy",
                                     "no_worse": "none", "than": ["elu"], "margin": 0.01}]}}
    log_study(uri, "early", {"none": [0.70, 0.71], "elu": [0.90, 0.92]})
    claims, rows = _comparisons(uri, "early", spec, monkeypatch)
    assert claims["verdict"].tolist() == [INCONCLUSIVE] and rows["outcome"].tolist() == [INCONCLUSIVE]
    assert rows["look"].iloc[0] == "before the first look (n=2 of 3)"
    base = _seeds(0.90, 0.01, seed=30)
    diffs = np.random.default_rng(31).normal(0.0, 0.01, 10)
    log_study(uri, "look", {"none": list(np.add(base, diffs)), "elu": base})
    _, rows = _comparisons(uri, "look", spec, monkeypatch)
    from xablate.analysis.sequential import SequentialSpec
    n = int(rows["n"].iloc[0])
    level = SequentialSpec((3, 5), "obrien_fleming").nominal([3, 5].index(n), 2)
    half = stats.t.ppf(1 - level / 2, n - 1) * np.std(diffs[:n], ddof=1) / math.sqrt(n)
    assert level < 0.05 and rows["ci_high"].iloc[0] - rows["ci_low"].iloc[0] == pytest.approx(2 * half)
    assert rows["confidence"].iloc[0] == pytest.approx(1 - level)  # the level figures and the headline print


def test_bench_sequential_refuses_a_bad_uri_in_one_line(capsys):
    from xablate.cli import main as xablate_main

    assert xablate_main(["bench", "sequential", "--uri", "ftp://nowhere"]) == 2
    assert "Received --uri='ftp://nowhere'; allowed: http(s)://" in capsys.readouterr().err


def test_the_sequential_stop_reads_each_claim_in_the_verdicts_holm_family(uri, monkeypatch):
    """Two pre-registered claims, each p = 0.0255 at the first look (Pocock's nominal 0.0354 for looks 6, 10):
    alone each would be decided there; in the verdict's family (the study's pre-registered claims, Holm: 2p =
    0.051) neither is. Status and the staged sweeper read the claims with the verdict's labels, so both ask for
    the second look (they read each claim alone before, and a sweep could stop where the verdict decides not)."""
    import time

    from xablate.analysis.registration import registered_labels
    from xablate.analysis.sequential import SequentialSpec
    from xablate.analysis.status import _sequential_progress
    from xablate.analysis.verdicts import verdict_tables

    base = list(np.random.default_rng(0).uniform(0.80, 0.85, 6))
    diffs = [d + 0.0015 for d in (0.011, 0.002, 0.018, 0.009, 0.015, -0.003)]
    p = stats.ttest_1samp(diffs, 0).pvalue
    nominal = SequentialSpec((6, 10), "pocock").nominal(0, 2)
    assert p < nominal < 2 * p
    claims = [{"claim": f"none beats {o}", "metric": "test_accuracy", "better": "none", "than": [o]}
              for o in ("elu", "relu")]
    spec = {"analysis": {**FIG10["analysis"], "sequential": {"looks": [6, 10], "spending": "pocock"},
                         "claims": claims}}
    _parent_with_claims(uri, "family", spec)  # recorded before the runs: pre-registered
    time.sleep(0.01)
    log_study(uri, "family", {"none": [b + d for b, d in zip(base, diffs)], "elu": base, "relu": base})
    selection, history = _analysed(uri, "family", spec, monkeypatch)
    table, rows = verdict_tables([(selection, history)], registered_labels(uri, selection))
    assert table["verdict"].tolist() == [INCONCLUSIVE, INCONCLUSIVE]
    assert rows["p_holm"].tolist() == pytest.approx([2 * p, 2 * p]) and _look(rows) == (1, 2, 10)
    alone, _ = verdict_tables([(selection, history)], uncertainty=False)  # what the stop read before
    assert alone["verdict"].tolist() == [REPRODUCED, REPRODUCED]
    assert _sequential_progress(uri, parse_study("family", spec)) == (
        10, "sequential: undecided at n=6; next look at n=10 (6, 10)")
