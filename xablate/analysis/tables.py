"""Per-study tables: per variant the reported metric's mean ± 95 % CI over seeds, divergences and failures, and
the paired difference from the study's baseline (replicates matched), with its p-value, the Holm-adjusted
p-value across the table's comparisons and the minimum detectable effect; as a DataFrame and as CSV /
Markdown / LaTeX text. Diverged runs are scored (see xablate.analysis.store.scored), never dropped."""

from __future__ import annotations

import math

import pandas as pd

from xablate.analysis.stats import PAIRED_TEST, RankAgreement, holm, mean_ci, paired_difference, rank_agreement
from xablate.analysis.sensitivity import describe_costs, describe_flatness, flat_range, stage_costs, trial_table, \
    tuning_runs
from xablate.analysis.store import Selection, scored, typed
from xablate.config import short_name
from xablate.studies import METRICS

TABLE_COLUMNS = [
    "variant", "seeds", "diverged", "failed", "running", "mean", "low", "high", "best_val_mean", "best_val_low",
    "best_val_high", "diff_mean", "diff_low", "diff_high", "p_value", "p_holm", "mde", "paired", "total_params",
    "flops",
]


def per_replicate(runs: pd.DataFrame, metric: str) -> dict:
    """{replicate: value} of the finished and diverged runs (diverged scored)."""
    values = scored(runs, metric)
    return {rep: float(v) for rep, v in zip(runs["replicate"], values) if not math.isnan(v)}


def variant_table(selection: Selection, metric: str | None = None) -> pd.DataFrame:
    """One row per variant (baseline first): seeds finished, diverged, failed and running; `metric` mean and
    95 % CI; best-epoch validation accuracy (labelled optimistic); and the paired difference from the baseline."""
    metric = metric or selection.metric
    runs = selection.runs
    bounds = METRICS.get(metric, ("", True, (-math.inf, math.inf)))[2]
    base_label = selection.baseline_label
    base = per_replicate(runs[runs["variant"] == base_label], metric)
    rows = []
    for variant in selection.variants:
        group = runs[runs["variant"] == variant]
        finished = group[group["status"] == "FINISHED"]
        running = int(group["status"].isin(["RUNNING", "SCHEDULED"]).sum())
        diverged = int((group["outcome"] == "diverged").sum())
        value = mean_ci(scored(group, metric).tolist(), bounds=bounds)
        best = mean_ci(finished["best_val_accuracy"].tolist(), bounds=(0.0, 1.0))
        row = {"variant": variant, "seeds": len(finished), "diverged": diverged,
               "failed": len(group) - len(finished) - running - diverged, "running": running,
               "mean": value.mean, "low": value.low, "high": value.high,
               "best_val_mean": best.mean, "best_val_low": best.low, "best_val_high": best.high,
               "diff_mean": math.nan, "diff_low": math.nan, "diff_high": math.nan, "p_value": math.nan,
               "p_holm": math.nan, "mde": math.nan, "paired": 0,
               "total_params": group["total_params"].iloc[0], "flops": group["flops"].iloc[0]}
        if variant != base_label:
            diff = paired_difference(per_replicate(group, metric), base)
            row.update(diff_mean=diff.interval.mean, diff_low=diff.interval.low, diff_high=diff.interval.high,
                       p_value=diff.p_value, mde=diff.mde, paired=len(diff.replicates))
        rows.append(row)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    comparisons = table["variant"] != base_label
    table.loc[comparisons, "p_holm"] = holm(table.loc[comparisons, "p_value"].tolist())
    table.attrs.update(baseline=base_label, metric=metric, test=PAIRED_TEST)
    tuned_keys = list(dict.fromkeys(runs["tuned_key"].dropna())) if "tuned_key" in runs else []
    key = selection.study.tune.key if selection.study.tune is not None else (tuned_keys[0] if tuned_keys else None)
    if key is not None:  # each variant's own value of the tuned key (its runs' value; several if they differ)
        keys = key.split(",")  # a search may tune several keys: `key=value` each
        show = (lambda p: str(typed(p.get(keys[0])))) if len(keys) == 1 else \
            (lambda p: " ".join(f"{short_name(k)}={typed(p.get(k))}" for k in keys))
        table["tuned"] = [", ".join(dict.fromkeys(show(p) for p in runs.loc[runs["variant"] == variant, "params"]))
                          for variant in table["variant"]]
        table.attrs["tuned_key"] = key
    agreement = pilot_agreement(selection, table)
    if agreement is not None:
        table.attrs["pilot_agreement"] = agreement
    if selection.tuning is not None and selection.study.tune is not None:  # how flat each optimum is, the costs
        keys = selection.study.tune.keys
        flat = flat_range(trial_table(tuning_runs(selection), keys), keys)
        table["flat"] = [describe_flatness(flat[v]) if v in flat else "–" for v in table["variant"]]
        table.attrs["tune_metric"] = selection.study.tune.metric
    costs = describe_costs(stage_costs(selection)) if selection.study.tune or selection.pilot is not None else ""
    if costs:
        table.attrs["costs"] = costs
    return table


def pilot_agreement(selection: Selection, table: pd.DataFrame) -> RankAgreement | None:
    """Kendall's tau between the pilot's ranking of the variants (its mean final validation accuracy: what a
    researcher pruning on a pilot would look at) and the study's (the table's mean of the reported metric, higher
    is better); None for a study without pilot runs."""
    if selection.pilot is None or selection.pilot.empty:
        return None
    pilot = selection.pilot.groupby("variant")["final_val_accuracy"].mean().to_dict()
    higher = METRICS.get(table.attrs.get("metric", ""), ("", True))[1]
    full = {v: (m if higher else -m) for v, m in zip(table["variant"], table["mean"])}
    if selection.crossed:  # the pilot ran each variant once, untuned: compare with each variant at its own value
        full = {selection.tuning_label(v): m for v, m in full.items() if _at_own_value(selection, v)}
    return rank_agreement(pilot, full)


def _at_own_value(selection: Selection, label: str) -> bool:
    from xablate.analysis.store import same_value

    runs = selection.runs[selection.runs["variant"] == label]
    own = selection.own.get(selection.tuning_label(label))
    return not runs.empty and own is not None and same_value(runs.iloc[0][selection.crossed], own)


def _fmt(mean, low, high, digits=4) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _p(value) -> str:
    return "–" if math.isnan(value) else f"{value:.3g}"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as strings, mean [95 % CI], ready for Markdown or LaTeX."""
    baseline = table.attrs.get("baseline", "baseline")
    metric = METRICS.get(table.attrs.get("metric", ""), (table.attrs.get("metric", "metric"),))[0]
    return pd.DataFrame({
        "variant": table["variant"],
        "seeds": table["seeds"],
        "diverged": table["diverged"],
        "failed": table["failed"],
        f"{metric} (mean [95 % CI])": [_fmt(*r) for r in table[["mean", "low", "high"]].values],
        "best-epoch val acc (optimistic)": [_fmt(*r) for r in
                                            table[["best_val_mean", "best_val_low", "best_val_high"]].values],
        f"Δ vs {baseline} (paired)": [_fmt(*r) for r in table[["diff_mean", "diff_low", "diff_high"]].values],
        "p": [_p(p) for p in table["p_value"]],
        "p (Holm)": [_p(p) for p in table["p_holm"]],
        "MDE (80 % power)": ["–" if math.isnan(m) else f"{m:.4f}" for m in table["mde"]],
        "parameters": [f"{int(v):,}" if v == v else "–" for v in table["total_params"]],
        **({f"{table.attrs['tuned_key']} (tuned)": table["tuned"]} if "tuned" in table else {}),
        **({"within 1 SE of the best trial": table["flat"]} if "flat" in table else {}),
    })


def to_markdown(table: pd.DataFrame) -> str:
    shown = display_table(table)
    lines = ["| " + " | ".join(map(markdown_cell, shown.columns)) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(markdown_cell(v) for v in row) + " |" for row in shown.values]
    note = (f"\nΔ: {table.attrs.get('metric', '')} of the variant minus the baseline over the replicates both have "
            f"(diverged runs scored: accuracy at chance, loss at the worst reached); {table.attrs.get('test', '')}; "
            f"Holm across this table's comparisons; MDE: the smallest difference this design detects with 80 % "
            f"power at α = 0.05, from the observed spread of the differences.\n")
    if "tuned_key" in table.attrs:
        note += (f"\n{table.attrs['tuned_key']} (tuned): each variant's value, picked by its own tuning stage on the "
                 f"validation split; the comparison is tuned against tuned.\n")
    if "flat" in table:
        note += (f"\nWithin 1 SE of the best trial: the tuned values whose trials' mean {table.attrs['tune_metric']} "
                 f"(validation, over their seeds) lies within one standard error of the best trial's; one value: a "
                 f"sharp optimum, a wide range: a flat one (sensitivity.png shows every trial).\n")
    if table.attrs.get("costs"):
        note += f"\nCost per stage: {table.attrs['costs']}.\n"
    agreement = table.attrs.get("pilot_agreement")
    if agreement is not None:
        note += (f"\nPilot vs full study: Kendall's τ = {_p(agreement.tau)} (p = {_p(agreement.p_value)}, "
                 f"{agreement.n} variants) between the pilot's ranking (final validation accuracy) and this table's"
                 + (" — an untuned pilot: it ran before tuning, every variant at the study's shared settings, so τ "
                    "says how well an untuned short run predicts the tuned study" if "tuned_key" in table.attrs else "")
                 + ".\n")
    return "\n".join(lines) + "\n" + note


MARKDOWN_SPECIAL = "\\|`*<>"


def markdown_cell(value) -> str:
    """A table cell's text with Markdown's and HTML's active characters escaped (a name cannot end the cell, start
    code, emphasis or a link, or inject a tag)."""
    text = "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in str(value).replace("\n", " "))
    return text.replace("](", "]\\(")


def to_latex(table: pd.DataFrame) -> str:
    """The table as a LaTeX tabular (booktabs), every cell escaped; ASCII but for what the replacements below make
    into TeX."""
    shown = display_table(table)
    shown.columns = [c.replace("Δ", "DELTAMARK").replace("α", "ALPHAMARK") for c in shown.columns]
    text = shown.to_latex(index=False, escape=True)
    return (text.replace("DELTAMARK", r"$\Delta$").replace("ALPHAMARK", r"$\alpha$").replace("–", "--")
            .replace("±", r"$\pm$"))
