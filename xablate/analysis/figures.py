"""Paper-style figures from DataFrames. Each function takes DataFrames and returns a matplotlib Figure; none
reads the store or writes files (xablate.analysis.report does the I/O)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from xablate.analysis.stats import mean_ci  # noqa: E402

METRIC_LABELS = {
    "val_accuracy": "validation accuracy (fraction)",
    "accuracy": "training accuracy (fraction)",
    "loss": "training loss (cross-entropy, nats)",
    "val_loss": "validation loss (cross-entropy, nats)",
}


def _style():
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")


def curve_statistics(history: pd.DataFrame, axis: str, metric: str) -> pd.DataFrame:
    """Per axis value and epoch: mean over seeds, 95 % CI bounds and the number of seeds."""
    rows = []
    for (value, epoch), group in history[history["metric"] == metric].groupby([axis, "epoch"], sort=True):
        ci = mean_ci(group["value"].tolist())
        rows.append({axis: value, "epoch": epoch, "mean": ci.mean, "low": ci.low, "high": ci.high, "n": ci.n})
    return pd.DataFrame(rows, columns=[axis, "epoch", "mean", "low", "high", "n"])


def curves_figure(history: pd.DataFrame, axis: str, metrics=("val_accuracy", "loss"), title: str = "",
                  order: list | None = None) -> plt.Figure:
    """Fig. 9 / Fig. 10 style: one panel per metric, metric against epoch, one line per value of `axis`
    (mean over seeds) with its 95 % confidence band."""
    _style()
    fig, panels = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    values = order or sorted(history[axis].dropna().unique(), key=str)
    colors = sns.color_palette(n_colors=len(values))
    for panel, metric in zip(panels[0], metrics):
        stats = curve_statistics(history, axis, metric)
        for color, value in zip(colors, values):
            line = stats[stats[axis] == value]
            seeds = int(line["n"].max()) if len(line) else 0
            panel.plot(line["epoch"] + 1, line["mean"], color=color, marker="o", markersize=3,
                       label=f"{axis}={value} (n={seeds})")
            panel.fill_between(line["epoch"] + 1, line["low"], line["high"], color=color, alpha=0.2, linewidth=0)
        panel.set_xlabel("epoch")
        panel.set_ylabel(METRIC_LABELS.get(metric, metric))
        panel.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def segment_position(segments: str, max_segments: int) -> float:
    """Where a requested segments value sits on the log axis; depthwise one step (x2) past the largest k."""
    return float(max_segments) if segments == "depthwise" else float(segments)


def spectrum_statistics(runs: pd.DataFrame, metric: str = "final_val_accuracy") -> pd.DataFrame:
    """Per requested segments value: x position, mean and CI of `metric`, parameters and FLOPs."""
    finished = runs[runs["status"] == "FINISHED"]
    numeric = [int(s) for s in finished["segments"].unique() if s != "depthwise"]
    top = max([*numeric, 1]) * 2
    rows = []
    columns = ["segments", "x", "mean", "low", "high", "n", "total_params", "flops"]
    for segments, group in finished.groupby("segments"):
        ci = mean_ci(group[metric].tolist())
        rows.append({"segments": segments, "x": segment_position(segments, top), "mean": ci.mean, "low": ci.low,
                     "high": ci.high, "n": ci.n, "total_params": group["total_params"].iloc[0],
                     "flops": group["flops"].iloc[0]})
    return pd.DataFrame(rows, columns=columns).sort_values("x").reset_index(drop=True)


def spectrum_figure(runs: pd.DataFrame, metric: str = "final_val_accuracy", title: str = "") -> plt.Figure:
    """Accuracy against segments (log scale, 1 ... depthwise), mean +- 95 % CI, with parameters and FLOPs in a
    companion panel."""
    _style()
    stats = spectrum_statistics(runs, metric)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True, height_ratios=[3, 2])
    yerr = np.vstack([stats["mean"] - stats["low"], stats["high"] - stats["mean"]])
    top.errorbar(stats["x"].to_numpy(float), stats["mean"].to_numpy(float), yerr=np.nan_to_num(yerr), marker="o",
                 capsize=3)
    top.set_ylabel(METRIC_LABELS.get(metric.replace("final_", "").replace("best_", ""), metric)
                   + (" (best epoch)" if metric.startswith("best_") else " (final epoch)"))
    bottom.plot(stats["x"], stats["total_params"] / 1e6, marker="s", label="parameters (millions)")
    bottom.plot(stats["x"], stats["flops"] / 1e6, marker="^", label="FLOPs per image (millions)")
    bottom.set_yscale("log")
    bottom.set_ylabel("model size")
    bottom.legend(fontsize=7)
    bottom.set_xscale("log", base=2)
    bottom.set_xticks(stats["x"], [str(s) for s in stats["segments"]])
    bottom.set_xlabel("requested segments k (1 = regular conv, depthwise = one per channel; each layer uses "
                      "the divisor of its channels nearest to k)", fontsize=8)
    if title:
        top.set_title(title)
    fig.tight_layout()
    return fig


def capacity_statistics(runs: pd.DataFrame, metric: str = "final_val_accuracy") -> pd.DataFrame:
    finished = runs[runs["status"] == "FINISHED"]
    rows = []
    columns = ["variant", "mean", "low", "high", "n", "total_params", "flops"]
    for variant, group in finished.groupby("variant", sort=True):
        ci = mean_ci(group[metric].tolist())
        rows.append({"variant": variant, "mean": ci.mean, "low": ci.low, "high": ci.high, "n": ci.n,
                     "total_params": group["total_params"].iloc[0], "flops": group["flops"].iloc[0]})
    return pd.DataFrame(rows, columns=columns)


def capacity_figure(runs: pd.DataFrame, metric: str = "final_val_accuracy", title: str = "") -> plt.Figure:
    """Accuracy against parameters and against FLOPs, one point (mean +- 95 % CI) per variant."""
    _style()
    stats = capacity_statistics(runs, metric)
    fig, panels = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    colors = sns.color_palette(n_colors=max(1, len(stats)))
    yerr = np.nan_to_num(np.vstack([stats["mean"] - stats["low"], stats["high"] - stats["mean"]]))
    for panel, column, label in zip(panels, ["total_params", "flops"], ["parameters", "FLOPs per image"]):
        xs, ys = stats[column].to_numpy(float), stats["mean"].to_numpy(float)
        for i, variant in enumerate(stats["variant"]):
            panel.errorbar(xs[i:i + 1], ys[i:i + 1], yerr=yerr[:, i:i + 1], marker="o", capsize=3,
                           color=colors[i], label=variant)
        panel.set_xscale("log")
        panel.set_xlabel(label + " (log scale)")
    panels[0].set_ylabel(METRIC_LABELS.get(metric.replace("final_", "").replace("best_", ""), metric))
    panels[1].legend(fontsize=6, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
