"""The tune stage's Optuna search end to end under the debug config.

A TPE search per variant on the debug study whose best learning rate differs by construction (Adam wants a small
one, plain SGD a large one: tests/test_staged_sweeps.py), 8 trials of 2 seeds, killed with SIGKILL mid-stage and
typed again: each variant's choice lands on its side of the range, no finished trial is repeated and no finished
run retrained. A pruned search (successive halving, random sampler): pruned scouts are KILLED runs with
outcome=pruned, the epoch they stopped at and the pruner's reason, their trials' other seeds never start, and no
final-stage run is pruned. The search's outputs: the flatness column, the cost note and the sensitivity data."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pytest
import yaml

from helpers import ROOT, clean_env, runs_of, sqlite_uri
from xablate.analysis.report import config_defaults
from xablate.analysis.sensitivity import trial_table, tuning_runs
from xablate.analysis.store import runs_frame, select_runs
from xablate.analysis.tables import to_markdown, variant_table
from xablate.studies import parse_study

pytestmark = pytest.mark.slow  # trains dozens of debug runs: the full suite's tier

LR = "optim.learning_rate"
MIDDLE = math.sqrt(1e-3 * 0.3)  # the geometric middle between Adam's best (1e-3) and SGD's (0.3) by construction


def experiment(study, tune):
    return textwrap.dedent(f"""\
        # @package _global_
        defaults:
          - override /hydra/sweeper: staged
        study: {study}
        hydra:
          sweeper:
            params:
              optim.optimizer: adam,sgd
              seed: 0,1
            tune:
        """) + textwrap.indent(yaml.safe_dump(tune, sort_keys=False), " " * 6)


SEARCH = {"space": {LR: {"log_uniform": [1.0e-3, 0.3]}}, "sampler": "tpe", "startup": 4, "trials": 8, "seeds": 2,
          "epochs_fraction": 0.34}
PRUNED = {"space": {LR: {"log_uniform": [1.0e-3, 0.3]}}, "sampler": "random", "trials": 6, "seeds": 2,
          "pruner": "successive_halving"}


def command(tmp, study, uri):
    return [sys.executable, str(ROOT / "run.py"), "-m", f"--config-dir={tmp / 'extra'}", f"experiment={study}",
            "debug=default", "train.epochs=3", "train.save_model=false", f"tracking.uri={uri}"]


def prepare(tmp, study, tune):
    (tmp / "extra" / "experiment").mkdir(parents=True)
    (tmp / "extra" / "experiment" / f"{study}.yaml").write_text(experiment(study, tune))
    return sqlite_uri(tmp)


def optuna_studies(tmp):
    storage = f"sqlite:///{tmp / 'optuna.db'}"
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
            for s in optuna.get_all_study_summaries(storage)}


def tune_runs(uri, study):
    return [r for r in runs_of(uri, study, role="job") if "tune" in r.data.tags["xablate.stage"].split(",")]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    uri = prepare(tmp, "search_debug", SEARCH)
    proc = subprocess.Popen(command(tmp, "search_debug", uri), cwd=tmp, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:  # killed once 6 tuning runs (3 trials) finished and another is training
        deadline = time.time() + 400
        while time.time() < deadline:
            assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stdout.read()[-3000:]}"
            if (tmp / "mlflow.db").exists():
                runs = tune_runs(uri, "search_debug") if list((tmp / "multirun").rglob("mlflow_parent_run_id")) else []
                if sum(r.info.status == "FINISHED" for r in runs) >= 6 and \
                        any(r.info.status == "RUNNING" for r in runs):
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the search never reached its fourth trial")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    before = {r.info.run_id: r for r in tune_runs(uri, "search_debug")}
    complete_before = {name: len(s.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
                       for name, s in optuna_studies(tmp).items()}
    running_before = sum(len(s.get_trials(states=(optuna.trial.TrialState.RUNNING,)))
                         for s in optuna_studies(tmp).values())
    rerun = subprocess.run(command(tmp, "search_debug", uri), cwd=tmp, env=clean_env(), capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return uri, tmp, before, complete_before, running_before, rerun


def choices(uri, study):
    parents = [p for p in runs_of(uri, study, role="sweep") if "xablate.tune.choices" in p.data.tags]
    return json.loads(parents[-1].data.tags["xablate.tune.choices"])


def test_tpe_lands_each_variant_on_its_side_of_the_range(searched):
    uri = searched[0]
    chosen = choices(uri, "search_debug")
    assert chosen["optim.optimizer=adam"] < MIDDLE < chosen["optim.optimizer=sgd"], chosen
    finals = [r for r in runs_of(uri, "search_debug", role="job") if r.data.tags["xablate.stage"] == "final"]
    assert len(finals) == 4 and all(r.info.status == "FINISHED" for r in finals)
    for run in finals:  # each final replicate at its variant's choice
        variant = f"optim.optimizer={run.data.params['optim.optimizer']}"
        assert float(run.data.params[LR]) == chosen[variant]


def test_a_killed_search_typed_again_repeats_no_finished_trial_and_retrains_no_finished_run(searched):
    uri, tmp, before, complete_before, running_before, rerun = searched
    studies = optuna_studies(tmp)
    assert sorted(studies) == ["search_debug/optim.optimizer:adam", "search_debug/optim.optimizer:sgd"]
    assert sum(complete_before.values()) >= 2 and running_before >= 1  # told once its batch is in
    failed = 0
    for name, study in studies.items():
        complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert len(complete) == 8  # the trials of the first command count: none repeated, none extra
        failed += len(study.get_trials(states=(optuna.trial.TrialState.FAIL,)))
    assert failed == running_before  # each trial the kill cut short was failed and asked again, once
    runs = tune_runs(uri, "search_debug")
    identities = [r.data.tags["xablate.identity"] for r in runs]
    assert len(identities) == len(set(identities))  # one run per config: nothing trained twice
    finished_before = {i for i, r in before.items() if r.info.status == "FINISHED"}
    now = {r.info.run_id: r for r in runs}
    assert finished_before <= set(now)
    assert all(now[i].info.end_time == before[i].info.end_time for i in finished_before)  # untouched
    # the finished seeds of the trials the kill cut short were skipped, not trained again (a re-asked trial has
    # the same values, so the same identities)
    assert rerun.stdout.count("[xablate] skipping ") >= len(finished_before) - SEARCH["seeds"] * sum(
        complete_before.values()) >= 1
    settings = {(r.data.params["optim.optimizer"], r.data.params[LR]) for r in runs}
    assert len(runs) <= 2 * len(settings)  # at most 2 seeds per setting


def test_the_search_table_says_how_flat_each_optimum_is_and_what_each_stage_cost(searched):
    uri, tmp = searched[:2]
    study = parse_study("search_debug", yaml.safe_load(experiment("search_debug", SEARCH)))
    selection = select_runs(runs_frame(uri, study="search_debug"), study, config_defaults())
    seeds = tuning_runs(selection)
    assert len(seeds) == len(tune_runs(uri, "search_debug"))
    trials = trial_table(seeds, (LR,))
    assert set(trials["variant"]) == {"optim.optimizer=adam", "optim.optimizer=sgd"}
    assert (trials.groupby("variant").size() <= 8).all()  # a setting asked twice is one row
    table = variant_table(selection)
    assert all(cell.endswith("within 1 SE)") for cell in table["flat"]), table["flat"].tolist()
    markdown = to_markdown(table)
    assert "Cost per stage: tune " in markdown and "final 4 runs, 12 epochs, " in markdown and " min wall)" in markdown
    assert "within 1 SE of the best trial" in markdown


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pruned")
    uri = prepare(tmp, "prune_debug", PRUNED)
    done = subprocess.run(command(tmp, "prune_debug", uri), cwd=tmp, env=clean_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return uri, tmp


def test_pruned_trials_are_killed_runs_with_their_epoch_and_reason_whose_other_seeds_never_start(pruned):
    uri, tmp = pruned
    runs = tune_runs(uri, "prune_debug")
    stopped = [r for r in runs if r.data.tags.get("xablate.outcome") == "pruned"]
    assert stopped, "successive halving pruned nothing"
    for run in stopped:
        epoch = int(run.data.tags["xablate.pruned_epoch"])
        assert run.info.status == "KILLED" and 1 <= epoch <= 3  # at the last epoch too: its other seed never runs
        assert run.data.metrics["epochs_completed"] == epoch
        assert "successive_halving pruner stopped the trial after epoch" in run.data.tags["xablate.pruned_reason"]
        assert "test_accuracy" not in run.data.metrics  # a pruned tuning run never reads the test split
        assert run.data.params["seed"] == "0"  # the scout
        siblings = [r for r in runs if r.data.params["optim.optimizer"] == run.data.params["optim.optimizer"]
                    and r.data.params[LR] == run.data.params[LR] and r.data.params["seed"] == "1"]
        assert siblings == []
    trials = {name: s.get_trials(states=(optuna.trial.TrialState.PRUNED,)) for name, s in optuna_studies(tmp).items()}
    assert sum(len(t) for t in trials.values()) == len(stopped)
    assert all(r.info.status == "FINISHED" for r in runs if r not in stopped)


def test_no_final_stage_run_is_ever_pruned(pruned):
    # the tune stage runs at the full budget here, yet no final replicate is a tuning run of the chosen trial
    # (xablate.staging.may_serve): each final run was trained by the final stage, unpruned, with no trial
    uri = pruned[0]
    finals = [r for r in runs_of(uri, "prune_debug", role="job") if "final" in r.data.tags["xablate.stage"]]
    assert len(finals) == 4
    for run in finals:
        assert run.info.status == "FINISHED" and "xablate.outcome" not in run.data.tags
        assert run.data.metrics["epochs_completed"] == 3
        assert run.data.tags["xablate.stage"] == "final"
        assert run.data.params.get("tracking.trial") in (None, "None")  # never armed with a trial


def test_status_reads_a_searched_studys_choices_from_its_sweep_parent(searched):
    from xablate.analysis.status import recorded_choices

    uri = searched[0]
    assert recorded_choices(uri, "search_debug") == {v: {LR: value} for v, value in choices(uri, "search_debug").items()}
    assert recorded_choices(uri, "no_such_study") == {}


def test_a_search_runs_its_trials_in_parallel_through_the_joblib_launcher(tmp_path):
    # two trials per variant at once, as parallel jobs (loky workers) reporting to one optuna.db; the tuning on
    # seeds 1000, 1001 (seeds_from), which no final run repeats
    tune = {"space": {LR: {"log_uniform": [1.0e-3, 0.3]}}, "sampler": "random", "trials": 4, "parallel": 2,
            "seeds": 2, "seeds_from": 1000, "startup": 1, "pruner": "median", "epochs_fraction": 0.67}
    uri = prepare(tmp_path, "parallel_debug", tune)
    done = subprocess.run([*command(tmp_path, "parallel_debug", uri), "hydra/launcher=parallel",
                           "hydra.launcher.n_jobs=2"], cwd=tmp_path, env=clean_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in done.stdout + done.stderr  # the batches went through joblib
    for study in optuna_studies(tmp_path).values():
        states = [t.state for t in study.get_trials()]
        assert len(states) == 4 and set(states) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    runs = tune_runs(uri, "parallel_debug")
    assert all(r.info.status == "FINISHED" or r.data.tags.get("xablate.outcome") == "pruned" for r in runs)
    finals = [r for r in runs_of(uri, "parallel_debug", role="job") if "final" in r.data.tags["xablate.stage"]]
    assert len(finals) == 4 and all(r.info.status == "FINISHED" for r in finals)
    assert {r.data.params["seed"] for r in runs} <= {"1000", "1001"} and "1000" in {r.data.params["seed"] for r in runs}
    assert sorted(r.data.params["seed"] for r in finals) == ["0", "0", "1", "1"]
    assert {s.user_attrs["seeds_from"] for s in optuna_studies(tmp_path).values()} == {1000}
    # the same study typed with the tuning moved back onto the study's seeds: refused before any job starts
    (tmp_path / "extra" / "experiment" / "parallel_debug.yaml").write_text(
        experiment("parallel_debug", {**tune, "seeds_from": None}))
    refused = subprocess.run(command(tmp_path, "parallel_debug", uri), cwd=tmp_path, env=clean_env(),
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0
    assert "Received hydra.sweeper.tune.seeds_from=null (the study's own first seeds), but the tuning study " \
           "'parallel_debug/" in refused.stderr
    assert len(runs_of(uri, "parallel_debug", role="job")) == len(runs) + len(finals)
