"""A staged study end to end under the debug config: a pilot pass, a tuning stage whose best learning rate
differs between the variants by construction (Adam wants a small one, plain SGD a large one), and the study's
own runs at each variant's choice — killed with SIGKILL in the last stage and finished by typing the command
again, with nothing retrained (a pilot run whose config equals a tuning run's serves both); then the analysis: tuned against tuned, the chosen values in the table, and the
pilot's rank agreement (Kendall's tau, checked against scipy)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from mlflow import MlflowClient
from scipy import stats

from helpers import ROOT, clean_env, runs_of, sqlite_uri
from xablate.analysis import selected_runs, variant_table
from xablate.analysis.tables import to_markdown

pytestmark = pytest.mark.slow  # starts run.py or trains for many seconds: the full suite's tier

STUDY = "staged_debug"
EXPERIMENT = textwrap.dedent(f"""\
    # @package _global_
    defaults:
      - override /hydra/sweeper: staged
    study: {STUDY}
    hydra:
      sweeper:
        params:
          optim.optimizer: adam,sgd
          seed: 0
        tune:
          key: optim.learning_rate
          values: [0.001, 0.3]
          epochs_fraction: 0.34
        pilot:
          epochs_fraction: 0.34
    """)
TUNED = {"optim.optimizer=adam": 0.001, "optim.optimizer=sgd": 0.3}  # by construction


def command(tmp_path, uri):
    return [sys.executable, str(ROOT / "run.py"), "-m", f"--config-dir={tmp_path / 'extra'}",
            f"experiment={STUDY}", "debug=default", "train.epochs=3", "train.save_model=false", f"tracking.uri={uri}"]


def wait_for_the_last_final_job_mid_training(uri, proc, sweep_root, timeout=400):
    deadline = time.time() + timeout
    # the sweep creates the store first (a second process creating it at the same time would race)
    while not list(sweep_root.glob("*/mlflow_parent_run_id")):
        assert proc.poll() is None, f"the sweep did not start: {proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, "the sweep did not start"
        time.sleep(0.1)
    client = MlflowClient(uri)
    while time.time() < deadline:
        assert proc.poll() is None, f"the sweep ended before it could be interrupted: {proc.stdout.read()[-3000:]}"
        runs = [r for r in runs_of(uri, STUDY, role="job") if r.data.tags.get("xablate.stage") == "final"]
        if len(runs) == 2:
            steps = [m.step for m in client.get_metric_history(runs[1].info.run_id, "loss")]
            if 1 <= len(steps) < 3:
                return runs[1].info.run_id
        time.sleep(0.05)
    raise AssertionError("the last final job never reached mid-training")


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("staged")
    (tmp / "extra" / "experiment").mkdir(parents=True)
    (tmp / "extra" / "experiment" / f"{STUDY}.yaml").write_text(EXPERIMENT)
    uri = sqlite_uri(tmp)
    proc = subprocess.Popen(command(tmp, uri), cwd=tmp, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        killed = wait_for_the_last_final_job_mid_training(uri, proc, tmp / "multirun" / STUDY)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    before = {r.info.run_id: r for r in runs_of(uri, STUDY, role="job")}
    rerun = subprocess.run(command(tmp, uri), cwd=tmp, env=clean_env(), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return uri, tmp, killed, before, rerun


def by_stage(uri):
    runs = runs_of(uri, STUDY, role="job")
    return {stage: [r for r in runs if stage in r.data.tags["xablate.stage"].split(",")]
            for stage in ("pilot", "tune", "final")}


def test_each_variant_gets_its_own_best_value_on_the_validation_split(staged):
    uri, tmp, _, _, rerun = staged
    tuning = json.loads(next((tmp / "multirun" / STUDY).glob("*/tuning.json")).read_text())
    assert tuning["key"] == "optim.learning_rate" and tuning["metric"] == "final_val_accuracy"
    assert {v["variant"]: v["chosen"] for v in tuning["variants"]} == TUNED
    runs = by_stage(uri)
    client = MlflowClient(uri)
    for record in tuning["variants"]:  # the choice is the best validation accuracy of that variant's tuning runs
        scores = {value: client.get_run(ids[0]).data.metrics["val_accuracy"] for value, ids in record["runs"].items()}
        assert scores == pytest.approx(record["scores"])
        assert float(max(scores, key=scores.get)) == record["chosen"]
    assert len(runs["tune"]) == 4 and len(runs["pilot"]) == 2 and len(runs["final"]) == 2
    for run in runs["tune"]:
        assert run.data.params["train.epochs"] == "1"
    for run in runs["pilot"]:  # one epoch at the default rate: the tuning runs at 0.001 are the same config
        assert run.data.params["train.epochs"] == "1" and run.data.params["optim.learning_rate"] == "0.001"
        assert run.data.tags["xablate.stage"] == "pilot,tune"
    for run in runs["final"]:
        variant = f"optim.optimizer={run.data.params['optim.optimizer']}"
        assert float(run.data.params["optim.learning_rate"]) == TUNED[variant]
        assert run.data.params["train.epochs"] == "3" and run.info.status == "FINISHED"
    [parent] = [p for p in runs_of(uri, STUDY, role="sweep") if "xablate.tune.choices" in p.data.tags][-1:]
    assert json.loads(parent.data.tags["xablate.tune.choices"]) == TUNED
    assert {r.data.tags["mlflow.parentRunId"] for r in runs["final"]} <= {
        p.info.run_id for p in runs_of(uri, STUDY, role="sweep")}


def test_typing_the_command_again_after_a_kill_retrains_nothing(staged):
    uri, _, killed, before, rerun = staged
    runs = runs_of(uri, STUDY, role="job")
    assert len(runs) == len(before) == 6  # 2 variants x 2 values (2 of them the pilot) + 2 final: none started twice
    assert len({r.data.tags["xablate.identity"] for r in runs}) == 6
    for run in runs:
        expected = "1" if run.info.run_id == killed else None
        assert run.data.tags.get("xablate.resumes") == expected, run.info.run_name
    assert rerun.stdout.count("[xablate] skipping ") == 2 + 4 + 1  # pilot, tuning, the final run that finished
    assert f"resuming MLflow run {killed}" in rerun.stdout
    assert before[killed].info.status == "RUNNING"  # as SIGKILL left it
    assert all(r.info.status == "FINISHED" for r in runs)


def test_the_table_compares_tuned_against_tuned_and_reports_the_pilots_rank_agreement(staged):
    uri = staged[0]
    selection = selected_runs(uri, STUDY)
    assert set(selection.runs["run_id"]) == {r.info.run_id for r in by_stage(uri)["final"]}
    table = variant_table(selection)
    assert dict(zip(table["variant"], table["tuned"])) == {k: str(v) for k, v in TUNED.items()}
    assert table.attrs["tuned_key"] == "optim.learning_rate"
    pilot = {f"optim.optimizer={r.data.params['optim.optimizer']}": r.data.metrics["val_accuracy"]
             for r in by_stage(uri)["pilot"]}
    full = dict(zip(table["variant"], table["mean"]))
    agreement = table.attrs["pilot_agreement"]
    assert agreement.n == 2
    order = list(full)
    if len(set(pilot.values())) > 1 and len(set(full.values())) > 1:
        reference = stats.kendalltau([pilot[v] for v in order], [full[v] for v in order])
        assert (agreement.tau, agreement.p_value) == pytest.approx((reference.statistic, reference.pvalue))
    markdown = to_markdown(table)
    assert "optim.learning_rate (tuned)" in markdown and "Pilot vs full study: Kendall's τ" in markdown


def test_status_of_a_tuned_study_composes_one_identity_per_candidate_value(tmp_path):
    from xablate.analysis.status import study_status

    status = study_status(["experiment=fig10_tuned", "debug=default", "seed=0,1",
                           f"tracking.uri={sqlite_uri(tmp_path)}"], backend="tensorflow")
    assert status.sweep_keys == ["intermediate_act", "seed"]
    assert len(status.cells) == 3 * 2 and status.counts()["missing"] == 6  # an empty store
    assert "optim.learning_rate" not in status.cells.columns  # tuned per variant, not a cell of the grid
