"""`xablate plan`: how many seeds a study needs to detect a given effect, from the runs it has so far.

For every comparison the study makes (each declared claim's, else each variant against the baseline) the
spread of the paired differences observed so far gives the seeds needed for the target minimum detectable
effect (two-sided paired t-test, alpha 0.05, 80 % power; noncentral t). The command that adds the missing
seeds and an estimate of their time from the runs' own durations come with it.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

import pandas as pd

from xablate.analysis.stats import paired_difference, seeds_needed
from xablate.analysis.store import Selection, with_history_measures
from xablate.analysis.tables import per_replicate


@dataclass
class Plan:
    study: str
    target: float
    rows: pd.DataFrame    # one row per comparison: metric, variant, other, pairs, sd, seeds_needed
    seeds_now: int
    seeds: int            # what the worst comparison needs
    command: str
    minutes: float        # estimated time of the runs to add


def _comparisons(selection: Selection) -> list[tuple[str, str, str]]:
    """(metric, variant, other) for each comparison the study makes."""
    if selection.study.claims:
        return [(c.metric, selection.variant_of(c.variant), selection.variant_of(o))
                for c in selection.study.claims for o in c.others]
    base = selection.baseline_label
    return [(selection.metric, v, base) for v in selection.variants if v != base]


def fresh_seeds(start: int, count: int, tune=None) -> list[int]:
    """`count` seeds from `start` up, past the tuning's seed band (tune.seeds_from: the tuning's replicates and a
    tie-break's), which no final run may repeat."""
    band = range(tune.seeds_from, tune.seeds_from + 2 * tune.seeds) if tune is not None and tune.seeds_from else range(0)
    out, seed = [], start
    while len(out) < count:
        if seed not in band:
            out.append(seed)
        seed += 1
    return out


def plan_seeds(selection: Selection, history: pd.DataFrame, target: float, arguments: list[str]) -> Plan:
    """Seeds per variant needed for a minimum detectable effect of `target` in every comparison."""
    runs = with_history_measures(selection.runs, history)
    rows = []
    for metric, variant, other in _comparisons(selection):
        diff = paired_difference(per_replicate(runs[runs["variant"] == variant], metric),
                                 per_replicate(runs[runs["variant"] == other], metric))
        sd = diff.interval.sd
        needed = seeds_needed(sd, target) if sd > 0 else math.nan
        rows.append({"metric": metric, "variant": variant, "other": other, "pairs": len(diff.replicates),
                     "sd": sd, "mde_now": diff.mde, "seeds_needed": needed})
    table = pd.DataFrame(rows, columns=["metric", "variant", "other", "pairs", "sd", "mde_now", "seeds_needed"])
    finished = runs[runs["status"] == "FINISHED"]
    seeds_now = int(finished.groupby("variant")["seed"].nunique().min()) if len(finished) else 0
    need = table["seeds_needed"].dropna()
    seeds = int(need.max()) if len(need) else seeds_now
    used = sorted(int(s) for s in finished["seed"].dropna().unique())
    fresh = fresh_seeds(max(used, default=-1) + 1, max(0, seeds - seeds_now), selection.study.tune)
    command = ""
    if fresh:
        args = list(arguments) + [f"seed={','.join(map(str, fresh))}"]
        command = "python run.py -m " + " ".join(shlex.quote(a) for a in args)
    per_run = finished["wall_seconds"].mean() if len(finished) else math.nan
    minutes = len(fresh) * len(selection.variants) * per_run / 60 if fresh else 0.0
    return Plan(selection.study.name, target, table, seeds_now, seeds, command, minutes)


def format_plan(plan: Plan) -> str:
    lines = [f"study {plan.study!r}: seeds per variant for a minimum detectable effect of {plan.target} "
             f"(80 % power, two-sided α = 0.05, paired by replicate)"]
    for row in plan.rows.itertuples():
        needed = "– (no spread yet: run at least 2 seeds of each)" if math.isnan(row.seeds_needed) else \
            str(int(row.seeds_needed))
        lines.append(f"  {row.metric}: {row.variant} vs {row.other}: {row.pairs} pairs, sd of differences "
                     f"{row.sd:.4f}, detectable now {row.mde_now:.4f} -> seeds needed {needed}")
    lines.append(f"seeds per variant now: {plan.seeds_now}; needed: {plan.seeds}")
    if plan.command:
        lines.append(f"to add them (about {plan.minutes:.0f} min at this study's own run time):")
        lines.append(f"  {plan.command}")
    else:
        lines.append("nothing to add")
    return "\n".join(lines)
