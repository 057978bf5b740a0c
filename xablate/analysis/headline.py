"""The headline: the pre-registered claims only, one row each, in the words a reader of a paper expects.

A claim is headline material when it was recorded before its study's first run (xablate.analysis.registration);
exploratory claims (the digits smoke reproduction, a claim written after its runs) stay in verdict.md. Each
row gives the paper's claim, the outcome, every comparison's difference (variant − baseline in the metric's
units) with its interval, the seeds it rests on and where the sequential design stands, and, on the study's
first row, what the whole study cost on the machine that ran it (pilot, tuning with its pruned trials, final).
"""

from __future__ import annotations

import math
import re

import pandas as pd

from xablate.analysis.registration import PRE_REGISTERED
from xablate.analysis.sensitivity import before_final_share
from xablate.analysis.stats import confidence_label
from xablate.studies import METRICS

HEADER = ["study (data)", "the paper's claim", "outcome", "effect, variant − baseline [CI]", "seeds",
          "cost of the study"]


def natural_key(name: str) -> list:
    """`fashion_fig9` before `fashion_fig10`: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def describe_effects(compared: pd.DataFrame) -> str:
    """Each comparison's difference and interval in the metric's units, e.g. `elu − none: -0.0040 [...]`; a
    comparison of cells of several axes names only what differs, and what the two share after `at`:
    `none − elu at lr=0.00187` (matched), `act=none · lr=0.00187 − act=elu · lr=0.00311` (each at its own)."""
    if compared.empty:
        return ""
    if compared["n"].max() < 2:
        return "— (no paired seeds yet)"
    metric = compared["metric"].iloc[0]
    label, higher, _ = METRICS.get(metric, (metric, True, None))
    pairs = [(_settings(c.variant), _settings(c.baseline)) for c in compared.itertuples()]
    if all(v is not None and b is not None and v.keys() == b.keys() for v, b in pairs):
        differing = {key for v, b in pairs for key in v if v[key] != b[key]}
        axis = next(iter(differing)) if len(differing) == 1 else None
        texts = [_difference(v, b, axis) for v, b in pairs]
    else:  # labels that are not axis=value settings: as they are
        axis, texts = None, [f"{c.variant} − {c.baseline}" for c in compared.itertuples()]
    several = len(compared) > 1  # each comparison's own outcome, when the claim's combines several
    parts = [f"{text}: {c.delta:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]"
             + (f" {c.outcome}" if several and isinstance(getattr(c, "outcome", None), str) else "")
             for text, c in zip(texts, compared.itertuples())]
    levels = sorted(set(compared["confidence"].dropna())) if "confidence" in compared else []
    level = f", {confidence_label(levels[0])}" if len(levels) == 1 else ""
    prefix = f"{label}{'' if higher else ', lower is better'}{level}" + (f"; {axis}" if axis else "")
    return f"{prefix}: " + "; ".join(parts)


def _settings(label) -> dict[str, str] | None:
    """`intermediate_act=none,optim.learning_rate=0.00187` as {axis: value}; None for any other label."""
    parts = str(label).split(",")
    if not all("=" in part for part in parts):
        return None
    return dict(part.split("=", 1) for part in parts)


def _difference(variant: dict, baseline: dict, axis: str | None) -> str:
    """One comparison's `variant − baseline`: values only where the claim varies one axis (`axis`), else each
    differing setting as run names show it; the settings both share after `at`."""
    from xablate.config import short_name

    def named(settings: dict, keys) -> str:
        return " · ".join(f"{short_name(key)}={settings[key]}" for key in keys)

    differ = [key for key in variant if variant[key] != baseline[key]]
    shared = [key for key in variant if variant[key] == baseline[key]]
    if not differ:  # the same cell on both sides: its whole label
        return f"{named(variant, shared)} − {named(baseline, shared)}"
    if axis is not None:
        text = f"{variant[axis]} − {baseline[axis]}"
    else:
        text = f"{named(variant, differ)} − {named(baseline, differ)}"
    return text + (f" at {named(variant, shared)}" if shared else "")


def describe_seeds(compared: pd.DataFrame) -> str:
    """The paired seeds per comparison and the sequential look the outcome was read at (verdict.csv's look_number,
    looks_planned and next_look_n: empty in a fixed design, look 0 before the first look)."""
    if compared.empty:
        return ""
    n = int(compared["n"].max())
    first = compared.iloc[0]
    if pd.isna(first["look_number"]):
        return str(n)
    planned = int(first["looks_planned"])
    if int(first["look_number"]) == 0:
        return f"{n} of {int(first['next_look_n'])} so far"
    going_on = f"; continuing to n={int(first['next_look_n'])}" if continuing(compared) else ""
    return f"{n} (look {int(first['look_number'])} of {planned}{going_on})"


def _has_read(comparisons: pd.DataFrame, study: str) -> bool:
    """Whether `study` has read its claims: comparisons with paired seeds, past its first look."""
    if not len(comparisons):
        return False
    rows = comparisons[comparisons["study"] == study]
    return bool(len(rows)) and rows["n"].max() >= 2 and not before_first_look(rows)


def before_first_look(compared: pd.DataFrame) -> bool:
    return bool((compared["look_number"] == 0).any())


def continuing(compared: pd.DataFrame) -> bool:
    """Whether the sequential design goes on past the look this outcome was read at."""
    return bool(((compared["look_number"] > 0) & compared["next_look_n"].notna()).any())


def describe_cost(costs: pd.DataFrame) -> str:
    """A study's runs (pruned among them), its wall time summed over runs, and the share of epochs spent before
    the final stage (pilot and tuning)."""
    if costs.empty:
        return ""
    runs, pruned = int(costs["runs"].sum()), int(costs["pruned"].sum())
    wall = costs["wall_hours"].sum(min_count=1)
    hours = wall if not math.isnan(wall) else costs["hours"].sum()
    text = f"{runs} runs" + (f" ({pruned} pruned)" if pruned else "") + f", {hours:.1f} h of runs"
    before = before_final_share(costs)
    if before:
        text += f"; tuning {before:.0%} of epochs"
    return text


CAVEATS = {  # what the verdict row says that the headline's reader must see beside the outcome
    "differs between these variants by construction": "the loss includes a weight penalty that differs between "
                                                      "the variants by construction",
    "different tuned settings": "each variant at its own tuned setting, not at a shared one",
    "tuning not saturated": "a variant's tuning not saturated: verdict.md says why",
    "tuned on the finals' seeds": "tuned on seeds its final runs reuse: verdict.md says why",
}


def caveats(evidence: str) -> str:
    """The caveats of a verdict row, in words, for the headline's outcome cell."""
    found = [words for marker, words in CAVEATS.items() if marker in str(evidence)]
    return f" ({'; '.join(found)})" if found else ""


def headline_markdown(table: pd.DataFrame, comparisons: pd.DataFrame, costs: dict[str, pd.DataFrame],
                      data: dict[str, str], supersedes: dict[str, tuple[str, ...]] | None = None) -> str:
    """The headline table of the pre-registered rows of `table` (verdict rows) and `comparisons`; `costs`:
    per study, sensitivity.stage_costs; `data`: per study, what it ran on (e.g. its data.source); `supersedes`:
    {study: the earlier studies it supersedes (analysis.supersedes)}, whose rows give way once it has read its
    claims (at its first look, or with any runs in a fixed design)."""
    superseded = {old: new for new, olds in (supersedes or {}).items() if _has_read(comparisons, new) for old in olds}
    rows = table[table["registration"].astype(str).str.startswith(PRE_REGISTERED)] if len(table) else table
    rows = rows[~rows["study"].isin(list(superseded))] if len(rows) else rows
    if rows.empty:
        return ("No claim in the store was recorded before its study's first run, so there is no headline yet; "
                "every claim's verdict, exploratory ones included, is in verdict.md.\n")
    order = {name: i for i, name in enumerate(sorted(set(rows["study"]), key=natural_key))}
    rows = rows.sort_values("study", key=lambda names: names.map(order), kind="stable")  # fig9 before fig10
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    seen = set()
    for row in rows.itertuples():
        compared = comparisons[(comparisons["study"] == row.study) & (comparisons["claim"] == row.claim)]
        if before_first_look(compared):
            outcome = "running (before the first look)"
        else:
            outcome = f"**{row.verdict}**" + (" so far" if continuing(compared) else "") + caveats(row.evidence)
        cost = describe_cost(costs.get(row.study, pd.DataFrame())) if row.study not in seen else "″"
        seen.add(row.study)
        study = f"{row.study} ({data[row.study]})" if data.get(row.study) else row.study
        lines.append(f"| {study} | {row.claim} | {outcome} | {describe_effects(compared)} | "
                     f"{describe_seeds(compared)} | {cost} |")
    lines += ["", "Only the claims recorded before their study's first run (pre-registered); every claim, the "
              "exploratory ones too, with p values, effect sizes and power, is in verdict.md. Effect: the paired "
              "difference over seeds, variant − baseline, with its interval at the level the verdict read it (95 %, "
              "or at a sequential look its nominal level, wider), and, where a claim compares several variants, "
              "each comparison's own outcome (the claim holds when all do). Seeds: "
              "paired replicates per comparison, and the sequential look the outcome was read at (\"so far\": not "
              "yet decided, more seeds follow). Cost: every run of the study (pilot, tuning with its pruned trials, "
              "final), its hours summed run by run on the machine that ran it."]
    if superseded:
        lines += ["", "Superseded (their rows stay in verdict.md, read as before): " + "; ".join(
            f"{old} by {new}" for old, new in sorted(superseded.items(), key=lambda item: natural_key(item[0])))
            + "."]
    return "\n".join(lines) + "\n"
