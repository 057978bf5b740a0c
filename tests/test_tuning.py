"""The Optuna tune stage's groundwork (xablate.tuning): the declared search space and its refusals, TPE finding a
known optimum through ask/tell, and a study in its SQLite file surviving a killed stage without repeating a
finished trial. No training: the objective is made up, its optimum known in closed form."""

import math

import optuna
import pytest

from xablate.tuning import SearchSpec, ask, check_band, open_study, parse_search, storage_url, tell

SPACE = {"space": {"optim.learning_rate": {"log_uniform": [1.0e-4, 1.0e-1]}}, "sampler": "tpe", "trials": 12,
         "startup": 4}


def objective(values):  # best at learning_rate = 1e-3, falling off in log10 distance
    return -(math.log10(values["optim.learning_rate"]) + 3) ** 2


@pytest.mark.parametrize("block, message", [
    ({"space": {}}, "Received hydra.sweeper.tune.space={}; allowed: a mapping of config keys"),
    ({"space": {"optim.learning_rate": {"log_uniform": [0, 1e-2]}}}, "allowed: 0 < low < high (a log range cannot "
                                                                      "touch zero)"),
    ({"space": {"optim.learning_rate": {"uniform": [1e-2, 1e-3]}}}, "allowed: low < high (a range that is neither"),
    ({"space": {"optim.learning_rate": {"uniform": [1e-3, 1e-3]}}}, "allowed: low < high"),
    ({"space": {"optim.learning_rate": {"normal": [0, 1]}}}, "allowed: one of {log_uniform: ...}"),
    ({"space": {"model.middle_blocks": {"int": [2.5, 8]}}}, "allowed: [low, high], two integers"),
    ({"space": {"optim.optimizer": {"choice": ["adam"]}}}, "a list of at least two distinct values"),
    ({**SPACE, "sampler": "cmaes"}, "Received hydra.sweeper.tune.sampler='cmaes'; allowed: tpe, random, grid"),
    ({**SPACE, "sampler": "grid"}, "allowed: tpe or random for a continuous range"),
    ({**SPACE, "pruner": "patient"}, "Received hydra.sweeper.tune.pruner='patient'; allowed: none, median"),
    ({**SPACE, "trials": 4}, "Received hydra.sweeper.tune.trials=4; allowed: more than startup=4"),
    ({**SPACE, "trials": 1}, "allowed: an integer >= 2"),
])
def test_bad_search_settings_are_named(block, message):
    with pytest.raises(ValueError) as error:
        parse_search(block)
    assert message in str(error.value)


def test_tpe_finds_the_known_optimum_through_ask_and_tell(tmp_path):
    spec = parse_search(SPACE)
    study = open_study(f"sqlite:///{tmp_path / 'optuna.db'}", "made-up/variant", spec)
    while True:
        batch = ask(study, spec, 2)  # two at a time, as a launcher would run them
        if not batch:
            break
        for trial, values in batch:
            tell(study, trial, [objective(values), math.nan])  # a diverged seed is left out of the mean
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 12
    assert abs(math.log10(study.best_params["optim.learning_rate"]) + 3) < 0.5  # within a factor ~3 of 1e-3


def test_a_killed_stage_re_asks_its_running_trials_with_their_values_and_repeats_no_finished_one(tmp_path):
    spec = parse_search({**SPACE, "trials": 6})
    path = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study(path, "s/v", spec)
    first = ask(study, spec, 3)
    tell(study, first[0][0], [objective(first[0][1])])  # one finished, two left RUNNING by the kill
    running = sorted(v["optim.learning_rate"] for _, v in first[1:])
    again = open_study(path, "s/v", spec)  # typed again: the same file, the same study
    resumed = ask(again, spec, 5)
    assert sorted(v["optim.learning_rate"] for _, v in resumed[:2]) == pytest.approx(running)
    assert len(resumed) == 5  # 6 trials in all: 1 finished + 5, none of them the finished one again
    finished = first[0][1]["optim.learning_rate"]
    assert all(v["optim.learning_rate"] != finished for _, v in resumed)
    for trial, values in resumed:
        tell(again, trial, [objective(values)])
    assert ask(again, spec, 5) == []
    assert len(again.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 6


def test_every_seed_diverged_fails_the_trial_and_the_storage_sits_beside_the_store(tmp_path):
    spec = SearchSpec({"optim.learning_rate": ("log_uniform", [1e-4, 1e-1])}, sampler="random", trials=2)
    study = open_study(f"sqlite:///{tmp_path / 'optuna.db'}", "s/v", spec)
    (trial, _), = ask(study, spec, 1)
    assert math.isnan(tell(study, trial, [math.nan, math.nan]))
    assert study.get_trials()[0].state == optuna.trial.TrialState.FAIL
    assert storage_url("sqlite:////data/store/mlflow.db", None) == "sqlite:////data/store/optuna.db"
    database = "postgresql://xablate@db:5432/xablate"
    assert storage_url("http://mlflow:5000", database) == database  # the server's database: every machine sees it
    with pytest.raises(ValueError, match=r"tracking\.uri='http://mlflow:5000', a server store, with "
                                         r"tracking\.database=None and a tuning search; allowed: tracking\.database="):
        storage_url("http://mlflow:5000", None)
    with pytest.raises(ValueError, match=r"Received tracking\.database='mlflow\.db'; allowed: a SQLAlchemy database"):
        storage_url("http://mlflow:5000", "mlflow.db")


def test_a_tuning_study_keeps_one_seed_band(tmp_path):
    # trials trained on the study's first seeds are never continued on seeds_from's band, nor the other way
    spec = parse_search({**SPACE, "trials": 6})
    path = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study(path, "s/v", spec)
    (trial, values), = ask(study, spec, 1)
    tell(study, trial, [objective(values)])
    with pytest.raises(ValueError, match=r"seeds_from=1000, but the tuning study 's/v' holds 1 trial\(s\) trained "
                                         r"with seeds_from=null \(the study's own first seeds\); allowed: that value "
                                         r".*optuna\.delete_study\(study_name='s/v'"):
        open_study(path, "s/v", spec, seeds_from=1000)
    check_band(path, ["s/v", "s/never-opened"], None)  # the same band, and a study not there: nothing to refuse
    assert "s/never-opened" not in {s.study_name for s in optuna.get_all_study_summaries(path)}  # nor created
    assert open_study(path, "s/v", spec).user_attrs["seeds_from"] is None
    banded = open_study(path, "s/w", spec, seeds_from=1000)  # a new study takes the band it is opened with
    (trial, values), = ask(banded, spec, 1)
    tell(banded, trial, [objective(values)])
    assert open_study(path, "s/w", spec, seeds_from=1000).user_attrs["seeds_from"] == 1000
    with pytest.raises(ValueError, match="seeds_from=null .*, but the tuning study 's/w' holds 1 trial.* seeds_from=1000;"):
        open_study(path, "s/w", spec)
