"""What seeds-until-decided saves: the group-sequential rule replayed over a store's studies.

For each study with claims, its seeds are taken in order and analysed at looks 3, 5, 10 (capped at the seeds the
study has; its own seed count is always the last look), with each spending rule; the study stops at the first
look that decides every claim. Against the fixed design (all its seeds, alpha = 0.05) the row says how many runs
each needed and whether the outcomes agree. Nothing is trained: `xablate bench sequential` reads the store.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xablate.analysis.sequential import SPENDING, SequentialSpec
from xablate.analysis.verdicts import INCONCLUSIVE, verdict_tables
from xablate.bench.report import write_csv

COLUMNS = ["study", "spending", "looks", "variants", "fixed_seeds", "fixed_runs", "fixed_outcomes", "stopped_at",
           "sequential_runs", "sequential_outcomes", "same_outcomes", "runs_ratio"]
LOOKS = (3, 5, 10)


def replay(selection, history, spending: str) -> dict:
    """One study replayed under one spending rule (its claims, its seeds in order)."""
    seeds = sorted({int(s) for s in selection.runs["seed"]})
    looks = tuple(sorted({*(n for n in LOOKS if 2 <= n < len(seeds)), len(seeds)}))
    variants = selection.runs["variant"].nunique()
    fixed_table, _ = verdict_tables([(selection, history)], uncertainty=False)
    fixed = list(fixed_table["verdict"])
    study = dataclasses.replace(selection.study, sequential=SequentialSpec(looks, spending))
    table, rows = verdict_tables([(dataclasses.replace(selection, study=study), history)], uncertainty=False)
    decided = (table["verdict"] != INCONCLUSIVE).all()
    stopped = int(rows["n"].max()) if decided else looks[-1]
    return {"study": selection.study.name, "spending": spending, "looks": " ".join(map(str, looks)),
            "variants": variants, "fixed_seeds": len(seeds), "fixed_runs": variants * len(seeds),
            "fixed_outcomes": "; ".join(fixed), "stopped_at": stopped, "sequential_runs": variants * stopped,
            "sequential_outcomes": "; ".join(table["verdict"]), "same_outcomes": fixed == list(table["verdict"]),
            "runs_ratio": round(stopped / len(seeds), 3)}


def measure(uri: str, studies: list[str]) -> list[dict]:
    from xablate.analysis.report import selected_runs
    from xablate.analysis.store import HISTORY_MEASURES, history_frame

    rows = []
    for name in studies:
        selection = selected_runs(uri, name)
        if selection.runs.empty or not selection.study.claims:
            continue
        history = history_frame(uri, selection.runs, metrics=HISTORY_MEASURES, axes=selection.axes)
        rows += [replay(selection, history, spending) for spending in SPENDING]
    return rows


def write(rows: list[dict], out: Path) -> Path:
    return write_csv(rows, out, COLUMNS)
