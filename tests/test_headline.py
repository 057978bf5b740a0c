"""The headline (results/headline.md): only pre-registered claims, each comparison's paired difference and interval
as scipy computes it, the look it was read at, and the study's cost."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from made_up_store import log_study
from test_verdicts import FIG10, _parent_with_claims, _seeds
from xablate.analysis.headline import describe_cost, describe_effects, describe_seeds, headline_markdown
from xablate.analysis.report import write_verdict
from xablate.studies import parse_study

FASHION = {"data.source": "fashion_mnist", "data.limit_train": "1000", "train.epochs": "3"}


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| study")]


def test_the_headline_holds_only_pre_registered_claims_with_scipy_intervals(uri, tmp_path, monkeypatch):
    import time

    _parent_with_claims(uri, "registered", FIG10)  # the claims recorded before the first run
    time.sleep(0.01)
    values = {"none": _seeds(0.90, 0.01, seed=1), "elu": _seeds(0.80, 0.01, seed=2), "relu": _seeds(0.82, 0.01, seed=3)}
    log_study(uri, "registered", values, extra_params=FASHION)
    log_study(uri, "afterwards", values)  # the same numbers, no claims recorded before its runs: exploratory
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, FIG10))

    written = write_verdict(uri, tmp_path / "out", ["registered", "afterwards"])

    headline = tmp_path / "out" / "headline.md"
    assert headline in written and headline.with_suffix(".json").exists()
    rows = _rows(headline.read_text())
    assert len(rows) == 1, rows  # the exploratory study's identical claim is left to verdict.md
    study, claim, outcome, effect, seeds, cost = rows[0]
    assert study == "registered (fashion_mnist, 1,000 images, 3 epochs)"
    assert claim == "none beats elu and relu" and outcome == "**reproduced**"
    assert seeds == "10" and cost.startswith("30 runs, ")
    for other in ("elu", "relu"):  # none − other, paired by seed, its 95 % t interval (a fixed design)
        diff = np.array(values["none"]) - np.array(values[other])
        half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
        assert (f"none − {other}: {diff.mean():+.4f} [{diff.mean() - half:+.4f}, {diff.mean() + half:+.4f}] "
                f"reproduced") in effect  # two comparisons: each says its own outcome
    assert effect.startswith("test accuracy (final weights), 95 % CI; intermediate_act: ")
    verdict = (tmp_path / "out" / "verdict.md").read_text()
    assert "| afterwards |" in verdict and "| registered |" in verdict
    # the same outcomes: in bold where the claim was pre-registered, plain where it is exploratory
    [registered] = [line for line in verdict.splitlines() if line.startswith("| registered |")]
    [afterwards] = [line for line in verdict.splitlines() if line.startswith("| afterwards |")]
    assert "| **reproduced** | pre-registered (" in registered and "vs intermediate_act=elu: **reproduced**" in registered
    assert "| reproduced | exploratory (" in afterwards and "**" not in afterwards
    assert "vs intermediate_act=elu: reproduced" in afterwards


def test_without_a_pre_registered_claim_the_headline_says_there_is_none(uri, tmp_path, monkeypatch):
    log_study(uri, "afterwards", {"none": _seeds(0.9, 0.01), "elu": _seeds(0.8, 0.01), "relu": _seeds(0.8, 0.01)})
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, FIG10))
    write_verdict(uri, tmp_path / "out", ["afterwards"])
    text = (tmp_path / "out" / "headline.md").read_text()
    assert _rows(text) == [] and text.startswith("No claim in the store was recorded before")


def _comparison(**overrides):
    row = {"study": "s", "claim": "c", "metric": "train_loss_auc", "variant": "act=none", "baseline": "act=elu",
           "n": 10, "delta": -0.0123, "ci_low": -0.02, "ci_high": -0.0046, "look": "fixed design (n=10)",
           "look_number": math.nan, "looks_planned": math.nan, "next_look_n": math.nan, "confidence": 0.9779}
    return {**row, **overrides}


def _table(verdict="reproduced", registration="pre-registered (2026-12-01 10:00 UTC)"):
    return pd.DataFrame([{"study": "s", "claim": "c", "metric": "train_loss_auc", "verdict": verdict,
                          "evidence": "", "mde": 0.0, "registration": registration}])


@pytest.mark.parametrize("look, outcome, seeds", [
    ((1, 3, math.nan), "**reproduced**", "10 (look 1 of 3)"),
    ((1, 3, 15), "**inconclusive** so far", "10 (look 1 of 3; continuing to n=15)"),
    ((3, 3, math.nan), "**inconclusive**", "10 (look 3 of 3)"),
    ((0, 3, 10), "running (before the first look)", "7 of 10 so far"),
    ((math.nan, math.nan, math.nan), "**reproduced**", "10"),  # a fixed design
])
def test_a_row_says_where_the_sequential_design_stands(look, outcome, seeds):
    """Read from verdict.csv's structured look columns (look number, looks planned, the next look's n)."""
    verdict = "inconclusive" if "reproduced" not in outcome else "reproduced"
    n = 7 if look[0] == 0 else 10
    structured = dict(zip(("look_number", "looks_planned", "next_look_n"), look))
    text = headline_markdown(_table(verdict), pd.DataFrame([_comparison(n=n, **structured)]), {}, {"s": "digits"})
    (row,) = _rows(text)
    assert row[2] == outcome and row[4] == seeds
    if n >= 2:  # a loss: the sign stays the metric's own (variant − baseline), and the reader is told lower wins
        assert row[3] == ("training-loss area (mean optimised loss over epochs: cross-entropy + any weight penalty), "
                          "lower is better, 97.8 % CI; act: none − elu: -0.0123 [-0.0200, -0.0046]")
    assert describe_seeds(pd.DataFrame([_comparison(n=n, **structured)])) == seeds


def test_an_exploratory_row_is_not_headline_material():
    text = headline_markdown(_table(registration="exploratory (changed after 30 runs)"),
                             pd.DataFrame([_comparison()]), {}, {})
    assert _rows(text) == []


def test_the_cost_sums_every_stage_and_names_the_tuning_share():
    costs = pd.DataFrame([
        {"stage": "tune", "runs": 20, "pruned": 3, "epochs": 50, "hours": 0.4, "wall_hours": 0.5},
        {"stage": "final", "runs": 10, "pruned": 0, "epochs": 100, "hours": 0.9, "wall_hours": 1.0}])
    assert describe_cost(costs) == "30 runs (3 pruned), 1.5 h of runs; tuning 33% of epochs"
    untimed = costs.assign(wall_hours=float("nan"))  # runs without end times: the epochs' own time
    assert describe_cost(untimed) == "30 runs (3 pruned), 1.3 h of runs; tuning 33% of epochs"
    assert describe_cost(costs[costs["stage"] == "final"]) == "10 runs, 1.0 h of runs"
    assert describe_cost(pd.DataFrame(columns=costs.columns)) == ""


def test_the_claims_figure_names_the_level_its_intervals_were_read_at():
    from xablate.analysis.figures import claims_figure

    rows = pd.DataFrame([{**_comparison(), "higher_is_better": False, "kind": "better", "margin": float("nan"),
                          "outcome": "reproduced"}])
    assert "mean and 97.8 % CI over paired seeds" in claims_figure(rows).axes[0].get_xlabel()
    assert "mean and 95 % CI over" in claims_figure(rows.assign(confidence=0.95)).axes[0].get_xlabel()
    # a loss: the difference as verdict.csv gives it, lower is better, and no margin drawn, so none named
    figure = claims_figure(rows)
    assert "variant − baseline (lower is better)" in figure.axes[0].get_xlabel()
    assert "dashed" not in figure.axes[0].get_xlabel()
    assert figure.axes[0].containers[0].lines[0].get_xdata()[0] == pytest.approx(rows["delta"].iloc[0])
    with_margin = claims_figure(rows.assign(kind="no_worse", margin=0.01))  # non-inferior for a loss: +margin only
    assert [line.get_xdata()[0] for line in with_margin.axes[0].get_lines() if line.get_linestyle() == "--"] == [0.01]
    assert "dashed: the claim's margin" in with_margin.axes[0].get_xlabel()


def test_studies_appear_in_natural_order_and_each_cost_once():
    table = pd.concat([_table().assign(study=name, claim=claim) for name in ("fig10", "fig9") for claim in "ab"])
    compared = pd.DataFrame([_comparison(study=name, claim=claim) for name in ("fig10", "fig9") for claim in "ab"])
    costs = {name: pd.DataFrame([{"stage": "final", "runs": runs, "pruned": 0, "epochs": 5, "hours": 1.0,
                                  "wall_hours": 2.0}]) for name, runs in (("fig9", 9), ("fig10", 10))}
    rows = _rows(headline_markdown(table, compared, costs, {}))
    assert [(r[0], r[1], r[5]) for r in rows] == [("fig9", "a", "9 runs, 2.0 h of runs"), ("fig9", "b", "″"),
                                                  ("fig10", "a", "10 runs, 2.0 h of runs"), ("fig10", "b", "″")]


def test_a_superseding_study_replaces_the_earlier_ones_rows_once_it_has_its_own(uri, tmp_path, monkeypatch):
    """analysis.supersedes: round 2's rows stand in the headline for round 1's, which stay in verdict.md; before
    round 2 has runs, round 1's rows stay."""
    import time

    later = {"analysis": {**FIG10["analysis"], "supersedes": "round1"}}
    specs = {"round1": FIG10, "round2": later}
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, specs[name]))
    values = {"none": _seeds(0.90, 0.01, seed=1), "elu": _seeds(0.80, 0.01, seed=2), "relu": _seeds(0.82, 0.01, seed=3)}
    for name in ("round1", "round2"):
        _parent_with_claims(uri, name, specs[name])
    time.sleep(0.01)
    log_study(uri, "round1", values)
    write_verdict(uri, tmp_path / "before", ["round1", "round2"])
    assert [r[0] for r in _rows((tmp_path / "before" / "headline.md").read_text())] == ["round1"]
    assert "Superseded" not in (tmp_path / "before" / "headline.md").read_text()
    log_study(uri, "round2", {k: [v + 0.001 for v in vs] for k, vs in values.items()})
    write_verdict(uri, tmp_path / "after", ["round1", "round2"])
    headline = (tmp_path / "after" / "headline.md").read_text()
    assert [r[0] for r in _rows(headline)] == ["round2"]
    assert "Superseded (their rows stay in verdict.md, read as before): round1 by round2." in headline
    verdict = (tmp_path / "after" / "verdict.md").read_text()
    assert "| round1 |" in verdict and "| round2 |" in verdict


@pytest.mark.parametrize("value", [["fig10"], "fig10"])
def test_supersedes_names_earlier_studies(value):
    assert parse_study("fig10_r2", {"analysis": {**FIG10["analysis"], "supersedes": value}}).supersedes == ("fig10",)
    for bad in (3, ["fig10_r2"], [""]):
        with pytest.raises(ValueError, match=r"Received analysis.supersedes=.*allowed: the name of an earlier study"):
            parse_study("fig10_r2", {"analysis": {**FIG10["analysis"], "supersedes": bad}})


@pytest.mark.parametrize("look, n, gives_way", [(0, 5, False), (1, 10, True), (None, 1, False), (None, 3, True)])
def test_an_earlier_study_gives_way_only_once_its_successor_has_read_its_claims(look, n, gives_way):
    structured = {"look_number": look, "looks_planned": 3 if look is not None else None,
                  "next_look_n": 10 if look == 0 else None}
    table = pd.concat([_table().assign(study=name) for name in ("old", "new")])
    compared = pd.DataFrame([_comparison(study="old", n=10), _comparison(study="new", n=n, **structured)])
    rows = _rows(headline_markdown(table, compared, {}, {}, {"new": ("old",)}))
    assert [r[0] for r in rows] == (["new"] if gives_way else ["new", "old"])


@pytest.mark.parametrize("pairs, expected", [
    ([("intermediate_act=none", "intermediate_act=elu"), ("intermediate_act=none", "intermediate_act=relu")],
     "; intermediate_act: none − elu: +0.0100 [+0.0020, +0.0180] held; none − relu: +0.0100 [+0.0020, +0.0180] held"),
    ([("intermediate_act=none,optim.learning_rate=0.00187", "intermediate_act=elu,optim.learning_rate=0.00187"),
      ("intermediate_act=none,optim.learning_rate=0.00311", "intermediate_act=elu,optim.learning_rate=0.00311")],
     "; intermediate_act: none − elu at lr=0.00187: +0.0100 [+0.0020, +0.0180] held; "
     "none − elu at lr=0.00311: +0.0100 [+0.0020, +0.0180] held"),
    ([("intermediate_act=none,optim.learning_rate=0.00187", "intermediate_act=elu,optim.learning_rate=0.00311")],
     ": act=none · lr=0.00187 − act=elu · lr=0.00311: +0.0100 [+0.0020, +0.0180]"),
    ([("residual=False,model.match=null", "residual=True,model.match=null"),
      ("residual=False,model.match=params", "residual=True,model.match=null")],
     ": residual=False − residual=True at match=null: +0.0100 [+0.0020, +0.0180] held; "
     "residual=False · match=params − residual=True · match=null: +0.0100 [+0.0020, +0.0180] held"),
    ([("cell a", "cell b")], ": cell a − cell b: +0.0100 [+0.0020, +0.0180]"),
    ([("intermediate_act=none,optim.learning_rate=0.001", "intermediate_act=none,optim.learning_rate=0.001")],
     ": act=none · lr=0.001 − act=none · lr=0.001: +0.0100 [+0.0020, +0.0180]"),
])
def test_each_effect_names_what_its_two_cells_differ_in_and_what_they_share(pairs, expected):
    """A crossed or multi-axis claim: `none − elu at lr=0.00187`, not two whole cell labels."""
    compared = pd.DataFrame([dict(variant=v, baseline=b, delta=0.01, ci_low=0.002, ci_high=0.018, n=10,
                                  metric="test_accuracy", outcome="held") for v, b in pairs])
    assert describe_effects(compared) == "test accuracy (final weights)" + expected


def test_an_outcome_carries_the_caveats_its_evidence_names():
    from xablate.analysis.headline import caveats
    from xablate.analysis.verdicts import shared_seeds_note

    assert caveats("") == ""
    assert caveats("... — tuning not saturated: x" + shared_seeds_note([0, 1])) == (
        " (a variant's tuning not saturated: verdict.md says why; tuned on seeds its final runs reuse: verdict.md "
        "says why)")
