"""A sequential study's plan is read from the store, as its first sweep recorded it before the runs."""

import json

import numpy as np
import pytest
from mlflow import MlflowClient

from made_up_store import log_study
from xablate.analysis.plans import NOT_RECORDED, with_recorded_plan
from xablate.analysis.report import selected_runs
from xablate.analysis.sequential import SequentialSpec
from xablate.analysis.store import history_frame
from xablate.studies import SEQUENTIAL_TAG, parse_study

SPEC = {"analysis": {"axes": ["intermediate_act"], "baseline": {"intermediate_act": "none"},
                     "claims": [{"claim": "none beats elu", "metric": "test_accuracy", "better": "none",
                                 "than": ["elu"]}],
                     "sequential": {"looks": [3, 5, 10], "spending": "pocock"}}}


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _parent(uri, study, plan):
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(study)
    experiment = found.experiment_id if found else client.create_experiment(study)
    run = client.create_run(experiment, tags={"xablate.role": "sweep", SEQUENTIAL_TAG: json.dumps(plan)})
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_without_a_recorded_plan_the_study_files_is_read_and_says_so(uri):
    study = with_recorded_plan(uri, parse_study("seq", SPEC))
    assert study.sequential == SequentialSpec((3, 5, 10), "pocock", 0.05)
    assert study.sequential.source == NOT_RECORDED


def test_the_first_recorded_plan_is_the_plan_whatever_the_file_says_now(uri):
    first = _parent(uri, "seq", {"looks": [3, 5, 10], "spending": "pocock", "alpha": 0.05})
    _parent(uri, "seq", {"looks": [4, 8], "spending": "obrien_fleming", "alpha": 0.05})  # a later sweep's
    same = with_recorded_plan(uri, parse_study("seq", SPEC))
    assert same.sequential == SequentialSpec((3, 5, 10), "pocock", 0.05)
    assert same.sequential.source == f"recorded by the study's first sweep (parent run {first[:12]})"
    edited = {"analysis": {**SPEC["analysis"], "sequential": {"looks": [2, 4], "spending": "obrien_fleming"}}}
    moved = with_recorded_plan(uri, parse_study("seq", edited))
    assert moved.sequential.looks == (3, 5, 10) and moved.sequential.spending == "pocock"
    assert moved.sequential.source.endswith("; the study file now says looks [2, 4], obrien_fleming, alpha 0.05: a "
                                            "plan edited after the runs began is not the plan")
    assert with_recorded_plan(uri, parse_study("seq", {"analysis": {
        k: v for k, v in SPEC["analysis"].items() if k != "sequential"}})).sequential is None  # no design: none


def test_the_verdict_reads_its_looks_from_the_recorded_plan(uri, monkeypatch):
    from xablate.analysis.verdicts import verdict_tables

    rng = np.random.default_rng(3)
    none = list(0.90 + rng.normal(0, 0.005, 10))
    log_study(uri, "seq", {"none": none, "elu": list(0.80 + rng.normal(0, 0.005, 10))})
    _parent(uri, "seq", {"looks": [4, 8], "spending": "pocock", "alpha": 0.05})  # recorded: looks 4, 8
    monkeypatch.setattr("xablate.analysis.report.load_study", lambda name: parse_study(name, SPEC))
    selection = selected_runs(uri, "seq")
    table, rows = verdict_tables([(selection, history_frame(uri, selection.runs, metrics=["loss"],
                                                            axes=selection.axes))])
    assert rows["n"].tolist() == [4] and rows["looks_planned"].tolist() == [2]  # not the file's [3, 5, 10]
    assert "plan: recorded by the study's first sweep" in table["evidence"].iloc[0]
