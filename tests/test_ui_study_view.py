"""`xablate ui` in a real browser (Debian's Chromium driven by Playwright): a click on a study in the experiments
list opens its runs table, not MLflow 3's GenAI overview; `xablate ui --study S` prints the page of S's final-stage
runs grouped by variant with its claimed metric as a column; and serving the committed store leaves its file as
committed, whatever is done in the UI. Screenshots: /tmp/ui-shots/."""

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient
from playwright.sync_api import sync_playwright

from helpers import ROOT, ServedUI, browser
from made_up_store import log_study
from xablate.staging import serves
from xablate.tracking.store import open_experiment

pytestmark = pytest.mark.slow  # starts the MLflow server and a browser: the full suite's tier

SHOTS = Path("/tmp/ui-shots")
STUDY = "fig10_intermediate_act"  # declared: claims on test_accuracy and train_loss_auc (its `loss` curve)
# seed i's stage: two final-stage runs per variant (a legacy `tune,final` run counts as tuning only)
STAGES = ["final", "pilot,final", "tune,final", "tune"]
COMMITTED = ROOT / "results" / "store" / "mlflow.db"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A made-up store of two studies; STUDY's runs at every stage: {run id: stage}."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'mlflow.db'}"
    client, _ = open_experiment(uri, STUDY)
    ids = log_study(uri, STUDY, {"none": [0.95, 0.96, 0.5, 0.6], "elu": [0.92, 0.93, 0.5, 0.6],
                                 "relu": [0.90, 0.91, 0.5, 0.6]})
    stages = {}
    for runs in ids.values():
        for seed, run_id in enumerate(runs):
            client.set_tag(run_id, "xablate.stage", STAGES[seed])
            stages[run_id] = STAGES[seed]
    open_experiment(uri, "spectrum")
    log_study(uri, "spectrum", {1: [0.9], 4: [0.91]}, axis="segments")
    return uri, stages


@pytest.fixture(scope="module")
def ui(store):
    served = ServedUI(store[0], args=("--study", STUDY, "--no-browser"))
    yield served
    served.stop()


def run_ids_shown(page) -> set[str]:
    """The runs the runs table lists (their links), by id."""
    hrefs = page.locator("a[href*='/runs/']").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    return {m.group(1) for h in hrefs for m in [re.search(r"/runs/([0-9a-f]{32})", h or "")] if m}


def test_a_click_on_a_study_in_the_experiments_list_opens_its_runs_table(store, ui):
    SHOTS.mkdir(exist_ok=True)
    experiment_id = MlflowClient(store[0]).get_experiment_by_name(STUDY).experiment_id
    with sync_playwright() as playwright:
        chromium = browser(playwright)
        page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()  # a browser never used here
        try:
            page.goto(f"{ui.base}/")
            page.get_by_role("link", name="Experiments", exact=True).first.click()
            page.get_by_role("link", name=STUDY, exact=True).first.wait_for(timeout=90_000)
            page.screenshot(path=SHOTS / "experiments-list.png")
            page.get_by_role("link", name=STUDY, exact=True).first.click()
            page.get_by_text(f"{STUDY}: sweep", exact=True).first.wait_for(timeout=60_000)  # the sweep's row
            page.screenshot(path=SHOTS / "click-opens-runs.png")
            assert re.search(rf"#/experiments/{experiment_id}/runs\b", page.url), page.url
            assert page.get_by_text("Runs", exact=True).first.is_visible()
            for genai in ("Usage", "Tool calls", "Detect Issues"):  # the GenAI overview's tabs and button
                assert page.get_by_text(genai, exact=True).count() == 0, genai
        finally:
            chromium.close()


def test_the_study_page_lists_its_final_stage_runs_grouped_by_variant(store, ui):
    uri, stages = store
    SHOTS.mkdir(exist_ok=True)
    experiment_id = MlflowClient(uri).get_experiment_by_name(STUDY).experiment_id
    [url] = re.findall(rf"{re.escape(ui.base)}/#/experiments/{experiment_id}/runs\?\S+", ui.output())
    assert "viewStateShareKey=" in url and "workflowType=machine_learning" in url
    assert "grouped by xablate.variant, test_accuracy, loss as columns" in ui.output()
    final = {run_id for run_id, stage in stages.items() if serves(stage, "final")}
    with sync_playwright() as playwright:
        chromium = browser(playwright)
        page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()
        try:
            page.goto(url)
            page.get_by_text("6 matching runs").wait_for(timeout=90_000)
            page.get_by_text(re.compile(r"^Group: intermediate_act=relu")).first.wait_for(timeout=30_000)
            page.screenshot(path=SHOTS / "study-final-runs-by-variant.png")
            assert run_ids_shown(page) == final  # the tuning runs (tune,final too) and the other study's left out
            assert page.get_by_text(re.compile(r"^Group: intermediate_act=")).count() == 3
            assert page.get_by_text("Group by: xablate.variant").count() == 1
            assert page.get_by_role("columnheader", name="test_accuracy", exact=True).count() >= 1
            assert page.get_by_text("0.955 (average)").count() == 1  # none: mean of its two final runs
        finally:
            chromium.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_status(path: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--", str(path.parent)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60).stdout


def test_serving_the_committed_store_leaves_its_file_as_committed(tmp_path):
    assert subprocess.run(["git", "ls-files", "--error-unmatch", str(COMMITTED)], cwd=ROOT,
                          capture_output=True).returncode == 0, "the store is not committed here"
    SHOTS.mkdir(exist_ok=True)
    before, status = sha256(COMMITTED), git_status(COMMITTED)
    uri = f"sqlite:///{COMMITTED}"
    served = ServedUI(uri, args=("--study", STUDY, "--no-browser"), log_dir=tmp_path)
    try:
        assert f"xablate: serving a copy of {COMMITTED}" in served.output()
        [url] = re.findall(rf"{re.escape(served.base)}/#/experiments/\d+/runs\?\S+", served.output())
        experiment = served.api("experiments/get-by-name", experiment_name=STUDY)["experiment"]
        # an edit made through the UI's own API lands in what is served, not in the committed file
        served.api("experiments/set-experiment-tag", {"experiment_id": experiment["experiment_id"],
                                                      "key": "edited.in.the.ui", "value": "yes"})
        tags = {t["key"] for t in served.api("experiments/get", experiment_id=experiment["experiment_id"])
                ["experiment"]["tags"]}
        assert {"edited.in.the.ui", "mlflow.sharedViewState.xablate-final-runs"} <= tags
        with sync_playwright() as playwright:
            chromium = browser(playwright)
            page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()
            try:
                page.goto(f"{served.base}/#/experiments")
                page.get_by_role("link", name=STUDY, exact=True).first.click()
                page.get_by_text("Group by", exact=False).first.wait_for(timeout=90_000)
                page.goto(url)
                page.get_by_text(re.compile(r"^Group: intermediate_act=")).first.wait_for(timeout=90_000)
                page.screenshot(path=SHOTS / "committed-store-study-page.png")
                artifacts = served.api("artifacts/list", run_id=served.api(
                    "runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 1,
                                    "filter": "tags.`xablate.variant` != ''"})["runs"][0]["info"]["run_id"])
                assert "config.yaml" in {f["path"] for f in artifacts.get("files", [])}  # the committed artifacts
            finally:
                chromium.close()
    finally:
        served.stop()
    assert sha256(COMMITTED) == before
    assert git_status(COMMITTED) == status
    assert not (COMMITTED.parent / f"ui-{served.port}.log").exists()
