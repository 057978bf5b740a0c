"""Seed statistics: means with Student-t confidence intervals clipped to what the metric can be, paired
differences, Holm's step-down adjustment, non-inferiority and equivalence (TOST) tests, paired effect sizes, the
power of each test and the minimum detectable effect of a design.

Rules (each has a test on a made-up store whose answer is known in closed form, scipy as the reference):
- An interval needs two values and some spread: one value gives NaN bounds; zero spread gives NaN bounds too
  (a spread of exactly 0 over seeds says the design cannot see its noise, not that there is none), and every
  verdict reads NaN as inconclusive.
- Intervals of a bounded metric are clipped to its range (accuracy to [0, 1], a loss to [0, inf)).
- The minimum detectable effect (MDE) is the smallest true mean difference a two-sided paired t-test at level
  alpha detects with the given power, from the observed spread of the differences (noncentral t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8
PAIRED_TEST = "paired t-test (two-sided), pairs matched by replicate (seed, split)"
UNBOUNDED = (-math.inf, math.inf)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    sd: float = math.nan

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _clean(values) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)


def mean_ci(values, confidence: float = CONFIDENCE, bounds: tuple[float, float] = UNBOUNDED) -> Interval:
    """Mean and the t-based confidence interval of the mean, clipped to `bounds` (NaN bounds below two values
    or with zero spread)."""
    x = _clean(values)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if len(x) > 1 else math.nan
    if len(x) < 2 or sd == 0:
        return Interval(mean, math.nan, math.nan, len(x), sd)
    half = float(stats.t.ppf((1 + confidence) / 2, len(x) - 1) * sd / math.sqrt(len(x)))
    low, high = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return Interval(mean, low, high, len(x), sd)


def min_detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided one-sample (paired) t-test of n differences with standard
    deviation `sd` detects with probability `power` at level `alpha` (NaN below 2 values or without spread)."""
    if n < 2 or not sd > 0 or math.isnan(sd):
        return math.nan
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(effect):
        shift = effect / sd * math.sqrt(n)
        lower = stats.nct.cdf(-critical, df, shift)  # the wrong-sign rejections: NaN far out, where it is 0
        return stats.nct.sf(critical, df, shift) + (0.0 if math.isnan(lower) else lower) - power

    upper = sd * 1.0
    while shortfall(upper) < 0:
        upper *= 2
    return float(optimize.brentq(shortfall, 0.0, upper, xtol=sd * 1e-9))


def seeds_needed(sd: float, effect: float, alpha: float = ALPHA, power: float = POWER, most: int = 10_000) -> int:
    """The fewest paired replicates whose MDE is at most `effect` (differences with standard deviation `sd`)."""
    if not effect > 0:
        raise ValueError(f"Received effect={effect!r}; allowed: a number > 0.")
    if not sd > 0:
        return 2
    n = 2
    while min_detectable_effect(sd, n, alpha, power) > effect:
        n += 1 if n < 64 else max(1, n // 16)
        if n > most:
            return most
    return n


@dataclass(frozen=True)
class PairedDifference:
    """variant - baseline over the replicates both have."""

    interval: Interval
    p_value: float
    replicates: tuple
    mde: float
    test: str = PAIRED_TEST

    @property
    def seeds(self) -> tuple:  # the name tables have always used
        return self.replicates


def paired_difference(variant: dict, baseline: dict, confidence: float = CONFIDENCE,
                      power: float = POWER) -> PairedDifference:
    """Mean difference (variant - baseline) over the replicates both have, its CI, the paired t-test's
    two-sided p (NaN below two pairs or with zero spread), and the MDE of that design."""
    keys = tuple(sorted(set(variant) & set(baseline)))
    diffs = np.asarray([variant[k] - baseline[k] for k in keys], dtype=float)
    interval = mean_ci(diffs, confidence)
    if len(diffs) < 2 or not interval.sd > 0:
        p = math.nan
    else:
        p = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    return PairedDifference(interval, p, keys, min_detectable_effect(interval.sd, len(diffs), 1 - confidence, power))


def non_inferiority_p(differences, margin: float) -> float:
    """One-sided p of H0: mean difference <= -margin against H1: > -margin (NaN below 2 values or without spread)."""
    x = _clean(differences)
    if len(x) < 2 or not x.std(ddof=1) > 0:
        return math.nan
    return float(stats.ttest_1samp(x, -margin, alternative="greater").pvalue)


def equivalence_p(differences, margin: float) -> float:
    """Two one-sided tests (TOST) of H0: |mean difference| >= margin: the larger of the one-sided p-values of
    H0: mean <= -margin and H0: mean >= +margin (NaN below 2 values or without spread). Equivalence at level
    alpha when it is below alpha: the (1 - 2 alpha) interval lies inside (-margin, +margin)."""
    x = _clean(differences)
    if len(x) < 2 or not x.std(ddof=1) > 0:
        return math.nan
    lower = stats.ttest_1samp(x, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(x, margin, alternative="less").pvalue
    return float(max(lower, upper))


def cohens_dz(differences) -> float:
    """Paired Cohen's d (d_z): the mean difference over the standard deviation of the differences (NaN below 2
    values or without spread)."""
    x = _clean(differences)
    if len(x) < 2 or not x.std(ddof=1) > 0:
        return math.nan
    return float(x.mean() / x.std(ddof=1))


TESTS = ("superiority", "non_inferiority", "equivalence")


def power_of_test(test: str, effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """The power of the test a verdict does, for n paired differences with standard deviation `sd`
    (statsmodels' TTestPower; NaN below 2 values or without spread):

    superiority      two-sided paired t-test, a true difference of `effect`;
    non_inferiority  one-sided test against the margin `effect`, the true difference 0;
    equivalence      TOST with margin `effect`, the true difference 0: 2 x (one one-sided test's power) - 1,
                     the usual lower bound (exact when the power is high, never above it).
    """
    if test not in TESTS:
        raise ValueError(f"Received test={test!r}; allowed: {', '.join(TESTS)}.")
    if n < 2 or not sd > 0 or math.isnan(sd) or not effect > 0:
        return math.nan
    from statsmodels.stats.power import TTestPower

    if test == "superiority":
        power = float(TTestPower().power(effect / sd, n, alpha, alternative="two-sided"))
        if math.isnan(power):  # scipy's noncentral t is NaN far out in the wrong-sign tail, where it adds nothing
            power = float(TTestPower().power(effect / sd, n, alpha / 2, alternative="larger"))
        return power
    one_sided = float(TTestPower().power(effect / sd, n, alpha, alternative="larger"))
    return one_sided if test == "non_inferiority" else max(0.0, 2 * one_sided - 1)


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values over the whole family (a NaN p stays NaN)."""
    p = [(v, i) for i, v in enumerate(p_values) if not math.isnan(v)]
    adjusted = [math.nan] * len(p_values)
    m, running = len(p_values), 0.0  # a comparison without a p-value still counts in the family
    for rank, (value, index) in enumerate(sorted(p)):
        running = max(running, min(1.0, (m - rank) * value))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class RankAgreement:
    """Kendall's tau-b between two rankings of the same variants, with its two-sided p-value (scipy's exact
    null distribution where there are no ties, else its normal approximation)."""

    tau: float
    p_value: float
    n: int


def rank_agreement(pilot: dict, full: dict) -> RankAgreement:
    """How well a pilot's scores per variant order the variants as the full study does.

    Only variants scored (not NaN) in both count. Fewer than two, or a side with no spread at all, gives NaN:
    a ranking that does not order anything cannot agree or disagree.
    """
    common = [v for v in pilot if v in full and not (math.isnan(float(pilot[v])) or math.isnan(float(full[v])))]
    if len(common) < 2:
        return RankAgreement(math.nan, math.nan, len(common))
    a = np.array([float(pilot[v]) for v in common])
    b = np.array([float(full[v]) for v in common])
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return RankAgreement(math.nan, math.nan, len(common))
    result = stats.kendalltau(a, b)
    return RankAgreement(float(result.statistic), float(result.pvalue), len(common))


def confidence_label(confidence: float) -> str:
    """An interval's level as a reader sees it: 0.95 -> `95 % CI`, a Pocock look's 0.9779 -> `97.8 % CI`."""
    return f"{confidence * 100:.3g} % CI"
