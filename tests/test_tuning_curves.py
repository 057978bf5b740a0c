"""Tuning that earns its name: the expected best of n trials against its closed form (opda computes it), and
the flags that mark a variant's tuning as not saturated — on made-up scores and on the committed store, where
they find what a review found by hand (three finished trials, a tie broken by trial order, a rate at the edge)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import ROOT
from xablate.analysis.tuning_curves import MIN_TRIALS, saturation_flags, tuning_curve

SPACE = {"optim.learning_rate": ("log_uniform", [3.0e-4, 1.0e-2])}


def test_the_expected_best_of_n_trials_is_its_closed_form():
    scores = [0.80, 0.86, 0.83, 0.85]
    curve = tuning_curve(scores, [1, 2, 4, 8])
    ys, k = np.sort(scores), len(scores)
    closed = [sum(y * ((i / k) ** n - ((i - 1) / k) ** n) for i, y in enumerate(ys, start=1)) for n in (1, 2, 4, 8)]
    assert curve["expected"].tolist() == pytest.approx(closed)
    assert curve["expected"].iloc[0] == pytest.approx(np.mean(scores))  # one trial: the mean
    assert (curve["low"] <= curve["expected"] + 1e-12).all() and (curve["expected"] <= curve["high"] + 1e-12).all()
    assert curve["high"].iloc[-1] <= 1.0  # an accuracy's band stays in [0, 1]


def test_flags_name_each_reason_a_tuning_is_not_saturated():
    flat = [0.850, 0.851, 0.8505, 0.8502, 0.8508]
    assert saturation_flags(flat, {"optim.learning_rate": 2e-3}, SPACE) == []
    few = saturation_flags(flat[:3], {"optim.learning_rate": 2e-3}, SPACE)
    assert few == [f"3 finished trials (fewer than {MIN_TRIALS})"]
    rising = saturation_flags([0.5, 0.6, 0.7, 0.9], {"optim.learning_rate": 2e-3}, SPACE)
    assert len(rising) == 1 and rising[0].startswith("still rising at 4 trials (doubling them: +")
    tie = saturation_flags([0.80, 0.8555, 0.8555, 0.83], {"optim.learning_rate": 2e-3}, SPACE)
    assert tie == ["its best two trials tie (0.8555): chosen by trial order"]
    edge = saturation_flags(flat, {"optim.learning_rate": 0.00837}, SPACE)
    assert edge == ["learning_rate 0.00837 sits at the edge of the searched range (0.077 decades from its upper "
                    "bound 0.01)"]
    assert saturation_flags(flat, {"optim.learning_rate": 0.003}, {}, grid=[0.0003, 0.001, 0.003]) == [
        "learning_rate 0.003 is the grid's highest value"]


def test_the_committed_tuning_is_flagged_where_a_review_found_it_thin():
    from xablate.analysis.report import selected_runs
    from xablate.analysis.sensitivity import chosen_values
    from xablate.analysis.verdicts import tuning_saturation

    uri = f"sqlite:///{ROOT / 'results' / 'store' / 'mlflow.db'}"
    fig9 = selected_runs(uri, "fashion_fig9")
    flags = tuning_saturation(fig9, chosen_values(fig9))
    shortened = "its trials trained 2 of the final 5 epochs"  # the tune stage's epochs_fraction
    assert flags["residual=True"] == [shortened]  # five finished trials, flat, inside its range
    assert flags["residual=False"] == ["3 finished trials (fewer than 4)",
                                       "its best two trials tie (0.8555): chosen by trial order", shortened]
    fig10 = selected_runs(uri, "fashion_fig10")
    none = tuning_saturation(fig10, chosen_values(fig10))["intermediate_act=none"]
    assert any("0.077 decades from its upper bound" in flag for flag in none)


def test_a_tuning_on_the_finals_seeds_is_said_in_the_verdict():
    # fashion_fig10_r2 tuned on seeds 0 and 1, which its final cells (seeds 0..19) use too; round-2 fig9 tunes from
    # seed 1000 (tune.seeds_from), apart from its finals
    from xablate.analysis.report import selected_runs
    from xablate.analysis.verdicts import shared_seeds, shared_seeds_note

    uri = f"sqlite:///{ROOT / 'results' / 'store' / 'mlflow.db'}"
    assert shared_seeds(selected_runs(uri, "fashion_fig10_r2")) == [0, 1]
    assert shared_seeds(selected_runs(uri, "fashion_spectrum_matched_r2")) == []  # untuned
    assert shared_seeds_note([]) == ""
    assert shared_seeds_note([0, 1]).startswith(" — tuned on the finals' seeds: seeds 0, 1 trained tuning runs too")
    assert "seed 3 trained" in shared_seeds_note([3])
    rows = [line for line in (ROOT / "results" / "verdict.md").read_text().splitlines()
            if line.startswith("| fashion_fig10_r2 |")]
    assert len(rows) == 3 and all("tuned on the finals' seeds: seeds 0, 1 trained" in row for row in rows)
