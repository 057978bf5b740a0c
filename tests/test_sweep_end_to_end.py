"""`python run.py -m intermediate_act=relu,elu,none` (under the debug config) leaves one parent run with three
FINISHED children in one experiment, with params, per-epoch metrics, dataset inputs, system metrics and artifacts;
`xablate ui` then shows them to a researcher in a real browser (Debian's Chromium driven by Playwright)."""

import json

import pytest
import yaml
from mlflow import MlflowClient
from playwright.sync_api import sync_playwright

from helpers import ServedUI, browser, run_py, runs_of, sqlite_uri
from xablate.tracking.store import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND

pytestmark = pytest.mark.slow  # starts run.py or trains for many seconds: the full suite's tier

EPOCH_METRICS = {"loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy",
                 "learning_rate", "epoch_seconds", "images_per_second"}
TEST_METRICS = {"test_accuracy", "test_loss", "test_top5_accuracy"}
ARTIFACTS = {"config.yaml", "curves.png", "history.csv", "model.keras", "model_summary.json", "model_summary.txt",
             "predictions.npz"}


@pytest.fixture(scope="module")
def fig10(tmp_path_factory):
    """The Fig. 10 command as typed, under the debug config, with system metrics sampled every second."""
    folder = tmp_path_factory.mktemp("fig10")
    uri = sqlite_uri(folder)
    proc = run_py("-m", "intermediate_act=relu,elu,none", "debug=default", f"tracking.uri={uri}",
                  "tracking.system_metrics=true", "tracking.system_metrics_seconds=1", cwd=folder)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return uri, proc


@pytest.fixture(scope="module")
def ui(fig10):
    served = ServedUI(fig10[0])
    yield served
    served.stop()


def test_fig10_command_as_typed_gives_a_parent_and_three_finished_children(fig10, tmp_path):
    uri, proc = fig10

    [parent] = runs_of(uri, "default", role="sweep")
    children = runs_of(uri, "default", role="job")
    assert parent.info.status == "FINISHED"
    assert len(children) == 3
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert [c.info.status for c in children] == ["FINISHED"] * 3
    assert [c.data.params["intermediate_act"] for c in children] == ["relu", "elu", "none"]

    # params differ in intermediate_act only
    first = children[0].data.params
    for child in children[1:]:
        differing = {k for k in set(first) | set(child.data.params) if first.get(k) != child.data.params.get(k)}
        assert differing == {"intermediate_act", "builder.intermediate_act"}
    assert parent.info.run_name == "default: act" and parent.data.tags["xablate.sweep_keys"] == "intermediate_act"
    assert int(first["model.total_params"]) > 0 and first["segments.block2_sepconv1"] == "8"
    assert first["train.epochs"] == "2" and first["data.source"] == "digits"

    client = MlflowClient(uri)
    for child in children:
        assert EPOCH_METRICS <= set(child.data.metrics)
        for key in EPOCH_METRICS:
            history = client.get_metric_history(child.info.run_id, key)
            assert sorted(m.step for m in history) == [0, 1], key
        assert child.data.metrics["epochs_completed"] == 2
        assert child.data.metrics["best_val_accuracy"] == max(
            m.value for m in client.get_metric_history(child.info.run_id, "val_accuracy"))
        # and the checkout's changes (source/changes.diff) when it has any (xablate.tracking.provenance)
        edited = {"source"} if child.data.tags.get("xablate.source.clean") == "false" else set()
        assert {a.path for a in client.list_artifacts(child.info.run_id)} == ARTIFACTS | edited
        # the config.yaml artifact records the tracking URI as the params do: no path of this machine
        path = client.download_artifacts(child.info.run_id, "config.yaml", str(tmp_path / child.info.run_id))
        config = yaml.safe_load(open(path).read())
        assert config["tracking"]["uri"] == child.data.params["tracking.uri"] == "sqlite:///.../mlflow.db"
        assert TEST_METRICS <= set(child.data.metrics)  # the reported number: final weights on the test split
        assert [m.step for m in client.get_metric_history(child.info.run_id, "test_accuracy")] == [1]
        assert int(child.data.params["data.test_size"]) == 64 and child.data.params["train.steps_per_epoch"] == "2"
        tags = child.data.tags
        act = tags["xablate.intermediate_act"]
        assert tags["xablate.variant"] == f"intermediate_act={act}"  # only what the sweep varies
        assert json.loads(tags["xablate.axes"]) == {"intermediate_act": act}
        assert child.info.run_name == f"act={act} · seed 0"
        assert tags["xablate.backend"] == "tensorflow" and tags["xablate.device"] == "CPU"
        assert "intermediate_act=" in tags["xablate.overrides"]
        assert len(tags.get("mlflow.source.git.commit", "")) in (0, 40)
        assert len(tags["xablate.data_digest"]) == 16

    # TensorFlow's native start-up lines (cuInit on a machine without a GPU) are filtered; Keras' and ours stay
    assert "cuInit" not in proc.stderr and "absl::InitializeLog" not in proc.stderr, proc.stderr[-3000:]

    # the end-of-sweep summary: one line per variant, by run name
    lines = [l for l in proc.stdout.splitlines() if l.startswith("act=")]
    assert [l.split(" FINISHED")[0].strip() for l in lines] == [c.info.run_name for c in children]
    assert all(" FINISHED " in l for l in lines)

    # the study's conclusion on the parent (xablate.tracking.parent_summary): per variant, mean and interval of
    # its reported metric, the table and the figures as artifacts
    parent = client.get_run(parent.info.run_id)
    assert {f"test_accuracy.intermediate_act_{act}.mean" for act in ("relu", "elu", "none")} <= set(parent.data.metrics)
    summary = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/variants.csv", "summary/variants.md", "summary/figures"} <= summary
    assert f"the study's summary (per-variant means and intervals, verdict, figures) is on the sweep's parent run " \
           f"{parent.info.run_id}" in proc.stdout


def test_single_run_is_a_plain_run_and_prints_its_id(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = run_py("debug=default", "segments=4", f"tracking.uri={uri}", "study=single", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [run] = runs_of(uri, "single")
    assert run.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in run.data.tags
    assert f"[xablate] MLflow run {run.info.run_id}" in proc.stdout
    assert run.data.params["segments.block4_sepconv1"] == "4"


def test_a_job_that_cannot_run_stops_the_sweep_before_its_parent_run(tmp_path):
    uri = sqlite_uri(tmp_path)
    # exact rounding: k=4 divides every debug layer (8, 8, 16, 48, 64, 96 channels), k=16 does not; the sweep
    # validates every value's job first, so k=4 does not train either (errors during training: test_failures.py)
    proc = run_py("-m", "segments=16,4", "model.segment_rounding=exact", "debug=default", "train.epochs=1",
                  f"tracking.uri={uri}", cwd=tmp_path)
    assert proc.returncode == 2
    assert ("xablate: Received segments=16, which does not divide the 8 input channels of layer block2_sepconv1"
            in proc.stderr) and "(the sweep's job segments=16)" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # no parent run, no store


def test_the_ui_api_shows_training_experiments_datasets_and_system_metrics(fig10, ui):
    uri, _ = fig10
    experiment = ui.api("experiments/get-by-name", experiment_name="default")["experiment"]
    assert {t["key"]: t["value"] for t in experiment["tags"]}[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    found = ui.api("runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 100})["runs"]
    children = [r for r in found if "mlflow.parentRunId" in {t["key"] for t in r["data"]["tags"]}]
    names = sorted(r["info"]["run_name"] for r in children)
    assert names == ["act=elu · seed 0", "act=none · seed 0", "act=relu · seed 0"]  # short, distinct
    digests = set()
    for run in children:
        inputs = run["inputs"]["dataset_inputs"]
        contexts = {i["tags"][0]["value"]: i["dataset"] for i in inputs if i.get("tags")}
        assert set(contexts) == {"train", "validation", "test"}
        assert {d["name"] for d in contexts.values()} == {"digits/train", "digits/validation", "digits/test"}
        assert json.loads(contexts["test"]["profile"]) == {"num_rows": 64}
        assert all(len(d["digest"]) == 16 for d in contexts.values())
        digests.add(tuple(sorted(d["digest"] for d in contexts.values())))
        system = {m["key"] for m in run["data"]["metrics"] if m["key"].startswith("system/")}
        assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system
    assert len(digests) == 1  # same data for every variant: one dataset per split


def test_a_researcher_sees_the_sweep_its_curves_and_artifacts_in_a_browser(fig10, ui, tmp_path):
    uri, _ = fig10
    experiment = ui.api("experiments/get-by-name", experiment_name="default")["experiment"]["experiment_id"]
    relu = next(r for r in runs_of(uri, "default", role="job") if r.info.run_name.startswith("act=relu"))
    with sync_playwright() as playwright:
        chromium = browser(playwright)
        page = chromium.new_page(viewport={"width": 1400, "height": 900})
        try:
            # the runs table (not the GenAI overview), the sweep as one row; expanded, its children by name
            page.goto(f"{ui.base}/#/experiments/{experiment}/runs?workflowType=machine_learning")
            page.get_by_text("default: act").wait_for(timeout=90_000)
            assert page.get_by_text("Traces", exact=True).count() <= 1  # no GenAI side navigation
            page.get_by_text("default: act").locator("xpath=ancestor::div[@role='gridcell'][1]//button").click()
            for name in ("act=relu · seed 0", "act=elu · seed 0", "act=none · seed 0"):
                page.get_by_text(name, exact=True).wait_for(timeout=30_000)
            page.screenshot(path=tmp_path / "runs.png")
            # the chart view plots the children's validation accuracy (charts draw as they scroll in: search)
            page.goto(f"{ui.base}/#/experiments/{experiment}/runs?workflowType=machine_learning&compareRunsMode=CHART")
            page.get_by_placeholder("Search metric charts").fill("val_accuracy")
            for name in ("act=relu · seed 0", "act=elu · seed 0", "act=none · seed 0"):
                page.get_by_text(f"{name} (val_accuracy)", exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=tmp_path / "charts.png")
            # a child's artifacts list its config
            page.goto(f"{ui.base}/#/experiments/{experiment}/runs/{relu.info.run_id}/artifacts?workflowType=machine_learning")
            page.get_by_text("config.yaml", exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=tmp_path / "artifacts.png")
        finally:
            chromium.close()
    assert all((tmp_path / f).stat().st_size > 10_000 for f in ("runs.png", "charts.png", "artifacts.png"))


def test_a_sweep_typed_again_skips_every_job_and_keeps_no_empty_parent(fig10, tmp_path):
    uri, _ = fig10
    before = [p.info.run_id for p in runs_of(uri, "default", role="sweep")]
    again = run_py("-m", "intermediate_act=relu,elu,none", "debug=default", f"tracking.uri={uri}", cwd=tmp_path,
                   timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipping") == 3 and "every job of this sweep was already in the store (3 skipped)" \
        in again.stdout
    assert [p.info.run_id for p in runs_of(uri, "default", role="sweep")] == before  # the new parent removed
    assert len(runs_of(uri, "default", role="job")) == 3
