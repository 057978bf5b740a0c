"""`tune.repeats: r`: the search runs r times per variant with other sampler seeds, and the final replicates spread
over the r choices (replicate j at repeat j mod r's), so the study's interval carries the tuning's own variance.

The rules on their own (parsing, names, seeds, which replicate runs where), then a debug study end to end: two
variants searched twice each, every Optuna study in the store, each final run at its own repeat's choice, the
choices as `xablate status` reads them, and the verdict saying the tuning was repeated."""

import json
import textwrap

import optuna
import pytest

from helpers import run_py, runs_of, sqlite_uri
from xablate.staging import final_jobs, parse_tune, replicate_choice
from xablate.tuning import REPEAT_SEED_STRIDE, parse_search, repeat_spec, repeat_study_name

LR = "optim.learning_rate"
SPACE = {LR: {"log_uniform": [1.0e-3, 0.3]}}


def test_repeats_parse_with_the_search_form_and_are_refused_elsewhere():
    assert parse_search({"space": SPACE}).repeats == 1
    assert parse_search({"space": SPACE, "repeats": 3}).repeats == 3
    for bad in (0, -1, 1.5, True, "2", 21):
        with pytest.raises(ValueError, match=r"tune\.repeats=.*an integer from 1 to 20"):
            parse_search({"space": SPACE, "repeats": bad})
    with pytest.raises(ValueError, match=r"tune\.repeats=2; allowed: 1 with sampler: grid"):
        parse_search({"space": {"model.middle_blocks": {"int": [2, 4]}}, "sampler": "grid", "repeats": 2})
    with pytest.raises(ValueError, match=r"tune\.repeats=2; allowed: repeats with the search form only"):
        parse_tune({"key": LR, "values": [0.001, 0.01], "repeats": 2})


def test_each_repeat_has_its_own_study_and_sampler_seed():
    assert repeat_study_name("fig10", "intermediate_act=elu", 0) == "fig10/intermediate_act:elu"  # as before
    assert repeat_study_name("fig10", "intermediate_act=elu", 2) == "fig10/intermediate_act:elu/repeat-2"
    spec = parse_search({"space": SPACE, "repeats": 3})
    assert [repeat_spec(spec, k).seed for k in range(3)] == [0, REPEAT_SEED_STRIDE, 2 * REPEAT_SEED_STRIDE]
    assert repeat_spec(spec, 1).space == spec.space and repeat_spec(spec, 1).trials == spec.trials


def test_replicate_j_runs_at_repeat_j_mod_r():
    assert replicate_choice({LR: 0.01}, 5) == {LR: 0.01}  # one search: every replicate at its choice
    chosen = [{LR: 0.01}, {LR: 0.02}, {LR: 0.03}]
    assert [replicate_choice(chosen, j)[LR] for j in range(7)] == [0.01, 0.02, 0.03, 0.01, 0.02, 0.03, 0.01]
    tune = parse_tune({"space": SPACE, "repeats": 2})
    grid = [[f"optim.optimizer={o}", f"seed={s}"] for o in ("adam", "sgd") for s in range(3)]
    choices = {("optim.optimizer=adam",): [{LR: 0.001}, {LR: 0.002}], ("optim.optimizer=sgd",): [{LR: 0.1}, {LR: 0.2}]}
    jobs = final_jobs(grid, choices, tune)
    got = [(job[0], job[1], next(o for o in job if o.startswith(LR))) for job in jobs]
    assert got == [("optim.optimizer=adam", "seed=0", f"{LR}=0.001"), ("optim.optimizer=adam", "seed=1", f"{LR}=0.002"),
                   ("optim.optimizer=adam", "seed=2", f"{LR}=0.001"), ("optim.optimizer=sgd", "seed=0", f"{LR}=0.1"),
                   ("optim.optimizer=sgd", "seed=1", f"{LR}=0.2"), ("optim.optimizer=sgd", "seed=2", f"{LR}=0.1")]
    # a command that runs only seed 3 (as status prints it for a missing cell) runs it where the whole study does
    [alone] = final_jobs([["optim.optimizer=adam", "seed=3"]], choices, tune)
    assert f"{LR}=0.002" in alone


EXPERIMENT = """\
# @package _global_
defaults:
  - override /hydra/sweeper: staged
study: repeats_debug
hydra:
  sweeper:
    params:
      optim.optimizer: adam,sgd
      seed: range(4)
    tune:
      space:
        optim.learning_rate: {log_uniform: [1.0e-3, 0.3]}
      sampler: random
      trials: 2
      repeats: 2
analysis:
  claims:
    - claim: sgd beats adam
      better: {optim.optimizer: sgd}
      than: [{optim.optimizer: adam}]
      metric: test_accuracy
"""


@pytest.mark.slow  # trains 16 debug runs
def test_a_repeated_search_end_to_end(tmp_path):
    uri = sqlite_uri(tmp_path)
    (tmp_path / "extra" / "experiment").mkdir(parents=True)
    (tmp_path / "extra" / "experiment" / "repeats_debug.yaml").write_text(EXPERIMENT)
    arguments = (f"--config-dir={tmp_path / 'extra'}", "experiment=repeats_debug", "debug=default", "train.epochs=1",
                 "train.save_model=false", f"tracking.uri={uri}")
    proc = run_py("-m", *arguments, cwd=tmp_path, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "2 trials of 1 seed(s), 2 repeats" in out

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    assert names == ["repeats_debug/optim.optimizer:adam", "repeats_debug/optim.optimizer:adam/repeat-1",
                     "repeats_debug/optim.optimizer:sgd", "repeats_debug/optim.optimizer:sgd/repeat-1"]
    asked = {}
    for name in names:
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
        asked[name] = [t.params[LR] for t in trials]
    assert asked[names[0]] != asked[names[1]]  # another sampler seed: other draws

    [parent] = [p for p in runs_of(uri, "repeats_debug", role="sweep") if "xablate.tune.choices" in p.data.tags]
    chosen = json.loads(parent.data.tags["xablate.tune.choices"])
    assert sorted(chosen) == ["optim.optimizer=adam", "optim.optimizer=sgd"]
    assert all(isinstance(values, list) and len(values) == 2 for values in chosen.values())
    for name, values in chosen.items():  # each repeat's choice is the best of its own study's trials
        for k, value in enumerate(values):
            study = optuna.load_study(study_name=repeat_study_name("repeats_debug", name, k), storage=storage)
            assert value == float(f"{study.best_trial.params[LR]:.3g}")
    [tuning] = list((tmp_path / "multirun").rglob("tuning.json"))
    document = json.loads(tuning.read_text())
    assert document["repeats"] == 2 and [v["repeat"] for v in document["variants"]] == [0, 1, 0, 1]

    finals = [r for r in runs_of(uri, "repeats_debug", role="job")  # a trial at seed 0 and the final recipe is
              if "final" in r.data.tags["xablate.stage"].split(",")]  # its replicate's final run too (one identity)
    assert len(finals) == 8 and all(r.info.status == "FINISHED" for r in finals)
    for run in finals:  # replicate j at repeat j mod 2's choice
        variant, seed = f"optim.optimizer={run.data.params['optim.optimizer']}", int(run.data.params["seed"])
        assert float(run.data.params[LR]) == chosen[variant][seed % 2], (variant, seed)

    from xablate.analysis.status import recorded_choices  # what `xablate status` reads each cell's values from

    assert recorded_choices(uri, "repeats_debug") == {v: [{LR: x} for x in values] for v, values in chosen.items()}

    from xablate.analysis.report import config_defaults
    from xablate.analysis.store import HISTORY_MEASURES, history_frame, runs_frame, select_runs
    from xablate.analysis.verdicts import verdict_tables
    from xablate.studies import parse_study

    study = parse_study("repeats_debug", yaml_of(EXPERIMENT))
    selection = select_runs(runs_frame(uri, study="repeats_debug"), study, config_defaults())
    assert len(selection.runs) == 8 and sorted(selection.variants) == ["optim.optimizer=adam", "optim.optimizer=sgd"]
    history = history_frame(uri, selection.runs, metrics=HISTORY_MEASURES, axes=selection.axes)
    table, compared = verdict_tables([(selection, history)], uncertainty=False)
    evidence = table.iloc[0]["evidence"]
    assert "tuning repeated with other sampler seeds" in evidence
    shown = {v: "|".join(f"{x:.3g}" for x in dict.fromkeys(values)) for v, values in chosen.items()}
    assert f"optim.optimizer=sgd at lr {shown['optim.optimizer=sgd']}" in evidence, evidence


def yaml_of(text):
    import yaml

    return yaml.safe_load(textwrap.dedent(text))
