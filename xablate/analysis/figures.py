"""Paper-style figures from DataFrames. Each function takes DataFrames and returns a matplotlib Figure; none
reads the store or writes files (xablate.analysis.report does the I/O).

Figures are `matplotlib.figure.Figure` objects made without pyplot: nothing is shown as a side effect, so a
notebook shows each figure exactly once (as the value of its cell) and scripts need no backend setting.

What every figure shows: each seed as a thin line or dot, the mean over seeds, its 95 % Student-t band clipped
to what the metric can be, the split and the number of seeds per variant.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from xablate.analysis.stats import confidence_label, mean_ci
from xablate.analysis.store import Selection, axis_sort_key, ordered, scored
from xablate.studies import METRICS

CURVE_LABELS = {
    "val_accuracy": ("validation accuracy", (0.0, 1.0)),
    "accuracy": ("training accuracy (training mode)", (0.0, 1.0)),
    "loss": ("training loss (training mode)", (0.0, math.inf)),
    "val_loss": ("validation loss (cross-entropy)", (0.0, math.inf)),
}
CEILING = 0.9  # above this mean accuracy, curves get a panel of error rate on a log scale


def _style():
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")


def _new_figure(width: float, height: float) -> Figure:
    _style()
    return Figure(figsize=(width, height), layout="constrained")


def metric_label(metric: str) -> str:
    return METRICS.get(metric, (metric,))[0]


def curve_statistics(history: pd.DataFrame, metric: str, by: str = "variant") -> pd.DataFrame:
    """Per variant and epoch: mean over seeds, its 95 % CI clipped to the metric's range, n, and the x
    position (optimizer steps when known, else epochs)."""
    bounds = CURVE_LABELS.get(metric, (metric, (-math.inf, math.inf)))[1]
    rows = []
    for (value, epoch), group in history[history["metric"] == metric].groupby([by, "epoch"], sort=True):
        ci = mean_ci(group["value"].tolist(), bounds=bounds)
        rows.append({by: value, "epoch": epoch, "x": _x(group), "mean": ci.mean, "low": ci.low, "high": ci.high,
                     "n": ci.n})
    return pd.DataFrame(rows, columns=[by, "epoch", "x", "mean", "low", "high", "n"])


def _x(group: pd.DataFrame) -> float:
    steps = group["step"].dropna()
    return float(steps.iloc[0]) if len(steps) else float(group["epoch"].iloc[0] + 1)


LOG_CURVES = ("loss", "val_loss", "val_error")  # drawn on a log axis: a loss near zero still shows its decline


def curves_figure(history: pd.DataFrame, variants: list[str], metrics=("val_accuracy", "loss"), title: str = "",
                  zoom_error: bool | None = None, labels: dict[str, str] | None = None,
                  final: Selection | None = None) -> Figure:
    """Fig. 9 / Fig. 10 style: metric against training steps, one colour per variant — each seed a thin line,
    the mean over seeds a thick one with its 95 % band. Losses (and, near the ceiling, a panel of the
    validation error rate 1 - accuracy) on a log axis whose range follows the means, not the bands' lower edges.
    `labels`: a legend name per variant (e.g. with its tuned learning rate). `final`: the study's runs, whose
    claimed metric (`final.metric`, at the final weights: test accuracy for most studies) is drawn in a last
    panel beside the curves — each seed a dot, the mean with its 95 % CI (no interval over one seed)."""
    have_steps = history["step"].notna().any() if "step" in history else False
    if zoom_error is None:
        last = history[history["metric"] == "val_accuracy"].groupby("run_id")["value"].last()
        zoom_error = bool(len(last)) and float(last.mean()) > CEILING
    panels_wanted = list(metrics) + (["val_error"] if zoom_error else [])
    fig = _new_figure(4.6 * len(panels_wanted) + (3.2 if final is not None else 0), 3.6)
    panels = fig.subplots(1, len(panels_wanted) + (final is not None), squeeze=False,
                          width_ratios=[1.0] * len(panels_wanted) + ([0.7] if final is not None else []))[0]
    colors = dict(zip(variants, sns.color_palette(n_colors=max(1, len(variants)))))
    if final is not None:
        final_panel(panels[-1], final, variants, colors, labels)
        panels = panels[:-1]
    data = history.copy()
    if zoom_error:
        error = data[data["metric"] == "val_accuracy"].assign(metric="val_error")
        error["value"] = (1 - error["value"]).clip(lower=1e-4)
        data = pd.concat([data, error])
    for panel, metric in zip(panels, panels_wanted):
        part = data[data["metric"] == metric]
        for variant in variants:
            mine = part[part["variant"] == variant]
            for _, seed_line in mine.groupby("run_id"):
                seed_line = seed_line.sort_values("epoch")
                xs = seed_line["step"] if have_steps else seed_line["epoch"] + 1
                panel.plot(xs, seed_line["value"], color=colors[variant], alpha=0.25, linewidth=0.7)
            stats = curve_statistics(mine, metric) if metric != "val_error" else _error_stats(mine)
            if stats.empty:  # no run of this variant logged the metric
                continue
            n = int(stats["n"].max())
            panel.plot(stats["x"], stats["mean"], color=colors[variant], linewidth=2,
                       label=f"{(labels or {}).get(variant, variant)} (n={n})")
            panel.fill_between(stats["x"], stats["low"], stats["high"], color=colors[variant], alpha=0.2,
                               linewidth=0)
        panel.set_xlabel("training steps (optimizer updates)" if have_steps else "epoch")
        if metric == "val_error":
            panel.set_ylabel("validation error (1 − accuracy), log scale")
        else:
            panel.set_ylabel(CURVE_LABELS.get(metric, (metric,))[0] + (", log scale" if metric in LOG_CURVES else ""))
        if metric in LOG_CURVES and (part["value"] > 0).any():
            panel.set_yscale("log")
            means = part.groupby(["variant", "epoch"])["value"].mean()
            low, high = float(means[means > 0].min()), float(part["value"].max())
            panel.set_ylim(low / 2, high * 1.5)  # 3-seed bands reaching towards 0 do not set the range
        if panel.get_legend_handles_labels()[0]:
            panel.legend(fontsize=7)
    if title:
        seeds = history.groupby("variant")["run_id"].nunique() if len(history) else pd.Series(dtype=int)
        legend = (" — one seed per variant: its curve, no interval" if len(seeds) and seeds.max() < 2 else
                  " — thin: each seed; thick: mean; band: 95 % CI of the mean")
        fig.suptitle(title + legend, fontsize=9)
    return fig


def final_panel(panel, selection: Selection, variants: list[str], colors: dict, labels: dict | None = None) -> None:
    """The claimed metric of each variant at the final weights: every seed a dot (diverged runs scored, as the
    verdict scores them), the mean with its 95 % CI where there are two seeds or more."""
    metric = selection.metric
    stats = variant_statistics(selection, metric).set_index("variant")
    runs = selection.runs.assign(_value=scored(selection.runs, metric))
    for i, variant in enumerate(variants):
        dots = runs.loc[runs["variant"] == variant, "_value"].dropna().to_numpy(float)
        jitter = np.linspace(-0.12, 0.12, len(dots)) if len(dots) > 1 else np.zeros(len(dots))
        panel.scatter(i + jitter, dots, s=10, alpha=0.45, color=colors[variant], linewidths=0)
        if variant not in stats.index:
            continue
        row = stats.loc[variant]
        interval = int(row["n"]) >= 2 and not math.isnan(row["low"])
        yerr = [[row["mean"] - row["low"]], [row["high"] - row["mean"]]] if interval else None
        panel.errorbar([i + 0.3], [row["mean"]], yerr=yerr, marker="o", capsize=3, color=colors[variant],
                       linestyle="none")
    panel.set_xticks(range(len(variants)), [(labels or {}).get(v, v) for v in variants], fontsize=7, rotation=20,
                     ha="right")
    panel.set_xlim(-0.5, len(variants) - 0.3)
    panel.set_ylabel(metric_label(metric), fontsize=8)
    seeds = stats["n"].max() if len(stats) else 0
    panel.set_title("the claimed metric, final weights:\ndots each seed; "
                    + ("mean ± 95 % CI" if seeds >= 2 else "one seed, no interval"), fontsize=7)


def _error_stats(part: pd.DataFrame) -> pd.DataFrame:
    stats = curve_statistics(part, "val_error")
    return stats.assign(low=stats["low"].clip(lower=1e-4))


def variant_statistics(selection: Selection, metric: str) -> pd.DataFrame:
    """Per variant: axis values, mean and 95 % CI of `metric` (diverged runs scored), n, parameters, FLOPs,
    effective segments."""
    runs = selection.runs.assign(_value=scored(selection.runs, metric))
    bounds = METRICS.get(metric, ("", True, (-math.inf, math.inf)))[2]
    rows = []
    for variant in selection.variants:
        group = runs[runs["variant"] == variant]
        ci = mean_ci(group["_value"].tolist(), bounds=bounds)
        first = group.iloc[0]
        rows.append({"variant": variant, **{a: first[a] for a in selection.axes}, "mean": ci.mean, "low": ci.low,
                     "high": ci.high, "n": ci.n, "total_params": first["total_params"], "flops": first["flops"],
                     "effective_segments": first["effective_segments"]})
    return pd.DataFrame(rows, columns=["variant", *selection.axes, "mean", "low", "high", "n", "total_params",
                                       "flops", "effective_segments"])


def is_ordered_axis(values: list, axis: str) -> bool:
    """An axis plotted as a trend: numbers (or the segments axis, whose `depthwise` is a number of channels)
    with at least three values."""
    numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(values) >= 3 and (len(numeric) == len(values) or (axis == "segments" and len(numeric) >= len(values) - 1))


def _trend_points(selection: Selection, metric: str) -> tuple[pd.DataFrame, pd.Series, bool]:
    """Per variant statistics sorted along the axis, the x of each (the effective segments on the spectrum)."""
    axis = selection.axes[0]
    stats = variant_statistics(selection, metric)
    spectrum = axis == "segments" and stats["effective_segments"].notna().all()
    x = (stats["effective_segments"] if spectrum else stats[axis]).astype(float)
    order = np.argsort(x.to_numpy(float))
    return stats.iloc[order].reset_index(drop=True), x.iloc[order].reset_index(drop=True), spectrum


def trend_figure(selection: Selection, metric: str, title: str = "", beside: Selection | None = None) -> Figure:
    """The metric against an ordered axis (each seed a dot, mean ± 95 % CI of each point alone), the paired
    difference of each point from the baseline (by seed: the interval a comparison rests on) below it, and
    parameters and FLOPs per image in a last panel. The segments axis is plotted at the segments each variant actually used (the
    geometric mean over its layers; `depthwise` = one per channel), labelled with the value requested.
    `beside`: another study on the same axis (e.g. the unmatched spectrum beside the matched one) drawn in the
    same panels, dashed, each of its points at its own x."""
    from xablate.analysis.tables import variant_table

    axis = selection.axes[0]
    stats, x, spectrum = _trend_points(selection, metric)
    fig = _new_figure(6.4, 8.4)
    top, middle, bottom = fig.subplots(3, 1, sharex=True, height_ratios=[3, 2, 2])
    colors = sns.color_palette(n_colors=2)
    series = [(selection, stats, x, "-", colors[0])]
    if beside is not None:
        other_stats, other_x, _ = _trend_points(beside, metric)
        series.append((beside, other_stats, other_x, "--", colors[1]))
    counts, beside_ticks = [], []
    for part, part_stats, part_x, style, color in series:
        named = f" ({part.study.name})" if beside is not None else ""
        seeds = sorted({int(n) for n in part_stats["n"]})
        n_text = f"n={seeds[0]}" if len(seeds) == 1 else f"n={seeds[0]}–{seeds[-1]}"
        runs = part.runs.assign(_value=scored(part.runs, metric))
        xmap = dict(zip(part_stats["variant"], part_x))
        dots = runs[runs["variant"].isin(xmap)]
        top.scatter(dots["variant"].map(xmap), dots["_value"], s=8, alpha=0.35, color=color,
                    label=f"each seed{named}")
        yerr = np.nan_to_num(np.vstack([part_stats["mean"] - part_stats["low"],
                                        part_stats["high"] - part_stats["mean"]]).astype(float))
        # no line joins the means: with a few seeds their order between neighbours is mostly not established
        top.errorbar(part_x.to_numpy(float), part_stats["mean"].to_numpy(float), yerr=yerr, marker="o", capsize=3,
                     linestyle="none", color=color, label=f"mean ± 95 % CI of each point alone (unpaired), "
                                                          f"{n_text} per point{named}")
        paired = variant_table(part, metric).set_index("variant").reindex(part_stats["variant"])
        base = paired.index == part.baseline_label
        delta = paired["diff_mean"].where(~base, 0.0).to_numpy(float)
        shown = ~np.isnan(delta)
        derr = np.nan_to_num(np.vstack([delta - paired["diff_low"].to_numpy(float),
                                        paired["diff_high"].to_numpy(float) - delta]))[:, shown]
        middle.errorbar(part_x.to_numpy(float)[shown], delta[shown], yerr=derr, marker="o", capsize=3,
                        linestyle="none", color=color,
                        label=f"each point − {part.baseline_label}, paired by seed: mean ± 95 % CI{named}")
        if part is not selection:
            beside_ticks += [(xv, str(v)) for xv, v in zip(part_x, part_stats[axis])]
        bottom.plot(part_x, part_stats["total_params"] / 1e6, marker="s", linestyle=style, color=color,
                    label=f"parameters (millions){named}")
        bottom.plot(part_x, part_stats["flops"] / 1e6, marker="^", linestyle=style, color=color, alpha=0.6,
                    label=f"FLOPs per image (millions){named}")
        counts += part_stats["n"].tolist()
    top.set_ylabel(metric_label(metric))
    low, high = top.get_ylim()
    top.set_ylim(low, high + 0.22 * (high - low))  # room above the data for the legend: it hides no point
    top.legend(fontsize=6.5, ncol=2, loc="upper center")
    middle.axhline(0.0, color="0.5", linewidth=0.8)
    middle.set_ylabel(f"difference in\n{metric_label(metric)}", fontsize=8)
    middle.legend(fontsize=6.5)
    bottom.set_yscale("log")
    bottom.set_ylabel("model size")
    bottom.legend(fontsize=6 if beside is not None else 7)
    every_x = pd.concat([part_x for _, _, part_x, _, _ in series])
    if (every_x > 0).all() and every_x.max() / max(every_x.min(), 1e-12) >= 8:
        bottom.set_xscale("log", base=2)
    if spectrum:
        bottom.set_xticks(x, [str(v) for v in stats[axis]], fontsize=7)
        bottom.set_xlabel("segments k requested, each point at the segments it used (geometric mean over layers; "
                          "the table lists them)", fontsize=7)
        # the other study's points where they were drawn: a minor tick, its requested k beside the point
        own = [float(v) for v in x]
        extra = [(xv, v) for xv, v in beside_ticks if min(abs(math.log(xv / o)) for o in own) > 0.05]
        if extra:
            bottom.set_xticks([xv for xv, _ in extra], [""] * len(extra), minor=True)
            for xv, v in extra:
                bottom.annotate(f"k={v}", (xv, 0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                                textcoords="offset points", ha="center", fontsize=6, color=colors[1])
    else:
        bottom.set_xticks(x, [str(v) for v in stats[axis]], fontsize=7)
        bottom.set_xlabel(axis)
    if title:
        top.set_title(title, fontsize=9)
    return fig


def heatmap_figure(selection: Selection, metric: str, title: str = "") -> Figure:
    """Two (or more) axes: the mean of `metric` per cell (rows: the first axis; columns: the others), each cell
    annotated with its mean, CI half-width and n."""
    stats = variant_statistics(selection, metric)
    first, rest = selection.axes[0], selection.axes[1:]
    # one column axis: its values (the axis names itself below them); more: each column's key=value pairs
    stats["_column"] = [str(row[rest[0]]) if len(rest) == 1 else ",".join(f"{a}={row[a]}" for a in rest)
                        for _, row in stats.iterrows()]
    rows = ordered(stats[first])  # like the columns, in the axis' own order (numbers ascending)
    columns = list(dict.fromkeys(stats.sort_values(rest, key=lambda s: s.map(axis_sort_key))["_column"]))
    means = stats.pivot_table(index=first, columns="_column", values="mean", aggfunc="first").reindex(rows)[columns]
    notes = stats.assign(_text=[f"{m:.3f}\n±{(h - l) / 2:.3f}\nn={n}" if not math.isnan(h) else f"{m:.3f}\nn={n}"
                                for m, l, h, n in zip(stats["mean"], stats["low"], stats["high"], stats["n"])])
    text = notes.pivot_table(index=first, columns="_column", values="_text", aggfunc="first").reindex(rows)[columns]
    width = 2.4 + 1.5 * len(columns)
    fig = _new_figure(width, 1.6 + 0.9 * len(rows))
    panel = fig.subplots()
    sns.heatmap(means.astype(float), annot=text.fillna(""), fmt="", cmap="viridis", ax=panel,
                cbar_kws={"label": metric_label(metric)}, annot_kws={"fontsize": 7})
    panel.set_xlabel(",".join(rest))
    panel.set_ylabel(first)
    panel.tick_params(axis="x", labelrotation=0 if max(map(len, columns)) <= 12 else 30)
    panel.tick_params(axis="y", labelrotation=0)
    # the title wrapped to the figure's width (about 14 characters an inch at 9 pt), so it never runs off the page
    panel.set_title(textwrap.fill(title or f"{metric_label(metric)}: mean over seeds", int(width * 14)), fontsize=9)
    return fig


def capacity_figure(selection: Selection, metric: str, title: str = "") -> Figure:
    """The metric against parameters and against FLOPs, one point (mean ± 95 % CI) per variant."""
    stats = variant_statistics(selection, metric)
    fig = _new_figure(10, 3.8)
    panels = fig.subplots(1, 2, sharey=True)
    colors = sns.color_palette(n_colors=max(1, len(stats)))
    yerr = np.nan_to_num(np.vstack([stats["mean"] - stats["low"], stats["high"] - stats["mean"]]))
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for panel, column, label in zip(panels, ["total_params", "flops"], ["parameters", "FLOPs per image"]):
        xs, ys = stats[column].to_numpy(float), stats["mean"].to_numpy(float)
        # a log axis for sizes spanning a factor of 4 or more; a matched study's ±3 % reads on a linear one
        wide = bool((xs > 0).all()) and float(xs.max()) / float(xs.min()) >= 4
        scale = "log scale" if wide else "linear scale"
        panel.set_xscale("log" if wide else "linear")
        # variants of one size are spread sideways a little, so no marker hides another (on a linear axis by
        # less: a 3 % step there would read as another size)
        same = {i: [j for j in range(len(xs)) if abs(math.log(xs[j] / xs[i])) < (0.02 if wide else 1e-9)]
                for i in range(len(xs))}
        step = 0.03 if wide else 0.004
        for i, variant in enumerate(stats["variant"]):
            group = same[i]
            dodge = 1.0 + step * (group.index(i) - (len(group) - 1) / 2) if len(group) > 1 else 1.0
            panel.errorbar(xs[i:i + 1] * dodge, ys[i:i + 1], yerr=yerr[:, i:i + 1], marker=markers[i % len(markers)],
                           capsize=3, color=colors[i], label=f"{variant} (n={int(stats['n'].iloc[i])})")
        dodged = any(len(g) > 1 for g in same.values())
        if wide and dodged:  # a wide enough range that the few-percent spread reads as side by side
            panel.set_xlim(float(xs.min()) / 1.6, float(xs.max()) * 1.6)
        elif not wide:  # room around the points, and around one size's side-by-side group
            pad = 0.15 * (float(xs.max()) - float(xs.min())) + 0.03 * float(xs.max())
            panel.set_xlim(float(xs.min()) - pad, float(xs.max()) + pad)
        panel.set_xlabel(label + f" ({scale}" + ("; one size: side by side)" if dodged else ")"))
    panels[0].set_ylabel(metric_label(metric))
    panels[1].legend(fontsize=6, loc="best")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def claims_figure(rows: pd.DataFrame, title: str = "") -> Figure:
    """Each comparison of the study's claims (xablate.analysis.verdicts, one row each): the difference it rests
    on, variant − baseline in the metric's units as verdict.md and the headline give it, with its interval (95 %,
    or a sequential look's nominal level, as the verdict read it); 0 solid; a claim's margin dashed where it has
    one (±margin for equivalence, the worse side's for non-inferiority), and said only then; the outcome and n
    beside each row. One panel per metric (their units differ)."""
    metrics = list(dict.fromkeys(rows["metric"]))
    fig = _new_figure(7.2, 0.6 + 0.55 * len(rows) + 0.5 * len(metrics))
    panels = fig.subplots(len(metrics), 1, squeeze=False, height_ratios=[
        max(1, int((rows["metric"] == m).sum())) for m in metrics])[:, 0]
    colors = {"reproduced": "#0072B2", "non-inferior": "#0072B2", "equivalent": "#009E73", "contradicted": "#D55E00",
              "inconclusive": "#7f7f7f"}
    for panel, metric in zip(panels, metrics):
        part = rows[rows["metric"] == metric]
        labels, dashed = [], False
        for y, row in enumerate(part.itertuples()):
            delta, low, high = row.delta, row.ci_low, row.ci_high
            panel.errorbar([delta], [y], xerr=None if math.isnan(low) else [[max(delta - low, 0)], [max(high - delta, 0)]],
                           marker="o", capsize=3, color=colors.get(row.outcome, "k"), linestyle="none")
            if row.margin == row.margin:  # not NaN
                worse = -row.margin if row.higher_is_better else row.margin  # non-inferiority: the worse side only
                for m in ([worse] if row.kind == "no_worse" else [-row.margin, row.margin]):
                    panel.plot([m, m], [y - 0.35, y + 0.35], linestyle="--", color="0.3", linewidth=1)
                dashed = True
            panel.annotate(f"{row.outcome} (n={row.n})", (1.01, y), xycoords=("axes fraction", "data"),
                           va="center", fontsize=7, color=colors.get(row.outcome, "k"))
            labels.append(f"{row.variant}\nvs {row.baseline}")
        panel.axvline(0, color="0.2", linewidth=0.8)
        panel.set_yticks(range(len(part)), labels, fontsize=6)
        panel.set_ylim(len(part) - 0.5, -0.5)
        levels = sorted(set(part["confidence"].dropna())) if "confidence" in part else []
        level = (confidence_label(levels[0]) if len(levels) == 1 else
                 "CI at each look's nominal level" if levels else "95 % CI")
        better = "higher" if part["higher_is_better"].iloc[0] else "lower"
        panel.set_xlabel(f"{metric_label(metric)}: variant − baseline ({better} is better), mean and {level} over "
                         f"paired seeds" + ("; dashed: the claim's margin" if dashed else ""), fontsize=7)
    if title:
        panels[0].set_title(title, fontsize=9)
    return fig


def _shown(value) -> str:
    """A chosen value as a legend shows it; a variant tuned r times: each repeat's choice, `a|b`."""
    if isinstance(value, list):
        return "|".join(map(_shown, value))
    return f"{value:.3g}" if isinstance(value, float) else f"{value}"


def sensitivity_figure(runs: pd.DataFrame, trials: pd.DataFrame, keys: tuple[str, ...], metric: str,
                       chosen: dict[str, dict], title: str = "") -> Figure:
    """A tuned study's sensitivity: for each tuned key a panel of every variant's tuning metric (validation)
    against the key's value. Each seed is a small dot, each trial's mean over its seeds a large dot with its
    seeds' range as a band (a vertical bar); pruned seeds as crosses at the value they stopped with; each variant's
    chosen value a dashed line. A key spanning 10x or more of positive values gets a log axis."""
    variants = list(dict.fromkeys(trials["variant"])) if len(trials) else []
    palette = dict(zip(variants, sns.color_palette("colorblind", max(len(variants), 1))))
    fig = _new_figure(max(4.6 * (len(keys) + 1) + 1.0, 7.0), 3.8)
    panels = fig.subplots(1, len(keys) + 1, squeeze=False)[0]
    label = f"{metric.replace('_', ' ')}\n(validation, at the tune stage's budget)"
    tuning_curve_panel(panels[-1], trials, variants, palette, metric)
    panels = panels[:-1]
    for panel, key in zip(panels, keys):
        for variant in variants:
            color = palette[variant]
            mine, seeds = trials[trials["variant"] == variant], runs[runs["variant"] == variant]
            finished = seeds[seeds["outcome"] != "pruned"]
            panel.scatter(finished[key], finished["value"], s=8, color=color, alpha=0.45, linewidths=0)
            pruned = seeds[seeds["outcome"] == "pruned"]
            if len(pruned):
                panel.scatter(pruned[key], pruned["value"], s=22, marker="x", color=color, alpha=0.8, linewidths=1)
            sign = 1.0 if TUNED_HIGHER.get(metric, True) else -1.0
            means = mine.dropna(subset=["mean"])
            panel.errorbar(means[key], sign * means["mean"],
                           yerr=[(sign * means["mean"] - np.minimum(sign * means["low"], sign * means["high"])).clip(0),
                                 (np.maximum(sign * means["low"], sign * means["high"]) - sign * means["mean"]).clip(0)],
                           fmt="o", markersize=5, color=color, capsize=2, linewidth=1,
                           label=f"{variant} (→ " + ", ".join(f"{k.rsplit('.', 1)[-1]} {_shown(v)}"
                                                              for k, v in chosen.get(variant, {}).items()) + ")")
            if variant in chosen and key in chosen[variant]:
                mine_chosen = chosen[variant][key]  # repeated tuning: one line per repeat's choice
                for value in mine_chosen if isinstance(mine_chosen, list) else [mine_chosen]:
                    panel.axvline(float(value), color=color, linestyle="--", linewidth=1)
        values = pd.to_numeric(runs[key], errors="coerce").dropna() if key in runs else pd.Series(dtype=float)
        if len(values) and values.min() > 0 and values.max() / values.min() >= 10:
            panel.set_xscale("log")
            panel.xaxis.set_minor_formatter(NullFormatter())
        if 1 < values.nunique() <= 6:  # a grid: its values are the ticks
            ticks = sorted(values.unique())
            panel.set_xticks(ticks, [f"{v:g}" for v in ticks])
        panel.set_xlabel(key)
    panels[0].set_ylabel(label)
    handles, names = panels[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 2), fontsize=7,
                   title="variant (→ its chosen values, dashed); small dots: seeds; large: a trial's mean, bar: its "
                         "seeds' range; ×: a pruned scout", title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


TUNED_HIGHER = {"final_val_accuracy": True, "best_val_accuracy": True, "final_val_loss": False}


def tuning_curve_panel(panel, trials: pd.DataFrame, variants: list[str], palette: dict, metric: str) -> None:
    """Per variant the expected best score of n finished trials (xablate.analysis.tuning_curves): solid up to
    the trials it finished, dashed beyond (what more trials are expected to add), its 80 % distribution-free band
    dotted (the axis follows the curves: a band from three trials reaches far beyond them)."""
    from xablate.analysis.tuning_curves import CONFIDENCE, finished_scores, tuning_curve

    higher = TUNED_HIGHER.get(metric, True)
    sign = 1.0 if higher else -1.0
    expected = []
    for variant in variants:
        scores = finished_scores(trials, variant)
        if not len(scores):
            continue
        n = len(scores)
        curve = tuning_curve(scores, np.arange(1, 2 * n + 1), bounded=higher)
        color = palette[variant]
        seen, beyond = curve[curve["n"] <= n], curve[curve["n"] >= n]
        panel.plot(seen["n"], sign * seen["expected"], color=color, linewidth=2, label=f"{variant} ({n} finished)")
        panel.plot(beyond["n"], sign * beyond["expected"], color=color, linewidth=1.2, linestyle="--")
        for edge in ("low", "high"):
            panel.plot(curve["n"], sign * curve[edge], color=color, linewidth=0.8, linestyle=":")
        expected += list(sign * curve["expected"])
    if expected:  # the range follows the curves: one trial's band reaches far below them
        low, high = min(expected), max(expected)
        pad = max(high - low, 1e-3)
        panel.set_ylim(low - pad, high + pad)
    panel.set_xlabel("finished tuning trials")
    panel.set_ylabel(f"expected best {metric.replace('_', ' ')}", fontsize=8)
    panel.set_title(f"expected best of n trials (dashed: beyond the budget); dotted: its {CONFIDENCE:.0%}\n"
                    f"distribution-free band (opda), off the panel where wider than drawn", fontsize=7)
    if panel.get_legend_handles_labels()[0]:
        panel.legend(fontsize=6.5)


def variance_figure(table: pd.DataFrame, metric: str, title: str = "") -> Figure:
    """Each source of variance's share of the spread of `metric`, one horizontal bar per variant (a variance
    decomposition over the crossed seeds: xablate.analysis.variance), each share labelled with its SD."""
    variants = list(dict.fromkeys(table["variant"]))
    sources = list(dict.fromkeys(table["source"]))
    colors = dict(zip(sources, sns.color_palette("colorblind", len(sources))))
    fig = _new_figure(7.0, 1.2 + 0.5 * len(variants))
    panel = fig.subplots()
    for row, variant in enumerate(variants):
        left = 0.0
        for _, part in table[table["variant"] == variant].iterrows():
            share = float(part["share"]) if not math.isnan(part["share"]) else 0.0
            panel.barh(row, share, left=left, color=colors[part["source"]],
                       label=part["source"] if row == 0 else None)
            if share >= 0.08:
                panel.text(left + share / 2, row, f"{share:.0%}\nSD {math.sqrt(part['component']):.4f}",
                           ha="center", va="center", fontsize=6)
            left += share
    panel.set_yticks(range(len(variants)), variants, fontsize=7)
    panel.set_xlim(0, 1)
    panel.set_xlabel(f"share of the variance of {metric_label(metric)}, crossed seeds", fontsize=8)
    panel.legend(fontsize=7, ncols=min(len(sources), 4), loc="upper center", bbox_to_anchor=(0.5, -0.35))
    if title:
        panel.set_title(title, fontsize=9)
    return fig
