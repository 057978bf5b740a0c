"""Whether a study's tuning earned its name: the expected best score against the number of finished trials, and
the flags a verdict row carries when it did not.

Dodge et al. (2019, "Show your work") report, per variant, the expected best validation score of n trials drawn
from the search (the average tuning curve); Lourie et al. (2023) give it distribution-free confidence bands from
simultaneous bands on the scores' CDF (the `opda` package, used here for both). A variant's tuning is flagged
`tuning not saturated` when

- fewer than MIN_TRIALS of its trials finished (pruned scouts are not draws from the search's score
  distribution: they stopped early);
- its curve is still rising at the budget: doubling the finished trials is expected to gain more than TOLERANCE
  in the tuning metric (E[best of 2N] - E[best of N], from the empirical distribution);
- its choice sits at the edge of the searched range (within EDGE of a bound, in decades on a log scale); or
- its best two finished trials tie exactly, so the choice between them was made by trial order (a tie the
  staged sweeper broke with more seeds reads as no tie: those seeds enter the trials' means); or
- its trials trained fewer epochs than the final runs (the tuning's budget was not the final recipe).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MIN_TRIALS = 4
TOLERANCE = 0.002  # in the tuning metric's units: a fifth of a point of validation accuracy
EDGE = 0.10  # of the range's width (log10 width for a log-uniform range): its top or bottom tenth
CONFIDENCE = 0.80  # the bands' simultaneous coverage (Lourie et al. draw 80 %)
BOUNDS = (0.0, 1.0)  # the support of an accuracy (the bands need it; a loss is unbounded above)


def finished_scores(trials: pd.DataFrame, variant: str) -> np.ndarray:
    """The mean score of each of a variant's trials whose seeds all finished (xablate.analysis.sensitivity's
    trial table, higher is better), in trial order."""
    mine = trials[(trials["variant"] == variant) & (trials["pruned"] == 0) & (trials["n"] > 0)]
    return mine["mean"].dropna().to_numpy(dtype=float)


def tuning_curve(scores, ns, bounded: bool = True) -> pd.DataFrame:
    """The expected best of n trials (opda's average tuning curve) at each n, with its distribution-free band
    (opda's Learned-Miller-DeStefano CDF bands, equal-tailed, at CONFIDENCE): columns n, expected, low, high."""
    from opda.nonparametric import EmpiricalDistribution

    ys = np.asarray(scores, dtype=float)
    ns = np.asarray(ns, dtype=float)
    point = EmpiricalDistribution(ys).average_tuning_curve(ns)
    if len(ys) < 2:
        return pd.DataFrame({"n": ns, "expected": point, "low": math.nan, "high": math.nan})
    a, b = BOUNDS if bounded else (-np.inf, np.inf)
    lower_cdf, _, upper_cdf = EmpiricalDistribution.confidence_bands(
        ys, CONFIDENCE, a=a, b=b, method="ld_equal_tailed", generator=np.random.default_rng(0), n_jobs=1)
    # a higher CDF is a stochastically smaller score: the upper CDF band gives the lower tuning curve
    low, high = upper_cdf.average_tuning_curve(ns), lower_cdf.average_tuning_curve(ns)
    if not bounded:
        low, high = np.where(np.isfinite(low), low, np.nan), np.where(np.isfinite(high), high, np.nan)
    return pd.DataFrame({"n": ns, "expected": point, "low": low, "high": high})


def saturation_flags(scores, chosen: dict, space: dict, grid: list | None = None) -> list[str]:
    """Why a variant's tuning is not saturated (empty: it is): see the module's rules. `chosen`: its tuned values;
    `space`: the search's {key: (distribution, [low, high])}; `grid`: the grid form's candidate values."""
    from opda.nonparametric import EmpiricalDistribution

    ys = np.asarray(scores, dtype=float)
    flags = []
    if len(ys) < MIN_TRIALS:
        flags.append(f"{len(ys)} finished trial{'s' if len(ys) != 1 else ''} (fewer than {MIN_TRIALS})")
    if len(ys):
        now, doubled = EmpiricalDistribution(ys).average_tuning_curve(np.array([len(ys), 2 * len(ys)]))
        if doubled - now > TOLERANCE:
            flags.append(f"still rising at {len(ys)} trials (doubling them: +{doubled - now:.4f} expected)")
        top = np.sort(ys)[::-1]
        if len(top) > 1 and top[0] == top[1]:
            flags.append(f"its best two trials tie ({top[0]:.4f}): chosen by trial order")
    for key, value in chosen.items():
        for one in value if isinstance(value, list) else [value]:  # repeated tuning: each repeat's choice
            edge = _edge(key, one, space.get(key), grid)
            if edge:
                flags.append(edge)
    return flags


def _edge(key: str, value, dimension, grid) -> str:
    name = key.rsplit(".", 1)[-1]
    if dimension is None:
        values = sorted(v for v in grid or [] if isinstance(v, (int, float)))
        if len(values) > 2 and value in (values[0], values[-1]):
            return f"{name} {value:g} is the grid's {'lowest' if value == values[0] else 'highest'} value"
        return ""
    kind, (low, high) = dimension
    if kind == "choice" or not isinstance(value, (int, float)):
        return ""
    if kind == "log_uniform":
        width, below, above = math.log10(high / low), math.log10(value / low), math.log10(high / value)
        unit = " decades"
    else:
        width, below, above, unit = high - low, value - low, high - value, ""
    if min(below, above) <= EDGE * width:
        side, gap = ("upper", above) if above < below else ("lower", below)
        return (f"{name} {value:.3g} sits at the edge of the searched range ({gap:.2g}{unit} from its {side} "
                f"bound {high if side == 'upper' else low:g})")
    return ""
