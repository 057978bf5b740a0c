"""Per-study tables: per variant mean +- 95 % CI over seeds, divergences and failures, and the paired difference from the
study's baseline (same seed paired), as a DataFrame and as CSV / Markdown / LaTeX text."""

from __future__ import annotations

import math

import pandas as pd

from xablate.analysis.stats import PAIRED_TEST, mean_ci, paired_difference

TABLE_COLUMNS = [
    "variant", "seeds", "diverged", "failed", "running", "final_mean", "final_low", "final_high", "best_mean", "best_low", "best_high",
    "diff_mean", "diff_low", "diff_high", "p_value", "paired_seeds",
]


def ordered_values(runs: pd.DataFrame, axis: str, baseline) -> list:
    """The axis values of a study, baseline first, then in the order the runs were made."""
    values = list(dict.fromkeys(runs[axis].tolist()))
    return [baseline] + [v for v in values if v != baseline] if baseline in values else values


def per_seed(runs: pd.DataFrame, metric: str) -> dict[int, float]:
    finished = runs[runs["status"] == "FINISHED"]
    return {int(s): float(v) for s, v in zip(finished["seed"], finished[metric])}


def variant_table(runs: pd.DataFrame, axis: str, baseline, metric: str = "final_val_accuracy") -> pd.DataFrame:
    """One row per value of `axis`: seeds finished, failures, final/best validation accuracy mean and 95 % CI,
    and `metric`'s paired difference from the baseline value (variant - baseline), its CI and p-value."""
    base = per_seed(runs[runs[axis] == baseline], metric)
    rows = []
    for value in ordered_values(runs, axis, baseline):
        group = runs[runs[axis] == value]
        finished = group[group["status"] == "FINISHED"]
        final = mean_ci(finished["final_val_accuracy"].tolist())
        best = mean_ci(finished["best_val_accuracy"].tolist())
        running = int(group["status"].isin(["RUNNING", "SCHEDULED"]).sum())
        diverged = int((group["outcome"] == "diverged").sum())  # a result of the variant, not a crash
        row = {"variant": f"{axis}={value}", "seeds": len(finished), "diverged": diverged,
               "failed": len(group) - len(finished) - running - diverged, "running": running,
               "final_mean": final.mean, "final_low": final.low, "final_high": final.high,
               "best_mean": best.mean, "best_low": best.low, "best_high": best.high,
               "diff_mean": math.nan, "diff_low": math.nan, "diff_high": math.nan, "p_value": math.nan,
               "paired_seeds": 0}
        if value != baseline:
            diff = paired_difference(per_seed(group, metric), base)
            row.update(diff_mean=diff.interval.mean, diff_low=diff.interval.low, diff_high=diff.interval.high,
                       p_value=diff.p_value, paired_seeds=len(diff.seeds))
        rows.append(row)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table.attrs.update(axis=axis, baseline=f"{axis}={baseline}", metric=metric, test=PAIRED_TEST)
    return table


def _fmt(mean, low, high, digits=4) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as strings, mean ± CI half-width, ready for Markdown or LaTeX."""
    baseline = table.attrs.get("baseline", "baseline")
    return pd.DataFrame({
        "variant": table["variant"],
        "seeds": table["seeds"],
        "diverged": table["diverged"],
        "failed": table["failed"],
        "final val acc (mean ± 95 % CI)": [_fmt(*r) for r in table[["final_mean", "final_low", "final_high"]].values],
        "best val acc (mean ± 95 % CI)": [_fmt(*r) for r in table[["best_mean", "best_low", "best_high"]].values],
        f"Δ vs {baseline} (paired)": [_fmt(*r) for r in table[["diff_mean", "diff_low", "diff_high"]].values],
        "p": ["–" if math.isnan(p) else f"{p:.3g}" for p in table["p_value"]],
    })


def to_markdown(table: pd.DataFrame) -> str:
    shown = display_table(table)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.values]
    note = f"\nΔ: {table.attrs.get('metric', '')} of the variant minus the baseline; {table.attrs.get('test', '')}.\n"
    return "\n".join(lines) + "\n" + note


def to_latex(table: pd.DataFrame) -> str:
    return display_table(table).to_latex(index=False).replace("±", r"$\pm$").replace("Δ", r"$\Delta$")
