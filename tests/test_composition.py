"""`xablate status` and `xablate plan` read the composition a study's runs were made with from the store (their
recorded overrides) and extend exactly those runs: a made-up store whose runs were made with design=cpu_repro and
seed=range(2), and the committed reproduction."""

import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from helpers import ROOT
from xablate.analysis.composition import recorded_composition
from xablate.cli import main as xablate_main, with_recorded_composition

STORE = f"sqlite:///{ROOT / 'results' / 'store' / 'mlflow.db'}"


def made_with(uri, study, command, jobs):
    """A finished sweep parent recording `command` and one run per (overrides) in `jobs`."""
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(study)
    parent = client.create_run(experiment_id, tags={"xablate.role": "sweep", "xablate.overrides": command})
    client.set_terminated(parent.info.run_id)
    for overrides in jobs:
        run = client.create_run(experiment_id, tags={"xablate.variant": "v", "xablate.overrides": overrides})
        client.set_terminated(run.info.run_id)


def test_the_shared_overrides_less_the_grid_and_the_seeds_of_the_latest_finished_sweep(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = r"experiment=fig9_residual design=cpu_repro train.save_model=False tracking.uri=sqlite\:///elsewhere.db"
    made_with(uri, "fig9_residual", "experiment=fig9_residual design=cpu_repro seed=range(2) train.save_model=false",
              [f"residual={r} seed={s} {common}" + (" optim.dropout=0.1" if s else "")
               for r in ("True", "False") for s in (0, 1)])
    composition, runs = recorded_composition(uri, "fig9_residual", ["residual"])
    assert (composition, runs) == (["design=cpu_repro", "train.save_model=False", "seed=range(2)"], 4)
    assert recorded_composition(uri, "fig10_intermediate_act", ["intermediate_act"]) == ([], 0)
    # what the user types wins; the plan leaves the seeds to itself
    assert with_recorded_composition("fig9_residual", ["experiment=fig9_residual", "train.save_model=true"], uri) == [
        "experiment=fig9_residual", "design=cpu_repro", "seed=range(2)", "train.save_model=true"]
    assert with_recorded_composition("fig9_residual", ["experiment=fig9_residual"], uri, replicates=False) == [
        "experiment=fig9_residual", "design=cpu_repro", "train.save_model=False"]


def test_status_with_no_other_argument_reports_the_made_up_runs_by_their_composition(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    made_with(uri, "fig9_residual", "experiment=fig9_residual design=cpu_repro seed=range(2)",
              [f"residual={r} seed={s} experiment=fig9_residual design=cpu_repro" for r in ("True", "False")
               for s in (0, 1)])
    code = xablate_main(["status", "--study", "fig9_residual", f"tracking.uri={uri}"])
    out = capsys.readouterr().out
    assert "composed as its 4 runs in the store were: design=cpu_repro seed=range(2)" in out
    assert "4 cells" in out and code == 1  # made-up runs carry no identity: missing, by the recorded grid
    assert f"python run.py -m experiment=fig9_residual design=cpu_repro tracking.uri={uri} residual=True,False seed=0,1" \
        in out  # a command that extends exactly those runs


@pytest.mark.slow
@pytest.mark.parametrize("study, cells", [("fig9_residual", 20), ("fig10_intermediate_act", 30), ("fig10_tuned", 30),
                                          ("spectrum", 21), ("spectrum_matched", 35)])
def test_status_of_each_committed_study_with_no_other_argument_is_done(study, cells):
    xablate = os.path.join(os.path.dirname(sys.executable), "xablate")
    status = subprocess.run([xablate, "status", "--study", study], capture_output=True, text=True, timeout=600,
                            cwd=ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": STORE})
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"{cells} cells" in status.stdout and "missing: 0" in status.stdout
    assert f"{study}: composed as its" in status.stdout and "design=cpu_repro" in status.stdout


def test_the_committed_stores_variant_tags_match_each_runs_params():
    import json

    import yaml

    from xablate.config import variant_label
    from xablate.studies import load_study

    client = MlflowClient(STORE)
    checked = fashion = 0
    for experiment in client.search_experiments():
        study = load_study(experiment.name)
        if not study.axes:
            continue
        for run in client.search_runs([experiment.experiment_id], filter_string="tags.`xablate.variant` != ''"):
            values = {a: yaml.safe_load(run.data.params[a]) for a in study.axes}
            if study.tune is not None:  # a tuned study's variants carry their tuned values too
                for key in study.tune.keys:
                    values[key] = json.loads(run.data.tags["xablate.axes"])[key]
            assert run.data.tags["xablate.variant"] == variant_label(values), (experiment.name, run.info.run_id)
            checked += 1
            fashion += experiment.name.startswith("fashion_")
    assert checked - fashion == 148 and fashion > 0  # the digits reproduction, and the Fashion-MNIST runs so far


def test_runs_logged_before_and_after_a_key_existed_group_as_one_configuration():
    from xablate.analysis.store import _config_id

    old = {"intermediate_act": "none", "optim.learning_rate": "0.001", "data.limit_test": "None"}
    new = {**old, "data.path": "None", "optim.momentum": "None", "optim.schedule.factor": "None"}
    assert _config_id(old, set()) == _config_id(new, set())
    assert _config_id({**new, "optim.momentum": "0.9"}, set()) != _config_id(new, set())
