"""The paper's claims against the runs: reproduced / contradicted / inconclusive at this scale.

A claim "A beats B" is reproduced when the paired difference A - B (seeds matched) has a 95 % confidence
interval above 0, contradicted when it lies below 0, and inconclusive otherwise (including fewer than two
paired seeds). Final accuracy uses the last epoch's validation accuracy; convergence uses the mean validation
accuracy over all epochs (the area under the Fig. 9/10 curve divided by the number of epochs).
"""

from __future__ import annotations

import pandas as pd

from xablate.analysis.stats import PairedDifference, paired_difference
from xablate.analysis.tables import per_seed

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"


def decide(diff: PairedDifference) -> str:
    low, high = diff.interval.low, diff.interval.high
    if low > 0:
        return REPRODUCED
    if high < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def _evidence(name: str, diff: PairedDifference) -> str:
    i = diff.interval
    return (f"{name}: {i.mean:+.4f} [{i.low:+.4f}, {i.high:+.4f}], p={diff.p_value:.3g}, "
            f"n={len(diff.seeds)} seeds")


def with_mean_val_accuracy(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Adds `mean_val_accuracy`: each run's validation accuracy averaged over its epochs."""
    means = history[history["metric"] == "val_accuracy"].groupby("run_id")["value"].mean()
    return runs.assign(mean_val_accuracy=runs["run_id"].map(means))


def _beats(runs, axis, winner, loser, metric) -> PairedDifference:
    return paired_difference(per_seed(runs[runs[axis] == winner], metric),
                             per_seed(runs[runs[axis] == loser], metric))


def _all_of(decisions: list[str]) -> str:
    if all(d == REPRODUCED for d in decisions):
        return REPRODUCED
    return CONTRADICTED if CONTRADICTED in decisions else INCONCLUSIVE


def fig9_claims(runs: pd.DataFrame) -> list[dict]:
    rows = []
    for metric, claim in [("final_val_accuracy", "residual connections improve final accuracy (Fig. 9)"),
                          ("mean_val_accuracy", "residual connections speed up convergence (Fig. 9)")]:
        diff = _beats(runs, "residual", True, False, metric)
        rows.append({"study": "fig9_residual", "claim": claim, "verdict": decide(diff),
                     "evidence": _evidence(f"{metric} residual - none", diff)})
    return rows


def fig10_claims(runs: pd.DataFrame) -> list[dict]:
    rows = []
    for metric, claim in [
        ("final_val_accuracy", "no intermediate activation beats ELU and ReLU in final accuracy (Fig. 10)"),
        ("mean_val_accuracy", "no intermediate activation converges faster than ELU and ReLU (Fig. 10)"),
    ]:
        diffs = {act: _beats(runs, "intermediate_act", "none", act, metric) for act in ("elu", "relu")}
        rows.append({"study": "fig10_intermediate_act", "claim": claim,
                     "verdict": _all_of([decide(d) for d in diffs.values()]),
                     "evidence": "; ".join(_evidence(f"{metric} none - {a}", d) for a, d in diffs.items())})
    return rows


def spectrum_claims(runs: pd.DataFrame) -> list[dict]:
    """Xception's hypothesis: the depthwise end of the spectrum is best. Contradicted when some other point is
    significantly better than depthwise, reproduced when every other point is significantly worse."""
    finished = runs[runs["status"] == "FINISHED"]
    means = finished.groupby("segments")["final_val_accuracy"].mean()
    peak = means.idxmax() if len(means) else "–"
    others = sorted((s for s in means.index if s != "depthwise"), key=int)
    diffs = {s: _beats(runs, "segments", s, "depthwise", "final_val_accuracy") for s in others}
    decisions = [decide(d) for d in diffs.values()]
    if "depthwise" not in means.index or not diffs:
        verdict = INCONCLUSIVE
    elif REPRODUCED in decisions:  # some k beats depthwise
        verdict = CONTRADICTED
    elif all(d == CONTRADICTED for d in decisions):  # every k is worse than depthwise
        verdict = REPRODUCED
    else:
        verdict = INCONCLUSIVE
    if not len(means):
        evidence = "no finished runs"
    else:
        evidence = f"peak at segments={peak} (mean {means.max():.4f}); " + "; ".join(
            _evidence(f"k={s} - depthwise", d) for s, d in diffs.items())
    return [{"study": "spectrum", "claim": "the spectrum peaks at the depthwise end (Xception's hypothesis)",
             "verdict": verdict, "evidence": evidence}]


CLAIMS = {"fig9_residual": fig9_claims, "fig10_intermediate_act": fig10_claims, "spectrum": spectrum_claims}


def verdict_table(studies: dict[str, tuple[pd.DataFrame, pd.DataFrame]]) -> pd.DataFrame:
    """One row per paper claim, for each study given as {name: (runs, history)}."""
    rows = []
    for name, (runs, history) in studies.items():
        if name in CLAIMS and len(runs):
            rows += CLAIMS[name](with_mean_val_accuracy(runs, history))
    return pd.DataFrame(rows, columns=["study", "claim", "verdict", "evidence"])
