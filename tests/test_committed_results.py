"""The committed CPU reproduction: results/ is what `xablate figures` draws from results/store (nothing stale), and
`xablate status` sees every cell of its studies as done (the store carries identities of today's configs)."""

import os
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # starts run.py or trains for many seconds: the full suite's tier

XABLATE = os.path.join(os.path.dirname(sys.executable), "xablate")
STORE = f"sqlite:///{ROOT / 'results' / 'store' / 'mlflow.db'}"


def test_committed_figures_and_tables_are_not_stale():
    check = subprocess.run([XABLATE, "figures", "--check", "--out", str(ROOT / "results")], capture_output=True,
                           text=True, timeout=600, cwd=ROOT)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 stale output(s)" in check.stdout
    for study in ("fig9_residual", "fig10_intermediate_act", "fig10_tuned", "spectrum", "spectrum_matched"):
        for name in (f"{study}.png", "capacity.png", "table.csv", "table.md", "table.json"):
            assert (ROOT / "results" / study / name).exists(), name
    verdict = (ROOT / "results" / "verdict.md").read_text()
    for study in ("fig9_residual", "fig10_intermediate_act", "fig10_tuned", "spectrum", "spectrum_matched"):
        assert f"| {study} |" in verdict, study
    # the tuned study: every grid value of every variant in its sensitivity data, one seed each (so no SE), its
    # costs in the table note, and each variant's setting in the verdict
    import pandas as pd

    sensitivity = pd.read_csv(ROOT / "results" / "fig10_tuned" / "sensitivity.csv")
    assert len(sensitivity) == 9 and set(sensitivity["optim.learning_rate"]) == {3e-4, 1e-3, 3e-3}
    assert (sensitivity["n"] == 1).all() and (ROOT / "results" / "fig10_tuned" / "sensitivity.png").exists()
    table = (ROOT / "results" / "fig10_tuned" / "table.md").read_text()
    assert "| one seed: no SE |" in table and "Cost per stage: pilot 3 runs, 15 epochs" in table
    assert "tune 9 runs, 63 epochs" in table and "final 30 runs, 600 epochs" in table
    assert "intermediate_act=none at lr 0.003 vs intermediate_act=relu at lr 0.003 (the same tuned setting)" in verdict


# the spectra were committed at 5 (matched) and 3 (unmatched) seeds per point; their study files sweep 10
@pytest.mark.parametrize("studies, extra", [(["fig9_residual", "fig10_intermediate_act", "fig10_tuned"], []),
                                            (["spectrum_matched"], ["seed=range(5)"]),
                                            (["spectrum"], ["seed=range(3)"])])
def test_status_sees_the_committed_reproduction_as_done(studies, extra):
    flags = [a for s in studies for a in ("--study", s)]
    status = subprocess.run([XABLATE, "status", *flags, "design=cpu_repro", "train.save_model=false", *extra,
                             f"tracking.uri={STORE}"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("missing: 0") == len(studies) and "nothing left to run" in status.stdout


def test_a_copy_of_the_committed_store_at_another_path_serves_its_artifacts(tmp_path):
    """As on a clone elsewhere: the store's recorded artifact locations point into the original checkout, and
    `xablate ui` serves the artifacts that sit beside the copy."""
    import shutil

    from mlflow import MlflowClient

    from helpers import ServedUI, http_get

    copy = tmp_path / "elsewhere" / "store"
    shutil.copytree(ROOT / "results" / "store", copy)
    uri = f"sqlite:///{copy / 'mlflow.db'}"
    client = MlflowClient(uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "fig9_residual"]
    [run] = client.search_runs([experiment.experiment_id], filter_string="tags.`xablate.variant` = 'residual=False'",
                               max_results=1)[:1] or [None]
    assert run is not None
    ui = ServedUI(uri)
    try:
        status, body = http_get(f"{ui.base}/get-artifact?path=config.yaml&run_uuid={run.info.run_id}")
    finally:
        ui.stop()
    assert status == 200 and b"residual: false" in body
    assert MlflowClient(uri).get_run(run.info.run_id).info.artifact_uri.startswith((copy / "mlartifacts").as_uri())


FASHION = ("fashion_fig9", "fashion_fig10", "fashion_spectrum_matched")  # round 1
ROUND_2 = {"fashion_fig9": "fashion_fig9_r2", "fashion_fig10": "fashion_fig10_r2",
           "fashion_spectrum_matched": "fashion_spectrum_matched_r2"}  # each supersedes its round-1 study
DECIDED = (*FASHION, *ROUND_2.values())  # each decided, or run to its last look


def _headline_studies() -> set[str]:
    headline = (ROOT / "results" / "headline.md").read_text()
    return {line.split("|")[1].strip().split(" (")[0] for line in headline.splitlines()
            if line.startswith("| ") and not line.startswith("| study")}


def test_the_headline_is_the_pre_registered_fashion_mnist_reproduction():
    """Issue 25's bar, and round 2's: each Fashion-MNIST study's claims pre-registered, decided or run to the last
    look with at least 10 seeds, its baseline off the ceiling, its runs on fashion_mnist; the headline holds, of
    each round-1 study and its round-2 successor, the successor once it has read its claims, else round 1."""
    import pandas as pd

    from xablate.analysis.store import runs_frame

    comparisons = pd.read_csv(ROOT / "results" / "verdict.csv")
    shown = _headline_studies()
    assert shown <= {*FASHION, *ROUND_2.values()}
    read = {new for new in ROUND_2.values()  # a round-2 study past its first look
            if ((comparisons["study"] == new) & (comparisons["look_number"] >= 1)).any()}
    for old, new in ROUND_2.items():
        assert (old in shown) == (new not in read), (old, new, shown)  # round 1 stands until round 2 has read
        assert new in shown or new not in read
    for study in sorted({*DECIDED, *(shown & {*FASHION, *read})}):
        rows = comparisons[comparisons["study"] == study]
        assert len(rows) >= 2 and rows["registration"].str.startswith("pre-registered (").all(), study
        assert (rows["look_number"] >= 1).all() and (rows["n"] >= 10).all(), study
        if study in DECIDED:
            assert rows["next_look_n"].isna().all(), (study, rows["look"].tolist())
        table = pd.read_csv(ROOT / "results" / study / "table.csv")
        assert table["mean"].iloc[0] <= 0.93 and table["seeds"].min() >= 10, study  # the baseline's row first
        assert (ROOT / "results" / study / "capacity.png").exists() and (ROOT / "results" / study / "claims.png").exists()
        runs = runs_frame(STORE, study=study)
        finished = runs[runs["status"] == "FINISHED"]
        assert len(finished) >= 20 and {p.get("data.source") for p in finished["params"]} == {"fashion_mnist"}, study


def test_round_2_accuracy_intervals_resample_the_test_images():
    """Round 2 keeps every final run's per-image predictions: its accuracy comparisons carry the two-level
    (seeds x test images) bootstrap and P(improvement); round 1's say what they lacked."""
    import pandas as pd

    comparisons = pd.read_csv(ROOT / "results" / "verdict.csv")
    accuracy = comparisons[comparisons["metric"] == "test_accuracy"]
    for study in [s for s in DECIDED if s in ROUND_2.values()]:
        rows = accuracy[accuracy["study"] == study]
        assert len(rows) and rows[["boot_low", "boot_high"]].notna().all().all(), study
        assert rows["p_improvement"].between(0, 1).all(), study


def test_status_sees_the_fashion_mnist_studies_as_decided():
    """Each study composes its own data and design (its experiment file), so status needs no design override; a
    sequential study is done at the look that decided it."""
    flags = [a for s in DECIDED for a in ("--study", s)]
    status = subprocess.run([XABLATE, "status", *flags, "train.save_model=false", f"tracking.uri={STORE}"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("missing: 0") == len(DECIDED) and "nothing left to run" in status.stdout


def test_the_committed_store_records_no_absolute_path():
    """Params, tags and every run's config.yaml hold paths relative to the project (xablate.paths.portable), so
    the committed store shows no machine's layout (MLflow's own artifact locations are rewritten on open)."""
    import re
    import sqlite3

    absolute = re.compile(r"(^|[ =\"'])/[A-Za-z]|sqlite\\?:////")
    db = sqlite3.connect(ROOT / "results" / "store" / "mlflow.db")
    for table in ("params", "tags"):
        found = [(k, v) for k, v in db.execute(f"SELECT key, value FROM {table}") if absolute.search(str(v))]
        assert found == [], (table, found[:3])
    configs = list((ROOT / "results" / "store" / "mlartifacts").glob("*/*/artifacts/config.yaml"))
    assert len(configs) >= 300
    uris = {line.strip() for path in configs for line in path.read_text().splitlines()
            if line.strip().startswith("uri:")}
    # the store as a command named it (round 1) or as the fashion study files name it (round 2): relative both
    assert uris <= {"uri: sqlite:///results/store/mlflow.db", "uri: results/store/mlflow.db"}, uris
    tracebacks = list((ROOT / "results" / "store" / "mlartifacts").glob("*/*/artifacts/traceback.txt"))
    assert len(tracebacks) >= 5
    frames = [line for path in tracebacks for line in path.read_text().splitlines() if 'File "/' in line]
    assert frames == []  # each frame relative to the project or to its library (xablate.paths.portable_traceback)


def test_a_bare_status_reads_each_fashion_study_in_the_committed_store():
    """The fashion study files name the committed store (tracking.uri), so `xablate status` with no argument
    checks them there: each round-2 study decided (or at its last look) is done; one still running is shown there
    with its command; with MLFLOW_TRACKING_URI set, the user's store wins."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    status = subprocess.run([XABLATE, "status"], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    committed = f"sqlite:///{ROOT / 'results' / 'store' / 'mlflow.db'}"
    for study in (*FASHION, *ROUND_2.values()):
        assert (f"study {study!r} in {committed}: " in status.stdout
                or f"study {study!r}: not started in {committed} " in status.stdout), (study, status.stdout[-3000:])
    for study in DECIDED:
        block = status.stdout.split(f"study {study!r} in {committed}: ", 1)[1].split("\nstudy ", 1)[0]
        assert "missing: 0" in block and "nothing left to run" in block, (study, block)
    fig10 = status.stdout.split(f"study 'fashion_fig10_r2' in {committed}: ", 1)[1]
    assert "sequential: undecided at its last look (n=20; looks 10, 15, 20)" in fig10  # done, one claim open
    assert f"study 'fig9_residual': not started in sqlite:///{ROOT / 'mlflow.db'}" in status.stdout or \
        f"study 'fig9_residual' in sqlite:///{ROOT / 'mlflow.db'}" in status.stdout  # no store named: the project's
    elsewhere = subprocess.run([XABLATE, "status"], capture_output=True, text=True, timeout=600, cwd=ROOT,
                               env={**env, "MLFLOW_TRACKING_URI": "sqlite:////nonexistent-xablate/mlflow.db"})
    assert "study 'fashion_fig10_r2': not started in sqlite:////nonexistent-xablate/mlflow.db" in elsewhere.stdout
