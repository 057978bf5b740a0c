"""xablate.analysis on a real store made by debug sweeps: axes found from what each sweep varied (including a
key the analysis has never heard of), figures chosen by the axes, tables, `xablate figures` for every study,
one study or one sweep, stale outputs, and the one parametrised notebook (as a script and in a Jupyter kernel)."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from helpers import ROOT, run_py, sqlite_uri
from xablate.analysis import history_frame, runs_frame, select_runs, selected_runs, study_figures, variant_table
from xablate.analysis.figures import curve_statistics
from xablate.analysis.report import regenerate, stale_outputs
from xablate.analysis.stats import mean_ci
from xablate.analysis.store import RUN_COLUMNS, studies_in_store
from xablate.analysis.verdicts import verdict_tables
from xablate.studies import Study

pytestmark = pytest.mark.slow  # starts run.py or trains for many seconds: the full suite's tier

XABLATE = os.path.join(os.path.dirname(sys.executable), "xablate")
SWEEPS = [  # (study, its sweep): a paper axis, the spectrum's ordered axis, and two axes one of them new
    ("default", ["intermediate_act=none,relu", "seed=0,1"]),
    ("spectrum", ["experiment=spectrum", "segments=2,4,depthwise", "seed=0"]),
    ("lr", ["study=lr", "optim.learning_rate=0.001,0.01", "residual=true,false", "seed=0"]),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analysis")
    uri = sqlite_uri(tmp)
    for _, sweep in SWEEPS:
        proc = run_py("-m", *sweep, "debug=default", "train.save_model=false", f"tracking.uri={uri}", cwd=tmp)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return uri, tmp


def test_runs_frame_rows_and_columns(store):
    uri, _ = store
    runs = runs_frame(uri, study="default")
    assert list(runs.columns) == RUN_COLUMNS and len(runs) == 4
    assert (runs["status"] == "FINISHED").all() and (runs["epochs"] == 2).all()
    assert runs["swept"].tolist() == [{"intermediate_act": "none"}] * 2 + [{"intermediate_act": "relu"}] * 2
    assert runs["test_accuracy"].between(0, 1).all() and runs["test_loss"].notna().all()
    assert runs["run_name"].tolist() == ["act=none · seed 0", "act=none · seed 1", "act=relu · seed 0",
                                         "act=relu · seed 1"]
    assert len(runs_frame(uri)) == 4 + 3 + 4
    assert studies_in_store(uri) == ["default", "lr", "spectrum"]
    assert len(runs_frame(uri, sweep=runs["sweep"].iloc[0])) == 4


@pytest.mark.parametrize("study, axes, variants", [
    ("default", ["intermediate_act"], ["intermediate_act=none", "intermediate_act=relu"]),
    ("spectrum", ["segments"], ["segments=depthwise", "segments=2", "segments=4"]),
    ("lr", ["optim.learning_rate", "residual"], [  # baseline: the default config's values (0.001, True)
        "optim.learning_rate=0.001,residual=True", "optim.learning_rate=0.001,residual=False",
        "optim.learning_rate=0.01,residual=True", "optim.learning_rate=0.01,residual=False"]),
])
def test_axes_are_what_the_sweep_varied(store, study, axes, variants):
    uri, _ = store
    selection = selected_runs(uri, study)
    assert selection.axes == axes
    assert selection.variants == variants
    assert selection.baseline_label == variants[0]
    assert selection.metric == "test_accuracy"
    assert selection.runs.groupby("variant").size().to_dict() == {
        v: (2 if study == "default" else 1) for v in variants}


def test_a_smoke_run_with_other_settings_does_not_mix_in(store):
    runs = runs_frame(store[0], study="default")
    smoke = runs.iloc[:1].assign(run_id="smoke", start_time=pd.Timestamp.now(),
                                 params=[{**runs["params"].iloc[0], "train.epochs": "1"}])
    selection = select_runs(pd.concat([runs, smoke], ignore_index=True), Study("default", "default"))
    assert "smoke" not in set(selection.runs["run_id"]) and len(selection.runs) == 4


def test_history_has_steps_and_matches_the_final_metrics(store):
    uri, _ = store
    selection = selected_runs(uri, "default")
    history = history_frame(uri, selection.runs, axes=selection.axes)
    assert len(history) == 4 * 2 * 4  # runs x epochs x (loss, accuracy, val_loss, val_accuracy)
    steps = int(selection.runs["steps_per_epoch"].iloc[0])
    assert steps == 2 and sorted(history["step"].unique()) == [2, 4]  # 128 images / batch 64, 2 epochs
    last = history[(history["metric"] == "val_accuracy") & (history["epoch"] == 1)].set_index("run_id")["value"]
    assert dict(last) == pytest.approx(dict(selection.runs.set_index("run_id")["final_val_accuracy"]))


def test_categorical_axis_gets_curves_with_each_seed_and_a_bounded_band(store):
    uri, _ = store
    selection = selected_runs(uri, "default")
    history = history_frame(uri, selection.runs, axes=selection.axes)
    figures = study_figures(selection, history)
    assert list(figures) == ["default", "capacity"]
    val_panel, loss_panel = figures["default"].axes[:2]
    assert val_panel.get_xlabel() == "training steps (optimizer updates)"
    assert "validation accuracy" in val_panel.get_ylabel() and "training loss" in loss_panel.get_ylabel()
    lines = val_panel.get_lines()
    assert len(lines) == 2 * (2 + 1)  # per variant: one thin line per seed, then the mean
    for i, variant in enumerate(selection.variants):
        part = history[(history["metric"] == "val_accuracy") & (history["variant"] == variant)]
        mean_line = lines[i * 3 + 2]
        np.testing.assert_allclose(mean_line.get_xdata(), [2, 4])
        np.testing.assert_allclose(mean_line.get_ydata(), part.groupby("epoch")["value"].mean())
        assert mean_line.get_label() == f"{variant} (n=2)"
    stats = curve_statistics(history, "val_accuracy")
    assert (stats["low"].dropna() >= 0).all() and (stats["high"].dropna() <= 1).all()
    band = val_panel.collections[0].get_paths()[0].vertices
    first = history[(history["metric"] == "val_accuracy") & (history["variant"] == selection.variants[0])
                    & (history["epoch"] == 0)]["value"]
    ci = mean_ci(first.tolist(), bounds=(0, 1))
    if not math.isnan(ci.low):
        assert band[:, 1].min() == pytest.approx(min(ci.low, band[:, 1].min())) and band[:, 1].max() <= 1


def test_ordered_axis_gets_a_trend_against_effective_segments(store):
    uri, _ = store
    selection = selected_runs(uri, "spectrum")
    figures = study_figures(selection, history_frame(uri, selection.runs, axes=selection.axes))
    assert list(figures) == ["spectrum", "curves", "capacity", "claims"]
    # the claims figure: each comparison's difference (variant − baseline, as verdict.csv), its CI and the claim's
    # margin, on the worse side for non-inferiority, and the legend says "dashed" only where one is drawn
    (forest,) = figures["claims"].axes
    comparisons = verdict_tables([(dataclasses.replace(selection), history_frame(uri, selection.runs,
                                                                                   axes=selection.axes))])[1]
    drawn = [c.lines[0].get_xdata()[0] for c in forest.containers]
    assert drawn == pytest.approx(list(comparisons["delta"]))
    margins = [line.get_xdata()[0] for line in forest.get_lines() if line.get_linestyle() == "--"]
    assert margins == pytest.approx([-m for m in comparisons["margin"].dropna()])  # accuracy: higher is better
    assert "variant − baseline (higher is better)" in forest.get_xlabel() and "dashed" in forest.get_xlabel()
    top, _, bottom = figures["spectrum"].axes  # the values, their paired differences, the model sizes
    xs = top.containers[0].lines[0].get_xdata()
    assert list(xs) == sorted(xs)  # numeric order: 2, 4, depthwise
    labels = [t.get_text().split("\n")[0] for t in bottom.get_xticklabels()]
    assert labels == ["2", "4", "depthwise"]
    effective = selection.runs.set_index("variant")["effective_segments"]
    np.testing.assert_allclose(np.asarray(xs, float), np.asarray(
        [effective["segments=2"], effective["segments=4"], effective["segments=depthwise"]], float))
    means = selection.runs.set_index("variant")["test_accuracy"]
    np.testing.assert_allclose(top.containers[0].lines[0].get_ydata(),
                               [means["segments=2"], means["segments=4"], means["segments=depthwise"]])


def test_two_axes_get_a_heatmap_of_the_metric(store):
    uri, _ = store
    selection = selected_runs(uri, "lr")
    figures = study_figures(selection, history_frame(uri, selection.runs, axes=selection.axes))
    assert list(figures) == ["lr", "curves", "capacity"]
    panel = figures["lr"].axes[0]
    assert panel.get_ylabel() == "optim.learning_rate" and panel.get_xlabel() == "residual"
    cells = np.asarray(panel.collections[0].get_array()).reshape(2, 2)
    runs = selection.runs
    expected = [[runs[(runs["optim.learning_rate"] == lr) & (runs["residual"] == r)]["test_accuracy"].iloc[0]
                 for r in (True, False)] for lr in (0.001, 0.01)]
    np.testing.assert_allclose(cells, expected)


def test_a_heatmaps_rows_are_in_the_axis_order_not_baseline_first():
    """Three points of a size x length design whose baseline is 10,000 images: its rows read 6,000, 10,000, 15,000
    (as its columns read 4, 5, 12 epochs), not 10,000 first."""
    from xablate.analysis.figures import heatmap_figure
    from xablate.analysis.store import Selection

    points = [(10000, 5, 0.871), (6000, 12, 0.862), (15000, 4, 0.884)]
    runs = pd.DataFrame([{"variant": f"n={n},e={e}", "data.limit_train": n, "train.epochs": e, "test_accuracy": acc,
                          "status": "FINISHED", "outcome": "finished", "num_classes": 10, "total_params": 1,
                          "flops": 1, "effective_segments": math.nan} for n, e, acc in points])
    selection = Selection(Study(name="pilot", title="pilot"), runs, ["data.limit_train", "train.epochs"],
                          {"data.limit_train": 10000, "train.epochs": 5}, "test_accuracy")
    selection.variants = list(runs["variant"])
    panel = heatmap_figure(selection, "test_accuracy").axes[0]
    assert [t.get_text() for t in panel.get_yticklabels()] == ["6000", "10000", "15000"]
    assert [t.get_text() for t in panel.get_xticklabels()] == ["4", "5", "12"]  # the axis label names the key
    assert panel.get_xlabel() == "train.epochs" and panel.get_xticklabels()[0].get_rotation() == 0
    long = heatmap_figure(selection, "test_accuracy", title="a title " * 30)
    lines = long.axes[0].get_title().splitlines()
    assert len(lines) > 1 and max(map(len, lines)) <= long.get_figwidth() * 14  # wrapped to the figure's width
    cells = np.ma.filled(np.asarray(panel.collections[0].get_array()).reshape(3, 3).astype(float), np.nan)
    np.testing.assert_allclose([cells[0, 2], cells[1, 1], cells[2, 0]], [0.862, 0.871, 0.884])
    assert np.isnan(cells).sum() == 6  # the pilot's three points, not a grid


def test_status_knows_a_sweep_of_a_key_the_analysis_never_heard_of(store):
    uri, tmp = store
    args = [a for a in SWEEPS[2][1]] + ["debug=default", "train.save_model=false", f"tracking.uri={uri}"]
    done = subprocess.run([XABLATE, "status", *args], capture_output=True, text=True, timeout=300, cwd=tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done: 4  diverged: 0  running: 0  failed: 0  missing: 0" in done.stdout
    more = subprocess.run([XABLATE, "status", *args, "optim.learning_rate=0.001,0.01,0.1"], capture_output=True,
                          text=True, timeout=300, cwd=tmp)
    assert more.returncode == 1 and "missing: 2" in more.stdout


def test_table_rows_and_paired_difference_by_hand(store):
    uri, _ = store
    selection = selected_runs(uri, "default")
    table = variant_table(selection)
    assert list(table["variant"]) == ["intermediate_act=none", "intermediate_act=relu"]
    assert list(table["seeds"]) == [2, 2] and list(table["diverged"]) == [0, 0] and list(table["failed"]) == [0, 0]
    runs = selection.runs.sort_values("seed")
    base = runs[runs["intermediate_act"] == "none"]["test_accuracy"].to_numpy()
    relu = runs[runs["intermediate_act"] == "relu"]["test_accuracy"].to_numpy()
    assert table.loc[0, "mean"] == pytest.approx(base.mean())
    assert table.loc[1, "diff_mean"] == pytest.approx((relu - base).mean()) and table.loc[1, "paired"] == 2


def figures(capsys, *arguments):
    """`xablate figures …` in this process (the console script itself runs once, above): (exit code, out, err)."""
    from xablate.cli import main as xablate_main

    code = xablate_main(["figures", *arguments])
    out, err = capsys.readouterr()
    return code, out, err


def test_figures_command_draws_every_study_one_study_or_one_sweep_and_finds_stale_outputs(store, capsys):
    uri, tmp = store
    out = tmp / "results"
    proc = subprocess.run([XABLATE, "figures", "--uri", uri, "--out", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for study in ("default", "spectrum", "lr"):
        assert {f"{study}/{study}.png", f"{study}/{study}.pdf", f"{study}/table.csv", f"{study}/table.md",
                f"{study}/table.tex", f"{study}/capacity.png"} <= names
    table = pd.read_csv(out / "lr" / "table.csv")
    assert len(table) == 4 and table["variant"].iloc[0] == "optim.learning_rate=0.001,residual=True"
    sidecar = json.loads((out / "default" / "table.json").read_text())
    assert sidecar["tracking_uri"] == uri and list(sidecar["runs"].values()) == ["FINISHED"] * 4
    verdict = pd.read_csv(out / "verdict.csv")  # of these, only the spectrum declares a claim
    assert verdict["study"].tolist() == ["spectrum"]
    assert stale_outputs(uri, out) == []

    sweep = runs_frame(uri, study="lr")["sweep"].iloc[0]
    code, _, err = figures(capsys, "--uri", uri, "--out", str(out), "--sweep", sweep)
    assert code == 0 and (out / "lr" / f"sweep-{sweep[:8]}" / "lr.png").exists(), err[-2000:]
    code, _, err = figures(capsys, "--uri", uri, "--out", str(out), "--study", "nope")
    assert code == 2 and "Received --study='nope'; allowed: a study with finished runs" in err
    assert "default, lr, spectrum" in err

    # a run of the default study deleted (as from the UI): its outputs go stale; --check says so; --study default
    # regenerates them (the last test of this file to use the default study: the store is shared)
    last = runs_frame(uri, study="default").sort_values("start_time")["run_id"].iloc[-1]
    MlflowClient(uri).delete_run(last)
    stale = {p.relative_to(out).as_posix() for p, _ in stale_outputs(uri, out)}
    assert stale == {"default/default.json", "default/capacity.json", "default/table.json"}
    code, checked, _ = figures(capsys, "--uri", uri, "--out", str(out), "--check")
    assert code == 1 and "3 stale output(s)" in checked
    code, _, err = figures(capsys, "--uri", uri, "--out", str(out), "--study", "default")
    assert code == 0, err[-2000:]
    assert stale_outputs(uri, out) == [] and len(pd.read_csv(out / "default" / "table.csv")) == 2


def test_the_notebook_runs_headless_for_one_study(store):
    uri, _ = store
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "XABLATE_STUDY": "lr", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(ROOT / "notebooks" / "study.py")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "studies: ['lr']" in proc.stdout


def test_the_notebook_in_a_jupyter_kernel_shows_every_figure_once(store, tmp_path):
    """jupytext -> nbconvert --execute in a real kernel: one PNG per figure of every study, nothing else."""
    import nbformat

    uri, _ = store
    notebook = tmp_path / "study.ipynb"
    convert = subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "-o", str(notebook),
                              str(ROOT / "notebooks" / "study.py")], capture_output=True, text=True, timeout=120)
    assert convert.returncode == 0, convert.stderr
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("MPLBACKEND", None)
    run = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                          "--ExecutePreprocessor.timeout=600", str(notebook)], env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = [o for cell in nbformat.read(notebook, as_version=4).cells if cell.cell_type == "code"
               for o in cell.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    texts = [o["data"].get("text/plain", "") for o in outputs if "data" in o]
    # default: curves + capacity; spectrum: trend, curves, capacity, claims; lr: heatmap, curves, capacity
    assert len(images) == 2 + 4 + 3
    assert not any("<Figure size" in t and "image/png" not in o.get("data", {})
                   for t, o in zip(texts, [o for o in outputs if "data" in o]))


def test_losses_are_drawn_on_a_log_axis_set_by_the_means_and_legends_take_given_names():
    from xablate.analysis.figures import curves_figure

    rows = []
    for seed, scale in enumerate([1.0, 1.1, 0.9]):  # the third seed's band would reach far below the means
        for epoch in range(6):
            loss = scale * 2.0 * 0.1 ** epoch if seed < 2 else 1e-7
            rows += [{"run_id": f"r{seed}", "variant": "a", "epoch": epoch, "step": 10 * (epoch + 1),
                      "metric": "loss", "value": loss},
                     {"run_id": f"r{seed}", "variant": "a", "epoch": epoch, "step": 10 * (epoch + 1),
                      "metric": "val_accuracy", "value": 0.5}]
    history = pd.DataFrame(rows)
    fig = curves_figure(history, ["a"], labels={"a": "a · lr 0.003"})
    accuracy, loss = fig.axes
    assert loss.get_yscale() == "log" and accuracy.get_yscale() == "linear"
    means = history[history["metric"] == "loss"].groupby("epoch")["value"].mean()
    assert loss.get_ylim()[0] == pytest.approx(means.min() / 2)
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["a · lr 0.003 (n=3)"]
