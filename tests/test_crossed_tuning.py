"""A claim `at: {key: tuned}`: the staged sweeper crosses every variant with every variant's tuned value of the key
(a factorial built after tuning), and the verdict reads the claim at each of those values, with the interaction —
beside claims between each variant at its own tuned value.

The made-up store puts the confound in by construction: none's own rate is where every variant does best, so at
their own tuned rates none beats elu by 0.05, while at either shared rate elu is 0.05 ahead. The own reading says
reproduced, the matched reading contradicted; both are exact paired differences of the logged numbers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from mlflow import MlflowClient
from scipy import stats

from made_up_store import log_study
from xablate.analysis.report import selected_runs
from xablate.analysis.store import history_frame
from xablate.analysis.verdicts import CONTRADICTED, REPRODUCED, verdict_tables
from xablate.staging import CHOICES_TAG, KEY_TAG, crossed_levels, final_jobs, parse_tune
from xablate.studies import claim_hash, parse_study

LR = "optim.learning_rate"
TUNE = {"key": LR, "values": [0.002, 0.008, 0.03]}
OWN = {"claim": "none beats elu, each at its own tuned rate", "better": "none", "than": ["elu"]}
MATCHED = {"claim": "none beats elu at each tuned rate", "better": "none", "than": ["elu"], "at": {LR: "tuned"}}
SPEC = {"hydra": {"sweeper": {"params": {"intermediate_act": "none,elu", "seed": "range(8)"}, "tune": TUNE}},
        "analysis": {"axes": ["intermediate_act"], "baseline": {"intermediate_act": "elu"}, "metric": "test_accuracy",
                     "claims": [OWN, MATCHED]}}


def test_a_claim_at_the_tuned_values_parses_and_is_refused_where_it_cannot_be_read():
    study = parse_study("crossed", SPEC)
    assert study.crossed == LR and [c.crossed for c in study.claims] == [None, LR]
    assert study.claims[1].as_record()["at"] == {LR: "tuned"}  # registered before the tuning knows the values
    unmatched = {k: v for k, v in MATCHED.items() if k != "at"}
    assert claim_hash(study.claims[1]) != claim_hash(parse_study("c", {**SPEC, "analysis": {
        **SPEC["analysis"], "claims": [unmatched]}}).claims[0])
    other = {**MATCHED, "at": {"optim.weight_decay": "tuned"}}
    with pytest.raises(ValueError, match=r"optim\.weight_decay is not a key its tuning stage picks \(the tuned keys "
                                         r"are optim\.learning_rate\)"):
        parse_study("c", {**SPEC, "analysis": {**SPEC["analysis"], "claims": [other]}})
    untuned = {"hydra": {"sweeper": {"params": {"intermediate_act": "none,elu"}}}, "analysis": {"claims": [MATCHED]}}
    with pytest.raises(ValueError, match="the study tunes nothing"):
        parse_study("c", untuned)
    repeated = {"space": {LR: {"log_uniform": [1e-3, 1e-1]}}, "repeats": 2}
    with pytest.raises(ValueError, match=r"hydra\.sweeper\.tune\.repeats=2; allowed: repeats: 1 with a claim at"):
        parse_study("c", {**SPEC, "hydra": {"sweeper": {**SPEC["hydra"]["sweeper"], "tune": repeated}}})
    beside = {**OWN, "claim": "at matched dropout", "at": {"model.dropout": [0.0, 0.5]},
              "better": {"intermediate_act": "none"}, "than": [{"intermediate_act": "elu"}]}
    matched = {**MATCHED, "better": {"intermediate_act": "none"}, "than": [{"intermediate_act": "elu"}]}
    with pytest.raises(ValueError, match=r"in a study crossed at its tuned optim\.learning_rate; allowed: claims at "):
        parse_study("c", {**SPEC, "analysis": {**SPEC["analysis"], "axes": ["intermediate_act", "model.dropout"],
                                               "claims": [matched, beside]}})
    alone = {**MATCHED, "better": {"intermediate_act": "none"}, "than": [{"intermediate_act": "elu"}]}
    assert parse_study("c", {"analysis": {"claims": [alone]}}).crossed == LR  # a job's block alone: read later


def test_the_final_stage_crosses_each_variant_with_every_tuned_value():
    tune = parse_tune({"space": {LR: {"log_uniform": [1e-3, 1e-1]}, "optim.weight_decay": {"uniform": [0, 1e-4]}}})
    grid = [[f"intermediate_act={a}", f"seed={s}"] for a in ("none", "elu", "relu") for s in range(2)]
    choices = {("intermediate_act=none",): {LR: 0.008, "optim.weight_decay": 1e-5},
               ("intermediate_act=elu",): {LR: 0.002, "optim.weight_decay": 2e-5},
               ("intermediate_act=relu",): {LR: 0.002, "optim.weight_decay": 3e-5}}
    assert crossed_levels(choices, LR) == [0.002, 0.008]  # elu and relu chose one rate: one level
    jobs = final_jobs(grid, choices, tune, crossed=LR)
    cells = [(j[0], j[1], next(o for o in j if o.startswith(LR + "=")), next(o for o in j if o.startswith("optim.w")))
             for j in jobs]
    assert len(jobs) == 12 and len(set(cells)) == 12
    for act, wd in (("none", "1e-05"), ("elu", "2e-05"), ("relu", "3e-05")):  # every rate, its own weight decay
        mine = [c for c in cells if c[0] == f"intermediate_act={act}"]
        assert sorted(c[2] for c in mine) == [f"{LR}=0.002"] * 2 + [f"{LR}=0.008"] * 2
        assert {c[3] for c in mine} == {f"optim.weight_decay={wd}"}
    assert len(final_jobs(grid, choices, tune)) == 6  # not crossed: each variant at its own values only
    # a sweep of one variant (a cell status says is missing) still runs it at every variant's value
    some = final_jobs(grid[:2], {("intermediate_act=none",): choices[("intermediate_act=none",)]}, tune, crossed=LR,
                      levels=crossed_levels(choices, LR))
    assert sorted(next(o for o in j if o.startswith(LR + "=")) for j in some) == [f"{LR}=0.002"] * 2 + [f"{LR}=0.008"] * 2


def _store(uri, study="crossed", n=8, rates=(0.002, 0.008)):
    """elu's own rate 0.002, none's 0.008; per seed: elu@0.002 = x, none@0.008 = x + 0.05, none@0.002 = x - 0.05,
    elu@0.008 = x + 0.10 (+ a little noise each)."""
    rng = np.random.default_rng(11)
    x = rng.normal(0.80, 0.02, n)
    noise = lambda: rng.normal(0, 0.002, n)  # noqa: E731
    elu_rate, none_rate = rates
    cells = {elu_rate: {"none": x - 0.05 + noise(), "elu": x + noise()},
             none_rate: {"none": x + 0.05 + noise(), "elu": x + 0.10 + noise()}}
    for rate, values in cells.items():
        ids = log_study(uri, study, {k: list(v) for k, v in values.items()},
                        value_params={v: {LR: str(rate)} for v in values})
        client = MlflowClient(uri)
        for run_id in (r for runs in ids.values() for r in runs):
            client.set_tag(run_id, "xablate.tuned_key", LR)
            client.set_tag(run_id, "xablate.stage", "final")
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study).experiment_id
    parent = client.create_run(experiment, tags={"xablate.role": "sweep", KEY_TAG: LR, CHOICES_TAG: json.dumps(
        {"intermediate_act=none": none_rate, "intermediate_act=elu": elu_rate})})
    client.set_terminated(parent.info.run_id)
    return cells


def test_the_verdict_reads_own_rates_and_every_tuned_rate_with_the_interaction(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cells = _store(uri)
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, SPEC))
    selection = selected_runs(uri, "crossed")
    assert selection.axes == ["intermediate_act", LR] and selection.crossed == LR
    assert selection.baseline == {"intermediate_act": "elu", LR: 0.002}  # elu at its own rate
    assert selection.own == {"intermediate_act=none": 0.008, "intermediate_act=elu": 0.002}
    assert len(selection.variants) == 4 and len(selection.runs) == 32
    table, rows = verdict_tables([(selection, history_frame(uri, selection.runs, metrics=["loss"],
                                                            axes=selection.axes))], uncertainty=False)
    own, matched = table.itertuples()
    assert own.verdict == REPRODUCED and matched.verdict == CONTRADICTED
    mine = rows[rows["claim"] == OWN["claim"]].iloc[0]
    assert mine["variant"] == f"intermediate_act=none,{LR}=0.008" and mine["baseline"] == f"intermediate_act=elu,{LR}=0.002"
    assert mine["delta"] == pytest.approx(np.mean(cells[0.008]["none"] - cells[0.002]["elu"]), abs=1e-12)
    assert "different tuned settings" in own.evidence
    levels = rows[rows["claim"] == MATCHED["claim"]]
    assert levels["at"].tolist() == [f"{LR}=0.002", f"{LR}=0.008"]
    for (_, row), rate in zip(levels.iterrows(), (0.002, 0.008)):
        assert row["delta"] == pytest.approx(np.mean(cells[rate]["none"] - cells[rate]["elu"]), abs=1e-12)
        assert row["outcome"] == CONTRADICTED
    contrast = (cells[0.002]["none"] - cells[0.002]["elu"]) - (cells[0.008]["none"] - cells[0.008]["elu"])
    assert levels["interaction_p"].iloc[0] == pytest.approx(stats.ttest_1samp(contrast, 0).pvalue, rel=1e-6)
    assert matched.evidence.startswith(f"matched at each {LR} (0.002, 0.008; tuned by intermediate_act=elu (0.002), "
                                       f"intermediate_act=none (0.008)):")
    assert set(rows["holm_family"]) == {"this claim of crossed alone (1 comparison)",
                                        "this claim of crossed alone (2 comparisons)"}


def test_rates_that_yaml_reads_back_as_strings_still_find_each_variants_own(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cells = _store(uri, rates=(5e-05, 1e-05))  # logged as "5e-05": a string to YAML 1.1
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, SPEC))
    selection = selected_runs(uri, "crossed")
    assert float(selection.baseline[LR]) == 5e-05  # elu at its own rate, not the first level
    table, rows = verdict_tables([(selection, history_frame(uri, selection.runs, metrics=["loss"],
                                                            axes=selection.axes))], uncertainty=False)
    mine = rows[rows["claim"] == OWN["claim"]].iloc[0]
    assert mine["delta"] == pytest.approx(np.mean(cells[1e-05]["none"] - cells[5e-05]["elu"]), abs=1e-12)
    assert rows.loc[rows["claim"] == MATCHED["claim"], "n"].tolist() == [8, 8]


def test_without_the_recorded_choices_the_own_reading_has_no_runs(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _store(uri)
    MlflowClient(uri).delete_tag(next(r.info.run_id for r in MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("crossed").experiment_id],
        filter_string=f"tags.`{CHOICES_TAG}` != ''")), CHOICES_TAG)
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, SPEC))
    selection = selected_runs(uri, "crossed")
    assert selection.own == {}
    table, rows = verdict_tables([(selection, history_frame(uri, selection.runs, metrics=["loss"],
                                                            axes=selection.axes))], uncertainty=False)
    assert rows.loc[rows["claim"] == OWN["claim"], "n"].tolist() == [0]  # no variant's own rate is known
    assert rows.loc[rows["claim"] == MATCHED["claim"], "at"].tolist() == [f"{LR}=0.002", f"{LR}=0.008"]


EXPERIMENT = """\
# @package _global_
defaults:
  - override /hydra/sweeper: staged
study: crossed_debug
hydra:
  sweeper:
    params:
      optim.optimizer: adam,sgd
      seed: 0,1
    tune:
      key: optim.learning_rate
      values: [0.001, 0.3]
analysis:
  axes: [optim.optimizer]
  baseline: {optim.optimizer: sgd}
  claims:
    - claim: adam beats sgd, each at its own tuned rate
      better: adam
      than: [sgd]
      metric: final_val_accuracy
    - claim: adam beats sgd at each tuned rate
      better: adam
      than: [sgd]
      metric: final_val_accuracy
      at: {optim.learning_rate: tuned}
"""


@pytest.mark.slow  # trains 8 debug runs (4 of them serve the tuning and the final stage both)
def test_a_crossed_debug_study_end_to_end(tmp_path, monkeypatch):
    import yaml

    from helpers import ROOT, run_py, runs_of, sqlite_uri

    uri = sqlite_uri(tmp_path)
    (tmp_path / "extra" / "experiment").mkdir(parents=True)
    (tmp_path / "extra" / "experiment" / "crossed_debug.yaml").write_text(EXPERIMENT)
    arguments = ["experiment=crossed_debug", "debug=default", "train.epochs=1", "train.save_model=false",
                 f"tracking.uri={uri}"]
    proc = run_py("-m", f"--config-dir={tmp_path / 'extra'}", *arguments, cwd=tmp_path, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    # Adam wants 0.001 and plain SGD 0.3 by construction (tests/test_staged_sweeps.py)
    assert f"final stage crossed with every variant's tuned {LR}: [0.001, 0.3] (8 job(s))" in out
    jobs = runs_of(uri, "crossed_debug", role="job")
    # the tuning ran every rate at seed 0 at the final recipe; a tuning run never stands in for a final cell
    assert len(jobs) == 12
    finals = [r for r in jobs if "final" in r.data.tags["xablate.stage"].split(",")]
    cells = sorted((r.data.params["optim.optimizer"], float(r.data.params[LR]), int(r.data.params["seed"]))
                   for r in finals)
    assert cells == sorted((o, lr, s) for o in ("adam", "sgd") for lr in (0.001, 0.3) for s in (0, 1))
    assert all(r.info.status == "FINISHED" for r in finals)

    # `xablate status` composes the project's conf/: a copy of it holding the study file stands in for it
    project = tmp_path / "project"
    shutil.copytree(ROOT / "conf", project / "conf", symlinks=False)
    (project / "conf" / "experiment" / "crossed_debug.yaml").write_text(EXPERIMENT)
    monkeypatch.setattr("xablate.analysis.status.project_root", lambda: project)
    from xablate.analysis.status import format_status, study_status

    found = study_status(arguments)
    assert found.crossed == LR and len(found.cells) == 8, found.cells
    assert found.counts()["done"] == 8 and found.commands() == []
    shown = format_status(found)
    assert "study 'crossed_debug'" in shown and "nothing left to run" in shown
    assert sorted(zip(found.cells["optim.optimizer"], found.cells[LR].astype(float))) == sorted(
        (o, lr) for o in ("adam", "sgd") for lr in (0.001, 0.3) for _ in range(2))

    spec = parse_study("crossed_debug", yaml.safe_load(EXPERIMENT))
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: spec)
    selection = selected_runs(uri, "crossed_debug")
    assert selection.own == {"optim.optimizer=adam": 0.001, "optim.optimizer=sgd": 0.3}
    table, rows = verdict_tables([(selection, history_frame(uri, selection.runs, metrics=["loss"],
                                                            axes=selection.axes))], uncertainty=False)
    own = rows[rows["claim"] == "adam beats sgd, each at its own tuned rate"].iloc[0]
    assert (own["variant"], own["baseline"]) == (f"optim.optimizer=adam,{LR}=0.001", f"optim.optimizer=sgd,{LR}=0.3")
    matched = rows[rows["claim"] == "adam beats sgd at each tuned rate"]
    assert matched["at"].tolist() == [f"{LR}=0.001", f"{LR}=0.3"] and matched["n"].tolist() == [2, 2]
    assert not np.isnan(matched["interaction_p"].iloc[0])
