"""`xablate ui`'s pieces without a server: the served index page defaults the browser to model training (MLflow
3.17 ignores the experiment tag), `--study`'s saved view selects exactly the final-stage runs and groups them by
variant, an unknown study is refused in one line, and a store git tracks is served from a copy. The browser
checks: test_ui_study_view.py."""

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from helpers import free_port
from made_up_store import log_study
from xablate.cli import main
from xablate.tracking import mlflow_ui, ui_server
from xablate.tracking.store import open_experiment
from xablate.staging import serves
from xablate.tracking.study_view import FINAL_TAGGED, UNTAGGED, VIEW_TAG, save_study_view
from xablate.tracking.ui_store import served_store

STUDY = "fig10_intermediate_act"


def test_the_bundle_still_keeps_the_workflow_type_where_the_default_is_written():
    """MLflow 3.17's UI: the experiment kind is the workflow type (a feature flag hard-coded on), kept in
    localStorage `mlflow.workflowType_v1` (useLocalStorage: `${key}_v${version}`), default genai."""
    import mlflow.server

    bundle = next((Path(mlflow.server.__file__).parent / "js" / "build" / "static" / "js").glob("main.*.js"))
    text = bundle.read_text()
    assert 'key:"mlflow.workflowType",version:1,initialValue:c' in text
    assert "const o=(e,t)=>`${e}_v${t}`" in text
    assert mlflow_ui.WORKFLOW_STORAGE_KEY == "mlflow.workflowType_v1"


def test_the_served_index_page_defaults_the_browser_to_model_training():
    from mlflow.server import app as flask_app

    mlflow_ui.app  # noqa: B018 — what uvicorn imports in each worker
    page = flask_app.test_client().get("/").get_data(as_text=True)
    head = page.split("<head>", 1)[1]
    assert head.startswith(mlflow_ui.DEFAULT_SCRIPT)  # before MLflow's own scripts
    assert ("if(!window.localStorage.getItem('mlflow.workflowType_v1'))window.localStorage.setItem("
            "'mlflow.workflowType_v1',JSON.stringify('machine_learning'))") in head  # a user's own choice stays
    assert 'src="static-files/static/js/main.' in head


def test_the_launcher_runs_mlflow_ui_with_its_app_swapped(monkeypatch):
    import mlflow.cli
    import mlflow.server

    monkeypatch.setattr(mlflow.server, "_build_uvicorn_command", mlflow.server._build_uvicorn_command)  # restored
    monkeypatch.setattr(mlflow.cli.cli, "main", lambda args, prog_name, standalone_mode: (
        args, mlflow.server._build_uvicorn_command(None, "127.0.0.1", 5000, 4, mlflow_ui.MLFLOW_APP)))
    args, command = mlflow_ui.main(["ui", "--port", "5000"])
    assert args == ["ui", "--port", "5000"]
    assert command[-1] == "xablate.tracking.mlflow_ui:app" and mlflow_ui.MLFLOW_APP not in command


def staged_store(tmp_path, stages: list[str | None]) -> tuple[str, dict]:
    """STUDY with one run per variant and stage (None: no stage tag, as before stages were tagged)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, _ = open_experiment(uri, STUDY)
    ids = log_study(uri, STUDY, {"none": [0.9] * len(stages), "elu": [0.8] * len(stages)})
    tagged = {}
    for runs in ids.values():
        for run_id, stage in zip(runs, stages):
            if stage is not None:
                client.set_tag(run_id, "xablate.stage", stage)
            tagged[run_id] = stage
    return uri, tagged


@pytest.mark.parametrize("stages, expected_filter, untagged_note", [
    (["final", "tune,final", "pilot,final", "pilot", "tune"], FINAL_TAGGED, False),
    ([None, None], UNTAGGED, False),
    (["final", "pilot", None], FINAL_TAGGED, True),
], ids=["tagged", "untagged", "mixed"])
def test_the_study_view_selects_the_final_stage_runs_grouped_by_variant(tmp_path, stages, expected_filter,
                                                                        untagged_note):
    uri, tagged = staged_store(tmp_path, stages)
    view = save_study_view(uri, STUDY)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY)
    assert view.search_filter == expected_filter
    assert view.path == (f"/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
                         f"&viewStateShareKey=xablate-final-runs")
    assert view.metrics == ["test_accuracy", "loss"]  # its claims: test_accuracy, train_loss_auc (of `loss`)
    assert bool(view.notes) == untagged_note
    if untagged_note:
        assert view.notes == ["2 run(s) without a xablate.stage tag (final, to the analysis) are not listed: MLflow's "
                              "filters cannot say `tagged final OR untagged`"]
    envelope = json.loads(experiment.tags[VIEW_TAG])
    state = json.loads(envelope["state"])
    assert envelope["name"] == "xablate: final runs by variant"
    assert state["groupBy"] == {"aggregateFunction": "average",
                                "groupByKeys": [{"mode": "tag", "groupByData": "xablate.variant"}]}
    assert state["selectedColumns"][:2] == ["metrics.`test_accuracy`", "metrics.`loss`"]
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`test_accuracy`", False)
    # the filter, as the UI sends it, finds exactly the final-stage runs (untagged ones too when none is tagged)
    found = {r.info.run_id for r in client.search_runs([experiment.experiment_id], state["searchFilter"])}
    final = {r for r, s in tagged.items() if (s is None and expected_filter == UNTAGGED)
             or (s is not None and serves(s, "final"))}  # a legacy `tune,final` run is tuning only
    assert found == final and final


def test_an_unknown_study_is_refused_in_one_line_naming_the_store_s_studies(tmp_path, monkeypatch, capsys):
    uri, _ = staged_store(tmp_path, ["final"])
    log_study(uri, "spectrum", {1: [0.9]}, axis="segments")
    open_experiment(uri, "empty")  # no runs: not a study to show
    capsys.readouterr()

    def no_start(*args, **kwargs):
        raise AssertionError(f"started {args}")

    monkeypatch.setattr(ui_server, "run_watched", no_start)
    assert main(["ui", "--uri", uri, "--port", str(free_port()), "--study", "fig10"]) == 2
    assert capsys.readouterr() == ("", "xablate: Received --study='fig10', which has no runs in this store; "
                                       f"allowed: {STUDY}, spectrum.\n")
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["ui", "--uri", missing, "--port", str(free_port()), "--study", STUDY]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "none.db").exists()


def test_a_store_git_tracks_is_served_from_a_copy_and_left_as_it_is(tmp_path):
    repo = tmp_path / "repo"
    (repo / "mlartifacts").mkdir(parents=True)
    uri, _ = staged_store(repo, ["final"])
    store = repo / "mlflow.db"
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", "mlflow.db")
    before = store.read_bytes()
    with served_store(uri) as (served, committed):
        assert committed == store and served != uri
        client = MlflowClient(served)
        experiment = client.get_experiment_by_name(STUDY)
        client.set_experiment_tag(experiment.experiment_id, "edited", "yes")  # as the UI would
        assert experiment.artifact_location == (repo / "mlartifacts" / STUDY).resolve().as_uri()
        copy = Path(served[len("sqlite:///"):])
    assert store.read_bytes() == before and not copy.exists()  # the copy goes with the server
    untracked = f"sqlite:///{tmp_path / 'other.db'}"
    sqlite3.connect(tmp_path / "other.db").close()
    with served_store(untracked) as (served, committed):
        assert (served, committed) == (untracked, None)  # served live: its UI follows the runs as they come
    assert re.fullmatch(r"xablate-ui-\w+", copy.parent.name)
