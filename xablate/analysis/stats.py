"""Seed statistics: means with Student-t 95 % confidence intervals, and paired differences against a baseline.

Seeds are few (3-5), so intervals use the t distribution, not a normal approximation or a bootstrap; a
single seed gives an interval of NaN (no spread to estimate), which every verdict reads as inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
PAIRED_TEST = "paired t-test (two-sided), pairs matched by seed"


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def mean_ci(values, confidence: float = CONFIDENCE) -> Interval:
    """Mean and the t-based confidence interval of the mean (NaN bounds below two values)."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if len(x) < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Interval(mean, mean - half, mean + half, len(x))


@dataclass(frozen=True)
class PairedDifference:
    """variant - baseline over seeds both have."""

    interval: Interval
    p_value: float
    seeds: tuple[int, ...]
    test: str = PAIRED_TEST


def paired_difference(variant: dict[int, float], baseline: dict[int, float],
                      confidence: float = CONFIDENCE) -> PairedDifference:
    """Mean difference (variant - baseline) over the seeds both have, its CI, and the paired t-test's p."""
    seeds = tuple(sorted(set(variant) & set(baseline)))
    diffs = [variant[s] - baseline[s] for s in seeds]
    interval = mean_ci(diffs, confidence)
    if len(diffs) < 2:
        p = math.nan
    elif np.allclose(diffs, diffs[0]):
        p = 1.0 if diffs[0] == 0 else 0.0  # no spread: the t statistic is 0 or infinite
    else:
        p = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    return PairedDifference(interval, p, seeds)
