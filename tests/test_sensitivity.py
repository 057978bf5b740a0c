"""Tuning sensitivity and stage costs on made-up tuning runs whose answers are known in closed form (scipy as the
reference): trial means and spreads, the range within one standard error of the best trial, and the edge cases —
zero spread, one seed, a diverged seed, a pruned seed, a loss metric (lower is better) — and each stage's cost
with a run serving two stages counted once."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xablate.analysis.figures import sensitivity_figure
from xablate.analysis.sensitivity import (describe_costs, describe_flatness, flat_range, stage_costs, trial_table,
                                          tuning_runs)
from xablate.analysis.store import Selection
from xablate.studies import parse_study

KEY = "optim.learning_rate"


def study(metric="final_val_accuracy"):
    return parse_study("made_up", {"analysis": {"axes": ["residual"], "baseline": {"residual": True}},
                                   "hydra": {"sweeper": {"params": {"residual": "true,false", "seed": "0,1"},
                                                         "tune": {"space": {KEY: {"log_uniform": [1e-4, 1e-1]}},
                                                                  "trials": 3, "startup": 1, "seeds": 2,
                                                                  "metric": metric}}}})


def run(variant, lr, seed, value, status="FINISHED", outcome="finished", stage="tune", epochs=2, seconds=10.0,
        metric="final_val_accuracy"):
    run.count += 1
    start = pd.Timestamp("2026-12-03 00:00:00")
    return {"run_id": f"r{run.count}", "variant": variant, "params": {KEY: str(lr), "seed": str(seed)}, "seed": seed,
            "status": status, "outcome": outcome, "stage": stage, metric: value, "epochs": epochs,
            "train_seconds": seconds, "start_time": start, "end_time": start + pd.Timedelta(seconds=seconds + 4),
            "wall_seconds": seconds + 4}  # as runs_frame counts it: over the run's attempts


run.count = 0


def selection(rows, metric="final_val_accuracy", final=(), pilot=()):
    frame = lambda rs: pd.DataFrame(rs) if rs else None  # noqa: E731
    finals = pd.DataFrame(list(final)) if final else pd.DataFrame(columns=["run_id", "stage", "outcome", "epochs",
                                                                            "train_seconds", "variant", "params"])
    return Selection(study(metric), finals, ["residual"], {"residual": True}, "test_accuracy",
                     tuning=frame(rows), pilot=frame(list(pilot)))


RUNS = [  # variant true: lr 1e-3 best (0.80, 0.90), 3e-3 within one SE (0.82, 0.84), 1e-2 far (0.50, 0.60)
    run("residual=true", 1e-3, 0, 0.80), run("residual=true", 1e-3, 1, 0.90),
    run("residual=true", 3e-3, 0, 0.82), run("residual=true", 3e-3, 1, 0.84),
    run("residual=true", 1e-2, 0, 0.50), run("residual=true", 1e-2, 1, 0.60),
    # variant false: zero spread at its best (0.7, 0.7); 3e-3 has a diverged seed, 1e-2 a pruned scout
    run("residual=false", 1e-3, 0, 0.70), run("residual=false", 1e-3, 1, 0.70),
    run("residual=false", 3e-3, 0, 0.65), run("residual=false", 3e-3, 1, math.nan, status="FAILED",
                                                outcome="diverged"),
    run("residual=false", 1e-2, 0, 0.20, status="KILLED", outcome="pruned", epochs=1),
]


def test_each_trial_is_the_mean_and_spread_of_its_finished_seeds():
    trials = trial_table(tuning_runs(selection(RUNS)), (KEY,)).set_index(["variant", KEY])
    best = trials.loc[("residual=true", 1e-3)]
    assert best["n"] == 2 and best["mean"] == pytest.approx(0.85)
    assert best["sd"] == pytest.approx(np.std([0.80, 0.90], ddof=1))
    assert (best["low"], best["high"]) == (0.80, 0.90)
    diverged = trials.loc[("residual=false", 3e-3)]
    assert (diverged["n"], diverged["mean"], diverged["diverged"]) == (1, pytest.approx(0.65), 1)
    assert math.isnan(diverged["sd"])  # one finished seed: no spread
    pruned = trials.loc[("residual=false", 1e-2)]
    assert (pruned["n"], pruned["pruned"]) == (0, 1) and math.isnan(pruned["mean"])


def test_the_flat_range_is_every_setting_within_one_standard_error_of_the_best():
    keys = (KEY,)
    flat = flat_range(trial_table(tuning_runs(selection(RUNS)), keys), keys)
    true = flat["residual=true"]
    assert true["se"] == pytest.approx(stats.sem([0.80, 0.90]))  # 0.05: 0.83 is within, 0.55 is not
    assert true["best"] == {KEY: 1e-3} and true["range"][KEY] == (1e-3, 3e-3)
    assert (true["within"], true["of"]) == (2, 3)  # the pruned setting of the other variant has no mean
    assert describe_flatness(true) == "0.001–0.003 (2 of 3 finished trials within 1 SE)"
    false = flat["residual=false"]
    assert false["se"] == 0.0 and false["range"][KEY] == (1e-3, 1e-3)  # zero spread: the best alone
    assert (false["within"], false["of"]) == (1, 2)
    assert describe_flatness(false) == "0.001 (1 of 2 finished trials within 1 SE)"


def test_one_seed_per_setting_has_no_standard_error_and_says_so():
    one = [run("residual=true", lr, 0, v) for lr, v in ((1e-3, 0.8), (3e-3, 0.9))]
    flat = flat_range(trial_table(tuning_runs(selection(one)), (KEY,)), (KEY,))["residual=true"]
    assert math.isnan(flat["se"]) and flat["best"] == {KEY: 3e-3}
    assert describe_flatness(flat) == "one seed: no SE"


def test_a_loss_is_tuned_lower_is_better():
    rows = [run("residual=true", lr, s, v, metric="final_val_loss")
            for lr, s, v in ((1e-3, 0, 0.5), (1e-3, 1, 0.7), (3e-3, 0, 0.2), (3e-3, 1, 0.4))]
    flat = flat_range(trial_table(tuning_runs(selection(rows, "final_val_loss")), (KEY,)), (KEY,))
    assert flat["residual=true"]["best"] == {KEY: 3e-3}
    assert flat["residual=true"]["best_mean"] == pytest.approx(-0.3)  # scores are negated losses


def test_each_stage_costs_its_runs_epochs_and_time_a_shared_run_counted_once():
    pilot = [run("residual=true", 1e-3, 0, 0.5, stage="pilot", epochs=1, seconds=6.0)]
    final = [run("residual=true", 1e-3, s, 0.9, stage="final", epochs=6, seconds=30.0) for s in range(2)]
    shared = run("residual=true", 1e-3, 0, 0.9, stage="tune,final", epochs=2, seconds=12.0)
    sel = selection(RUNS + [shared], final=final + [shared], pilot=pilot)
    costs = stage_costs(sel).set_index("stage")
    assert costs.loc["pilot"].tolist() == [1, 0, 1, pytest.approx(6 / 3600), pytest.approx(10 / 3600)]  # +4 s each
    assert costs.loc["tune", "runs"] == len(RUNS) + 1 and costs.loc["tune", "pruned"] == 1
    assert costs.loc["tune", "epochs"] == 2 * len(RUNS) - 1 + 2  # the pruned scout stopped after 1 of 2
    assert costs.loc["final"].tolist()[:3] == [2, 0, 12]
    line = describe_costs(stage_costs(sel))
    assert line.startswith("pilot 1 runs, 1 epochs, 0.1 min training (0.2 min wall); tune 12 runs, 1 pruned, 23 epochs")
    assert line.endswith(f"pilot and tuning {24 / 36:.0%} of all epochs")


def test_the_sensitivity_figure_draws_every_trial_and_each_variants_choice():
    sel = selection(RUNS)
    seeds = tuning_runs(sel)
    trials = trial_table(seeds, (KEY,))
    fig = sensitivity_figure(seeds, trials, (KEY,), "final_val_accuracy",
                             {"residual=true": {KEY: 1e-3}, "residual=false": {KEY: 1e-3}})
    panel, curves = fig.axes  # each tuned key, then the expected best against finished trials
    assert curves.get_xlabel() == "finished tuning trials"
    assert panel.get_xscale() == "log" and panel.get_xlabel() == KEY
    lines = [line for line in panel.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in lines] == [1e-3, 1e-3]  # one chosen line per variant
    means = sorted(float(y) for c in panel.containers for y in c.lines[0].get_ydata())
    assert means == pytest.approx(sorted([0.85, 0.83, 0.55, 0.70, 0.65]))  # every trial with a mean


def test_a_tuned_verdict_names_each_variants_setting_and_whether_they_differ():
    from xablate.analysis.sensitivity import chosen_values
    from xablate.analysis.verdicts import tuned_note

    finals = pd.DataFrame([{"variant": v, "params": {KEY: str(lr)}, "run_id": f"f{i}"}
                           for i, (v, lr) in enumerate([("residual=true", 1e-3), ("residual=false", 3e-3),
                                                        ("residual=false", 3e-3)])])
    sel = Selection(study(), finals, ["residual"], {"residual": True}, "test_accuracy")
    chosen = chosen_values(sel)
    assert chosen == {"residual=true": {KEY: 1e-3}, "residual=false": {KEY: 3e-3}}
    compared = [{"variant": "residual=true", "baseline": "residual=false"}]
    assert tuned_note(chosen, compared) == (" — tuned per variant: residual=true at lr 0.001 vs residual=false at lr "
                                            "0.003 (different tuned settings: a difference between each at its own "
                                            "best, not at a shared setting)")
    assert tuned_note({**chosen, "residual=false": {KEY: 1e-3}}, compared).endswith("(the same tuned setting)")
