"""xablate.analysis on a real store made by debug sweeps (2 variants x 2 seeds per study), and the verdict
logic on synthetic runs with a known answer."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers import ROOT, run_py, sqlite_uri
from xablate.analysis import (capacity_figure, comparable_runs, curves_figure, history_frame, mean_ci,
                              paired_difference, runs_frame, spectrum_figure, variant_table, verdict_table)
from xablate.analysis.figures import curve_statistics, spectrum_statistics
from xablate.analysis.report import regenerate, stale_outputs
from xablate.analysis.store import RUN_COLUMNS

SWEEPS = {
    "fig9_residual": ["residual=true,false"],
    "fig10_intermediate_act": ["intermediate_act=none,relu"],
    "spectrum": ["segments=4,depthwise"],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store holding the three studies, each a debug sweep of 2 variants x seeds 0, 1."""
    tmp = tmp_path_factory.mktemp("analysis")
    uri = sqlite_uri(tmp)
    for study, sweep in SWEEPS.items():
        proc = run_py("-m", f"experiment={study}", "debug=default", *sweep, "seed=0,1", "train.save_model=false",
                      f"tracking.uri={uri}", cwd=tmp)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return uri, tmp


def test_runs_frame_rows_and_columns(store):
    uri, _ = store
    runs = runs_frame(uri, study="fig10_intermediate_act")
    assert list(runs.columns) == RUN_COLUMNS
    assert len(runs) == 4
    assert sorted(zip(runs["intermediate_act"], runs["seed"])) == [("none", 0), ("none", 1), ("relu", 0), ("relu", 1)]
    assert (runs["status"] == "FINISHED").all() and (runs["epochs"] == 2).all()
    assert runs["sweep"].nunique() == 1 and runs["study"].unique().tolist() == ["fig10_intermediate_act"]
    assert runs["total_params"].nunique() == 1  # the activation adds no parameters
    assert len(runs_frame(uri)) == 12
    assert len(runs_frame(uri, study="spectrum", status="FAILED")) == 0
    assert len(runs_frame(uri, sweep=runs["sweep"].iloc[0])) == 4
    spectrum = runs_frame(uri, study="spectrum")
    assert spectrum.groupby("segments")["total_params"].first()["4"] > spectrum.groupby("segments")[
        "total_params"].first()["depthwise"]


def test_history_frame_one_row_per_run_epoch_metric(store):
    uri, _ = store
    runs = runs_frame(uri, study="fig9_residual")
    history = history_frame(uri, runs)
    assert len(history) == 4 * 2 * 4  # runs x epochs x (loss, accuracy, val_loss, val_accuracy)
    assert set(history["epoch"]) == {0, 1}
    last = history[(history["metric"] == "val_accuracy") & (history["epoch"] == 1)].set_index("run_id")["value"]
    assert dict(last) == pytest.approx(dict(runs.set_index("run_id")["final_val_accuracy"]))


def test_curve_figure_plots_the_seed_means_and_ci(store):
    uri, _ = store
    runs = runs_frame(uri, study="fig10_intermediate_act")
    history = history_frame(uri, runs)
    fig = curves_figure(history, "intermediate_act", order=["none", "relu"])
    val_panel, loss_panel = fig.axes
    assert val_panel.get_xlabel() == "epoch" and "validation accuracy" in val_panel.get_ylabel()
    assert "training loss" in loss_panel.get_ylabel()
    for panel, metric in [(val_panel, "val_accuracy"), (loss_panel, "loss")]:
        for line, act in zip(panel.get_lines(), ["none", "relu"]):
            values = history[(history["metric"] == metric) & (history["intermediate_act"] == act)]
            expected = values.groupby("epoch")["value"].mean()
            np.testing.assert_allclose(line.get_xdata(), expected.index + 1)
            np.testing.assert_allclose(line.get_ydata(), expected.values)
        # the band is the t-interval of the two seeds
        band = panel.collections[0].get_paths()[0].vertices
        at_epoch1 = history[(history["metric"] == metric) & (history["intermediate_act"] == "none")
                            & (history["epoch"] == 0)]["value"]
        ci = mean_ci(at_epoch1.tolist())
        assert band[:, 1].min() <= ci.low + 1e-9 and band[:, 1].max() >= ci.high - 1e-9


def test_spectrum_and_capacity_figures_plot_the_dataframe(store):
    uri, _ = store
    runs = runs_frame(uri, study="spectrum")
    stats_frame = spectrum_statistics(runs)
    fig = spectrum_figure(runs)
    top, bottom = fig.axes
    np.testing.assert_allclose(top.containers[0].lines[0].get_ydata(), stats_frame["mean"])
    assert list(stats_frame["segments"]) == ["4", "depthwise"] and bottom.get_xscale() == "log"
    np.testing.assert_allclose(bottom.get_lines()[0].get_ydata(), stats_frame["total_params"] / 1e6)
    capacity = capacity_figure(runs)
    means = runs.groupby("variant")["final_val_accuracy"].mean()
    plotted = sorted(float(c.lines[0].get_ydata()[0]) for c in capacity.axes[0].containers)
    np.testing.assert_allclose(plotted, sorted(means.values))


def test_table_ci_and_paired_difference_by_hand(store):
    uri, _ = store
    runs = runs_frame(uri, study="fig9_residual")
    table = variant_table(runs, "residual", True)
    assert list(table["variant"]) == ["residual=True", "residual=False"]
    assert list(table["seeds"]) == [2, 2] and list(table["failed"]) == [0, 0] and list(table["running"]) == [0, 0]
    assert list(table["diverged"]) == [0, 0]
    with_res = runs[runs["residual"]].sort_values("seed")["final_val_accuracy"].to_numpy()
    without = runs[~runs["residual"].astype(bool)].sort_values("seed")["final_val_accuracy"].to_numpy()
    half = stats.t.ppf(0.975, 1) * with_res.std(ddof=1) / math.sqrt(2)
    assert table.loc[0, "final_mean"] == pytest.approx(with_res.mean())
    assert table.loc[0, "final_high"] - table.loc[0, "final_low"] == pytest.approx(2 * half, nan_ok=True)
    diffs = without - with_res
    assert table.loc[1, "diff_mean"] == pytest.approx(diffs.mean())
    assert table.loc[1, "paired_seeds"] == 2


def test_comparable_runs_keeps_the_main_configuration_and_one_run_per_seed():
    t = pd.Timestamp
    runs = pd.DataFrame([
        {"run_id": "a", "variant": "v", "seed": 0, "status": "FINISHED", "config_id": "main", "start_time": t(1)},
        {"run_id": "b", "variant": "v", "seed": 0, "status": "FINISHED", "config_id": "main", "start_time": t(2)},
        {"run_id": "c", "variant": "v", "seed": 1, "status": "FINISHED", "config_id": "main", "start_time": t(3)},
        {"run_id": "d", "variant": "v", "seed": 1, "status": "FAILED", "config_id": "main", "start_time": t(4)},
        {"run_id": "e", "variant": "v", "seed": 0, "status": "FINISHED", "config_id": "smoke", "start_time": t(5)},
    ])
    assert comparable_runs(runs)["run_id"].tolist() == ["b", "c"]


def test_stats_against_hand_computation():
    ci = mean_ci([0.8, 0.9, 1.0])
    assert ci.mean == pytest.approx(0.9)
    assert ci.half_width == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3))
    diff = paired_difference({0: 0.9, 1: 0.8, 2: 0.85, 7: 0.1}, {0: 0.7, 1: 0.65, 2: 0.7})
    assert diff.seeds == (0, 1, 2)
    assert diff.interval.mean == pytest.approx(np.mean([0.2, 0.15, 0.15]))
    assert diff.p_value == pytest.approx(stats.ttest_rel([0.9, 0.8, 0.85], [0.7, 0.65, 0.7]).pvalue)
    assert math.isnan(mean_ci([0.5]).low)


def synthetic(axis, values_by_variant):
    """Runs and history for a synthetic study: {variant value: [per-seed final accuracies]}."""
    rows, hist = [], []
    for value, accs in values_by_variant.items():
        for seed, acc in enumerate(accs):
            run_id = f"{value}-{seed}"
            rows.append({"run_id": run_id, axis: value, "seed": seed, "status": "FINISHED",
                         "final_val_accuracy": acc, "best_val_accuracy": acc, "variant": f"{axis}={value}",
                         "total_params": 1, "flops": 1})
            hist += [{"run_id": run_id, "epoch": e, "metric": "val_accuracy", "value": acc * (e + 1) / 2}
                     for e in range(2)]
    return pd.DataFrame(rows), pd.DataFrame(hist)


def test_verdict_logic_on_known_answers():
    clear_win = synthetic("residual", {True: [0.90, 0.91, 0.92], False: [0.80, 0.80, 0.81]})
    clear_loss = synthetic("residual", {True: [0.70, 0.71, 0.70], False: [0.80, 0.82, 0.81]})
    overlap = synthetic("residual", {True: [0.80, 0.90, 0.70], False: [0.85, 0.75, 0.80]})
    verdicts = [verdict_table({"fig9_residual": s})["verdict"].tolist() for s in (clear_win, clear_loss, overlap)]
    assert verdicts == [["reproduced"] * 2, ["contradicted"] * 2, ["inconclusive"] * 2]

    fig10 = synthetic("intermediate_act", {"none": [0.9, 0.91, 0.92], "elu": [0.8, 0.8, 0.82],
                                           "relu": [0.89, 0.93, 0.90]})
    assert verdict_table({"fig10_intermediate_act": fig10})["verdict"].tolist() == ["inconclusive"] * 2

    peak_inside = synthetic("segments", {"depthwise": [0.8, 0.81, 0.8], "8": [0.9, 0.9, 0.91], "1": [0.8, 0.8, 0.8]})
    row = verdict_table({"spectrum": peak_inside}).iloc[0]
    assert row["verdict"] == "contradicted" and "peak at segments=8" in row["evidence"]


def test_figures_command_writes_outputs_with_sidecars_and_finds_stale_ones(store):
    uri, tmp = store
    out = tmp / "results"
    written = regenerate(uri, out)
    names = {p.relative_to(out).as_posix() for p in written}
    for study in SWEEPS:
        assert {f"{study}/{study}.png", f"{study}/{study}.pdf", f"{study}/table.csv", f"{study}/table.md",
                f"{study}/table.tex", f"{study}/capacity.png"} <= names
    sidecar = json.loads((out / "fig9_residual" / "table.json").read_text())
    assert sidecar["tracking_uri"] == uri and list(sidecar["runs"].values()) == ["FINISHED"] * 4
    verdict = pd.read_csv(out / "verdict.csv")
    assert len(verdict) == 5 and set(verdict["verdict"]) <= {"reproduced", "contradicted", "inconclusive"}
    assert stale_outputs(uri, out) == []

    # a smoke run with other settings (1 epoch) in the same study is not comparable: nothing goes stale
    proc = run_py("-m", "experiment=fig9_residual", "debug=default", "residual=true", "seed=0",
                  "train.epochs=1", "train.save_model=false", f"tracking.uri={uri}", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stale_outputs(uri, out) == []
    assert len(runs_frame(uri, study="fig9_residual")) == 5 and len(comparable_runs(
        runs_frame(uri, study="fig9_residual"))) == 4

    # one more comparable run in fig9: its outputs (and the verdict) go stale; the CLI says so and regenerates
    proc = run_py("-m", "experiment=fig9_residual", "debug=default", "residual=true", "seed=5",
                  "train.save_model=false", f"tracking.uri={uri}", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stale = {p.relative_to(out).as_posix() for p, _ in stale_outputs(uri, out)}
    assert stale == {"fig9_residual/fig9_residual.json", "fig9_residual/capacity.json",
                     "fig9_residual/table.json", "verdict.json"}
    xablate = os.path.join(os.path.dirname(sys.executable), "xablate")
    check = subprocess.run([xablate, "figures", "--uri", uri, "--out", str(out), "--check"], capture_output=True,
                           text=True, timeout=300)
    assert check.returncode == 1 and "4 stale output(s)" in check.stdout
    regen = subprocess.run([xablate, "figures", "--uri", uri, "--out", str(out), "--study", "fig9_residual"],
                           capture_output=True, text=True, timeout=300)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert stale_outputs(uri, out) == []
    assert len(json.loads((out / "fig9_residual" / "table.json").read_text())["runs"]) == 5


@pytest.mark.parametrize("notebook", sorted(p.name for p in (ROOT / "notebooks").glob("*.py")))
def test_notebooks_execute_against_the_debug_store(store, notebook):
    uri, _ = store
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(ROOT / "notebooks" / notebook)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "runs, {'FINISHED':" in proc.stdout
    assert any(v in proc.stdout for v in ("reproduced", "contradicted", "inconclusive"))
