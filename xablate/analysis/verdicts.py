"""A study's declared claims against its runs: reproduced / contradicted / inconclusive, each with the
smallest effect the design could have detected.

Claims come from the study's file (xablate/studies.py). For a claim over m comparisons (one variant against
each of m others), differences are paired by replicate (seed, split) and signed so that positive favours the
claim (for a metric where lower is better, other - variant). Diverged runs are scored, not dropped: an
accuracy at chance, a loss at the worst value reached in the study (xablate.analysis.store.scored).

- `better` (superiority): each comparison's two-sided paired t-test; p-values Holm-adjusted across the m
  comparisons. A comparison is reproduced when its adjusted p < 0.05 and the mean difference favours the
  claim, contradicted when adjusted p < 0.05 against it, else inconclusive.
- `no_worse` (non-inferiority with margin M): H0 "worse by at least M" tested one-sided; Holm across the m
  comparisons. Reproduced when adjusted p < 0.05; contradicted when the 95 % CI of the difference lies wholly
  below -M (worse by more than the margin); else inconclusive.
- Fewer than two pairs, or zero spread of the differences: inconclusive (no noise estimate, so no test).
- The claim is reproduced when every comparison is, contradicted when any is, else inconclusive.
Every comparison reports its minimum detectable effect (80 % power, two-sided alpha 0.05, from the observed
spread), so "inconclusive" reads "could not have detected effects smaller than X".
"""

from __future__ import annotations

import math

import pandas as pd

from xablate.analysis.stats import ALPHA, holm, non_inferiority_p, paired_difference
from xablate.analysis.store import Selection, with_history_measures
from xablate.analysis.tables import per_replicate
from xablate.studies import METRICS, Claim

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
VERDICT_COLUMNS = ["study", "claim", "metric", "verdict", "evidence", "mde"]


def decide_comparison(kind: str, mean: float, low: float, high: float, p_adjusted: float, margin: float) -> str:
    """One comparison's verdict from its signed difference (positive favours the claim)."""
    if math.isnan(p_adjusted):
        return INCONCLUSIVE
    if kind == "better":
        if p_adjusted < ALPHA:
            return REPRODUCED if mean > 0 else CONTRADICTED
        return INCONCLUSIVE
    if p_adjusted < ALPHA:
        return REPRODUCED
    return CONTRADICTED if high < -margin else INCONCLUSIVE


def combine(decisions: list[str]) -> str:
    if decisions and all(d == REPRODUCED for d in decisions):
        return REPRODUCED
    return CONTRADICTED if CONTRADICTED in decisions else INCONCLUSIVE


def evaluate_claim(selection: Selection, claim: Claim) -> dict:
    """The verdict row of one claim."""
    runs = selection.runs
    sign = 1.0 if METRICS[claim.metric][1] else -1.0
    mine = per_replicate(runs[runs["variant"] == selection.variant_of(claim.variant)], claim.metric)
    rows = []
    for other in claim.others:
        label = selection.variant_of(other)
        theirs = per_replicate(runs[runs["variant"] == label], claim.metric)
        signed_mine = {k: sign * v for k, v in mine.items()}
        signed_theirs = {k: sign * v for k, v in theirs.items()}
        diff = paired_difference(signed_mine, signed_theirs)
        if claim.kind == "no_worse":
            keys = diff.replicates
            p = non_inferiority_p([signed_mine[k] - signed_theirs[k] for k in keys], claim.margin)
        else:
            p = diff.p_value
        rows.append((label, diff, p))
    adjusted = holm([p for _, _, p in rows])
    decisions, parts, mdes = [], [], []
    for (label, diff, p), p_adj in zip(rows, adjusted):
        i = diff.interval
        decisions.append(decide_comparison(claim.kind, i.mean, i.low, i.high, p_adj, claim.margin))
        mdes.append(diff.mde)
        why = ""
        if len(diff.replicates) < 2:
            why = " (fewer than 2 paired seeds: no test)"
        elif not i.sd > 0:
            why = " (zero spread of the differences: no noise estimate, no test)"
        parts.append(f"vs {label}: {i.mean:+.4f} [{i.low:+.4f}, {i.high:+.4f}], p={p:.3g}, Holm p={p_adj:.3g}, "
                     f"n={len(diff.replicates)}, MDE={diff.mde:.4f}{why}")
    verdict = combine(decisions)
    worst_mde = max((m for m in mdes if not math.isnan(m)), default=math.nan)
    direction = "" if METRICS[claim.metric][1] else " (sign: lower is better, so + favours the claim)"
    evidence = f"{claim.metric}{direction}" + (f", margin {claim.margin}" if claim.kind == "no_worse" else "") + \
        "; " + "; ".join(parts)
    if verdict == INCONCLUSIVE and not math.isnan(worst_mde):
        evidence += f" — could not have detected differences smaller than {worst_mde:.4f}"
    return {"study": selection.study.name, "claim": claim.text, "metric": claim.metric, "verdict": verdict,
            "evidence": evidence, "mde": worst_mde}


def verdict_table(selections: list[tuple[Selection, pd.DataFrame]]) -> pd.DataFrame:
    """One row per declared claim of each study, given as (selection, history)."""
    rows = []
    for selection, history in selections:
        if selection.runs.empty or not selection.study.claims:
            continue
        selection.runs = with_history_measures(selection.runs, history)
        rows += [evaluate_claim(selection, claim) for claim in selection.study.claims]
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)
