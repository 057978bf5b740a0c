"""Verdicts, tables and the seed plan on made-up stores whose right answers are known in closed form: real
MLflow runs logged as the trainer logs them (tests/made_up_store.py), read back through xablate.analysis."""

import math

import numpy as np
import pytest
from scipy import stats

from made_up_store import log_study
from xablate.analysis.plan import plan_seeds
from xablate.analysis.report import selected_runs
from xablate.analysis.store import history_frame
from xablate.analysis.tables import variant_table
from xablate.analysis.verdicts import CONTRADICTED, INCONCLUSIVE, REPRODUCED, verdict_table
from xablate.studies import parse_study

FIG10 = {"analysis": {"title": "made-up Fig. 10", "axes": ["intermediate_act"],
                      "baseline": {"intermediate_act": "none"},
                      "claims": [{"claim": "none beats elu and relu", "metric": "test_accuracy", "better": "none",
                                  "than": ["elu", "relu"]}]}}


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _verdict(uri, study, spec, monkeypatch):
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, spec))
    selection = selected_runs(uri, study)
    history = history_frame(uri, selection.runs, metrics=["loss"], axes=selection.axes)
    return selection, verdict_table([(selection, history)])


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
    assert f"could not have detected differences smaller than {row.mde:.4f}" in row.evidence


def test_zero_spread_is_inconclusive_however_consistent(uri, monkeypatch):
    """The same one-image gain (1/359) in every seed: no noise estimate, so no verdict either way."""
    base = _seeds(0.90, 0.02, n=3, seed=4)
    log_study(uri, "f10", {"none": [b + 1 / 359 for b in base], "elu": base, "relu": base})
    _, table = _verdict(uri, "f10", FIG10, monkeypatch)
    assert table["verdict"].tolist() == [INCONCLUSIVE]
    assert "zero spread" in table["evidence"].iloc[0]


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
    assert f"p={p:.3g}, Holm p={2 * p:.3g}" in table["evidence"].iloc[0]
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
    rng = np.random.default_rng(7)
    fast = {s: list(np.exp(-np.arange(5) * 0.9) + rng.normal(0, 0.01, 5)) for s in range(8)}
    slow = {s: list(np.exp(-np.arange(5) * 0.4) + rng.normal(0, 0.01, 5)) for s in range(8)}
    log_study(uri, "conv", {"none": _seeds(0.80, 0.01, n=8, seed=8), "elu": _seeds(0.90, 0.01, n=8, seed=9)},
              losses={"none": fast, "elu": slow})
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
    assert _verdict(uri, "close", spec, monkeypatch)[1]["verdict"].tolist() == [REPRODUCED]
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
