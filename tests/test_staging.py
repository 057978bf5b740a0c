"""The staged sweeper's rules, on made-up grids and scores: what each stage launches, which value a variant gets,
and bad stage settings refused with the setting, the value and what is allowed."""

import math

import pytest

from xablate.staging import (PilotSpec, TuneSpec, check_tuning_seeds, final_jobs, parse_pilot, parse_tune, pick,
                             pilot_jobs, score, stage_budget, tie_break_seeds, tune_jobs, tuning_replicates,
                             variants_of)

GRID = [["intermediate_act=none", "seed=0"], ["intermediate_act=none", "seed=1"],
        ["intermediate_act=elu", "seed=0"], ["intermediate_act=elu", "seed=1"]]
TUNE = TuneSpec(key="optim.learning_rate", values=[0.001, 0.003], seeds=1, budget={"data.limit_train": 100},
                epochs_fraction=0.5)


def test_variants_group_the_grid_by_everything_but_the_replicate_keys():
    groups = variants_of(GRID + [["intermediate_act=none", "seed=2", "data.split_seed=5"]])
    assert list(groups) == [("intermediate_act=none",), ("intermediate_act=elu",)]
    assert len(groups[("intermediate_act=none",)]) == 3


def test_tuning_jobs_are_every_variant_by_value_on_its_first_replicates_at_the_stage_budget():
    jobs = tune_jobs(GRID, TUNE, full_epochs=20)
    assert [(v, value) for v, value, _ in jobs] == [(("intermediate_act=none",), 0.001),
                                                    (("intermediate_act=none",), 0.003),
                                                    (("intermediate_act=elu",), 0.001),
                                                    (("intermediate_act=elu",), 0.003)]
    assert jobs[1][2] == ["intermediate_act=none", "seed=0", "data.limit_train=100", "train.epochs=10",
                          "optim.schedule.horizon_epochs=20",  # a rung of the final schedule, not a shorter one
                          "optim.learning_rate=0.003", "tracking.stage=tune", "tracking.tuned_key=optim.learning_rate"]
    two_seeds = tune_jobs(GRID, TuneSpec(key="optim.learning_rate", values=[1, 2], seeds=2), full_epochs=20)
    assert len(two_seeds) == 2 * 2 * 2


def test_final_jobs_run_the_whole_grid_each_variant_at_its_choice():
    choices = {("intermediate_act=none",): {"optim.learning_rate": 0.001},
               ("intermediate_act=elu",): {"optim.learning_rate": 0.003}}
    jobs = final_jobs(GRID + [["intermediate_act=elu", "seed=2", "optim.learning_rate=9"]], choices, TUNE)
    assert len(jobs) == 5
    assert jobs[0] == ["intermediate_act=none", "seed=0", "optim.learning_rate=0.001",
                       "tracking.tuned_key=optim.learning_rate", "tracking.stage=final"]
    assert jobs[4] == ["intermediate_act=elu", "seed=2", "optim.learning_rate=0.003",  # the choice replaces a value
                       "tracking.tuned_key=optim.learning_rate", "tracking.stage=final"]
    assert final_jobs(GRID, None, None)[0] == ["intermediate_act=none", "seed=0", "tracking.stage=final"]


def test_pilot_jobs_take_a_share_of_the_epochs_and_at_least_one():
    jobs = pilot_jobs(GRID, PilotSpec(seeds=1, epochs_fraction=0.25), full_epochs=20)
    assert jobs == [["intermediate_act=none", "seed=0", "train.epochs=5", "optim.schedule.horizon_epochs=20",
                     "tracking.stage=pilot"],
                    ["intermediate_act=elu", "seed=0", "train.epochs=5", "optim.schedule.horizon_epochs=20",
                     "tracking.stage=pilot"]]
    assert stage_budget(PilotSpec(epochs_fraction=0.1), full_epochs=2) == {"train.epochs": 1,
                                                                          "optim.schedule.horizon_epochs": 2}
    assert stage_budget(PilotSpec(budget={"data.limit_train": 9}), full_epochs=2) == {"data.limit_train": 9}


def test_the_best_mean_wins_ties_go_to_the_value_listed_first_and_nan_never_wins():
    assert pick([0.001, 0.003], {"0.001": [0.5, 0.7], "0.003": [0.65, 0.6]}) == (
        0.003, {"0.001": pytest.approx(0.6), "0.003": pytest.approx(0.625)})
    assert pick([0.001, 0.003], {"0.001": [0.5], "0.003": [0.5]})[0] == 0.001
    best, means = pick([0.001, 0.003, 1.0], {"0.001": [0.2], "0.003": [0.3], "1.0": [math.nan]})
    assert best == 0.003 and math.isnan(means["1.0"])
    assert pick([1, 2], {"1": [math.nan, 0.4], "2": [0.3]})[0] == 1  # a diverged replicate drops out of the mean
    with pytest.raises(RuntimeError, match="no tuning run of the values"):
        pick([1, 2], {"1": [math.nan], "2": [math.nan]})


def test_scores_read_validation_metrics_and_a_loss_counts_lower_as_better():
    metrics = {"val_accuracy": 0.8, "best_val_accuracy": 0.9, "val_loss": 0.4, "test_accuracy": 1.0}
    assert score(metrics, "FINISHED", "final_val_accuracy") == 0.8
    assert score(metrics, "FINISHED", "best_val_accuracy") == 0.9
    assert score(metrics, "FINISHED", "final_val_loss") == -0.4
    assert math.isnan(score(metrics, "FAILED", "final_val_accuracy"))
    assert math.isnan(score({}, "FINISHED", "final_val_accuracy"))


@pytest.mark.parametrize("block, message", [
    ({"key": "seed", "values": [1, 2]}, "Received hydra.sweeper.tune.key='seed'; allowed: a config key"),
    ({"key": "optim.learning_rate", "values": [0.001]}, "Received hydra.sweeper.tune.values=[0.001]; allowed: a "
                                                        "list of at least two distinct values"),
    ({"key": "optim.learning_rate", "values": [1, 1]}, "at least two distinct values"),
    ({"key": "optim.learning_rate", "values": [1, 2], "metric": "test_accuracy"},
     "Received hydra.sweeper.tune.metric='test_accuracy'; allowed: final_val_accuracy, best_val_accuracy, "
     "final_val_loss (validation metrics: tuning never reads the test split)"),
    ({"key": "optim.learning_rate", "values": [1, 2], "seeds": 0}, "Received hydra.sweeper.tune.seeds=0"),
    ({"key": "optim.learning_rate", "values": [1, 2], "epochs_fraction": 1.5},
     "Received hydra.sweeper.tune.epochs_fraction=1.5; allowed: a number in (0, 1]"),
    ({"key": "optim.learning_rate", "values": [1, 2], "epochs_fraction": 0.5, "budget": {"train": {"epochs": 3}}},
     "no train.epochs beside epochs_fraction"),
    ({"key": "optim.learning_rate", "values": [1, 2], "budget": {"tracking.stage": "x"}},
     "any key but tracking.stage and tracking.tuned_key"),
    ({"key": "optim.learning_rate", "values": [1, 2], "seed": 3}, "Received hydra.sweeper.tune.seed=3; allowed: key"),
])
def test_bad_tuning_settings_are_named(block, message):
    with pytest.raises(ValueError) as error:
        parse_tune(block)
    assert message in str(error.value)


def test_a_nested_budget_reads_as_dotted_keys():
    assert parse_tune({"key": "k", "values": [1, 2], "budget": {"train": {"epochs": 3}}}).budget == {
        "train.epochs": 3}


@pytest.mark.parametrize("block, message", [
    ({"seeds": 1}, "Received hydra.sweeper.pilot={'seeds': 1}; allowed: epochs_fraction < 1 or a budget"),
    ({"epochs_fraction": 0}, "Received hydra.sweeper.pilot.epochs_fraction=0; allowed: a number in (0, 1]"),
    ({"epochs_fraction": 0.5, "rounds": 2}, "Received hydra.sweeper.pilot.rounds=2"),
])
def test_bad_pilot_settings_are_named(block, message):
    with pytest.raises(ValueError) as error:
        parse_pilot(block)
    assert message in str(error.value)


SEARCH = {"space": {"optim.learning_rate": {"log_uniform": [1.0e-4, 1.0e-2]}}, "trials": 6, "startup": 2, "seeds": 2}


def test_the_search_form_parses_into_a_spec_with_its_keys():
    spec = parse_tune({**SEARCH, "space": {**SEARCH["space"], "optim.weight_decay": {"uniform": [0.0, 1.0e-4]}},
                       "pruner": "median", "parallel": 2, "epochs_fraction": 0.5})
    assert spec.keys == ("optim.learning_rate", "optim.weight_decay")
    assert spec.key == "optim.learning_rate,optim.weight_decay"  # the xablate.tuned_key tag
    assert (spec.search.trials, spec.search.startup, spec.search.pruner, spec.search.parallel) == (6, 2, "median", 2)
    assert (spec.seeds, spec.epochs_fraction, spec.values) == (2, 0.5, [])
    assert parse_tune({"key": "optim.learning_rate", "values": [1, 2]}).keys == ("optim.learning_rate",)


@pytest.mark.parametrize("block, message", [
    ({**SEARCH, "metric": "test_accuracy"}, "Received hydra.sweeper.tune.metric='test_accuracy'; allowed: "
                                            "final_val_accuracy, best_val_accuracy, final_val_loss"),
    ({**SEARCH, "key": "optim.learning_rate"}, "Received hydra.sweeper.tune.key='optim.learning_rate'; allowed: "
                                               "space, sampler"),
    ({**SEARCH, "pruner": "asha"}, "Received hydra.sweeper.tune.pruner='asha'; allowed: none, median, "
                                   "successive_halving, hyperband"),
    ({**SEARCH, "parallel": 7}, "Received hydra.sweeper.tune.parallel=7; allowed: an integer from 1 to trials=6"),
    ({**SEARCH, "space": {"seed": {"int": [0, 3]}}}, "Received hydra.sweeper.tune.space.seed={'int': [0, 3]}; "
                                                     "allowed: config keys such as optim.learning_rate"),
    ({**SEARCH, "startup": 6}, "Received hydra.sweeper.tune.trials=6; allowed: more than startup=6"),
])
def test_bad_search_settings_are_refused_naming_the_key(block, message):
    with pytest.raises(ValueError) as error:
        parse_tune(block)
    assert message in str(error.value)


def test_a_trial_stopped_early_follows_the_final_runs_schedule():
    """Piecewise at 30 % and 70 % of training: a 5-epoch final run drops its rate at steps 30 and 70 (of 100); a
    2-epoch tuning trial with the final horizon sees the same rate at every step it trains (the first drop at 30),
    where a compressed schedule would have dropped after step 12."""
    from xablate.schema import Optim, Schedule
    from xablate.training.recipes import learning_rate

    schedule = Schedule(kind="piecewise", factor=0.1, at_fractions=[0.3, 0.7])
    final = learning_rate(Optim(learning_rate=1.0, schedule=schedule), steps_per_epoch=20, epochs=5, batch_size=8)
    trial = learning_rate(Optim(learning_rate=1.0, schedule=Schedule(**{**schedule.__dict__, "horizon_epochs": 5})),
                          steps_per_epoch=20, epochs=2, batch_size=8)
    compressed = learning_rate(Optim(learning_rate=1.0, schedule=schedule), steps_per_epoch=20, epochs=2,
                               batch_size=8)
    steps = [0, 11, 13, 30, 31, 39]  # PiecewiseConstantDecay drops after a boundary
    assert [float(trial(s)) for s in steps] == pytest.approx([float(final(s)) for s in steps])
    assert [float(trial(s)) for s in steps] == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1, 0.1])
    assert float(compressed(13)) == pytest.approx(0.1)  # the old tuning trials' schedule


def test_a_horizon_shorter_than_the_run_is_refused():
    from xablate.config import compose_job
    from xablate.gate import parse_job

    with pytest.raises(ValueError, match=r"horizon_epochs=1 with train.epochs=2; allowed: null or at least"):
        parse_job(compose_job(["debug=default", "train.epochs=2", "optim.schedule.horizon_epochs=1"]))
    from xablate.schema import Optim, Schedule
    from xablate.training.recipes import validate_recipe

    with pytest.raises(ValueError, match=r"horizon_epochs=0; allowed: null \(the run's train.epochs\) or an integer"):
        validate_recipe(Optim(schedule=Schedule(horizon_epochs=0)))


@pytest.mark.parametrize("stages, stage, counts", [
    ("final", "final", True), ("tune", "final", False), ("tune", "tune", True),
    ("tune,final", "final", False), ("tune,final", "tune", True),  # an earlier version's reuse: tuning only
    ("pilot,final", "final", True), ("pilot", "tune", False), (None, "final", True)])
def test_a_tuning_run_counts_in_its_own_stage_only(stages, stage, counts):
    from xablate.staging import serves

    assert serves(stages, stage) is counts


def test_with_seeds_from_the_tuning_trains_on_seeds_no_final_run_uses():
    tune = TuneSpec(key="optim.learning_rate", values=[0.001, 0.003], seeds=2, seeds_from=1000)
    jobs = tune_jobs(GRID, tune, full_epochs=20)
    assert [next(o for o in job if o.startswith("seed=")) for _, _, job in jobs] == ["seed=1000", "seed=1001"] * 4
    # every replicate key the job sets moves with the seed, so no source of variance is shared with a final run
    split = tuning_replicates([["act=none", "seed=0", "data.split_seed=0"], ["act=none", "seed=1", "data.split_seed=1"]],
                              tune, 0, 2)
    assert split == [["act=none", "seed=1000", "data.split_seed=1000"], ["act=none", "seed=1001", "data.split_seed=1001"]]
    # a replicate key set to null keeps its meaning (data.subsample_seed=null: the first images, not a random draw)
    assert tuning_replicates([["act=none", "seed=0", "data.subsample_seed=null"]], tune, 0, 1) == [
        ["act=none", "data.subsample_seed=null", "seed=1000"]]
    # a tie-break's replicates follow the tuning's in its band, even where the study has no more of its own
    assert tie_break_seeds(GRID[:2], 2, 1000) == [["intermediate_act=none", "seed=1002"],
                                                  ["intermediate_act=none", "seed=1003"]]
    assert tie_break_seeds(GRID[:2], 2) == []
    # without it, the study's first replicates (the committed studies' tuning, unchanged)
    plain = tune_jobs(GRID, TuneSpec(key="optim.learning_rate", values=[1, 2], seeds=2), full_epochs=20)
    assert [next(o for o in job if o.startswith("seed=")) for _, _, job in plain] == ["seed=0", "seed=1"] * 4
    assert parse_tune({"key": "optim.learning_rate", "values": [1, 2], "seeds_from": 1000}).seeds_from == 1000
    assert parse_tune({"space": {"optim.learning_rate": {"log_uniform": [1e-4, 1e-2]}}, "seeds_from": 500,
                       "sampler": "random", "trials": 2}).seeds_from == 500


@pytest.mark.parametrize("value", [0, -3, True, "1000", 1.5])
def test_a_bad_seeds_from_is_refused_naming_the_setting(value):
    with pytest.raises(ValueError, match=r"hydra\.sweeper\.tune\.seeds_from=.*allowed: null, or a whole number >= 1"):
        parse_tune({"key": "optim.learning_rate", "values": [1, 2], "seeds_from": value})


def test_a_seeds_from_whose_band_meets_the_studys_seeds_is_refused():
    grid = [["act=none", f"seed={i}"] for i in range(20)]
    check_tuning_seeds(grid, TuneSpec(key="k", values=[1, 2], seeds=2, seeds_from=20))  # 20..23: apart
    with pytest.raises(ValueError, match=r"seeds_from=18; allowed: .*reach 19; the tuning's seeds 18\.\.21 would "
                                         r"repeat seed 18"):
        check_tuning_seeds(grid, TuneSpec(key="k", values=[1, 2], seeds=2, seeds_from=18))
    check_tuning_seeds(grid, TuneSpec(key="k", values=[1, 2], seeds=2))  # the study's own seeds: not this check's
    # a study that sets no seed runs its finals at the config's own `seed`
    unseeded = [["act=none"], ["act=elu"]]
    check_tuning_seeds(unseeded, TuneSpec(key="k", values=[1, 2], seeds=2, seeds_from=1000), default_seed=0)
    with pytest.raises(ValueError, match=r"would repeat seed 1001"):
        check_tuning_seeds(unseeded, TuneSpec(key="k", values=[1, 2], seeds=2, seeds_from=1000), default_seed=1001)


def test_seeds_a_plan_adds_skip_the_tuning_band():
    from xablate.analysis.plan import fresh_seeds

    tune = TuneSpec(key="k", values=[1, 2], seeds=2, seeds_from=22)  # the tuning's 22, 23 and a tie-break's 24, 25
    assert fresh_seeds(20, 5, tune) == [20, 21, 26, 27, 28]
    assert fresh_seeds(20, 3) == [20, 21, 22]
    assert fresh_seeds(20, 0, tune) == []
