"""Seeds until decided: group-sequential analysis with Lan-DeMets alpha spending.

A study may declare, in its analysis block,

    sequential: {looks: [3, 5, 10, 20], spending: obrien_fleming}   # or pocock; alpha: 0.05 (default)

The staged sweeper then runs the study's seeds up to the first look, analyses every claim, and adds seeds up to
the next look only while some claim is undecided (hydra_plugins/xablate_sweeper). At look k of K, with
information fraction t_k = n_k / n_K (seeds per variant), the test may spend alpha*(t_k) in all:

    obrien_fleming   alpha*(t) = 2 - 2 Phi(z_{1-a/2} / sqrt(t)) per side, a = alpha / sides
    pocock           alpha*(t) = alpha ln(1 + (e - 1) t)

The boundary c_k solves P(|Z_1| < c_1, ..., |Z_k| < c_k) = 1 - alpha*(t_k) for the standardised statistics of
the looks, jointly normal with corr(Z_i, Z_j) = sqrt(t_i / t_j) (scipy's multivariate normal; one-sided tests
without the absolute values). A claim's test at look k is significant when its p-value is below the nominal
level of c_k (2 (1 - Phi(c_k)) two-sided, 1 - Phi(c_k) one-sided) — the usual p-value form of the boundaries,
with the paired t-test's p at each look. A claim decided at a look (reproduced, non-inferior, equivalent or
contradicted) keeps that outcome; the study stops when every claim is decided or the last look is reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

SPENDING = ("obrien_fleming", "pocock")


@dataclass(frozen=True)
class SequentialSpec:
    looks: tuple[int, ...]  # seeds per variant at each analysis, increasing
    spending: str = "obrien_fleming"
    alpha: float = 0.05

    def nominal(self, look: int, sides: int) -> float:
        """The nominal p-value level of look `look` (0-based) for a two-sided (2) or one-sided (1) test."""
        c = boundaries(tuple(n / self.looks[-1] for n in self.looks), self.alpha, self.spending, sides)[look]
        return float(sides * stats.norm.sf(c))


def parse_sequential(block, at: str = "") -> SequentialSpec | None:
    """analysis.sequential (None when absent); errors name the setting, the value and what is allowed."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ValueError(f"Received analysis.sequential={block!r}{at}; allowed: a mapping with looks and spending.")
    unknown = sorted(set(block) - {"looks", "spending", "alpha"})
    if unknown:
        raise ValueError(f"Received analysis.sequential.{unknown[0]}={block[unknown[0]]!r}{at}; allowed: looks, "
                         f"spending, alpha.")
    looks = block.get("looks")
    if (not isinstance(looks, list) or not looks
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 2 for n in looks)
            or any(b <= a for a, b in zip(looks, looks[1:]))):
        raise ValueError(f"Received analysis.sequential.looks={looks!r}{at}; allowed: increasing integers >= 2 "
                         f"(seeds per variant at each analysis), e.g. [3, 5, 10, 20].")
    spending = block.get("spending", "obrien_fleming")
    if spending not in SPENDING:
        raise ValueError(f"Received analysis.sequential.spending={spending!r}{at}; allowed: {', '.join(SPENDING)}.")
    alpha = block.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
        raise ValueError(f"Received analysis.sequential.alpha={alpha!r}{at}; allowed: a number in (0, 0.5).")
    return SequentialSpec(tuple(looks), spending, float(alpha))


def spent(t: float, alpha: float, spending: str, sides: int = 2) -> float:
    """The error the test may have spent by information fraction t (Lan-DeMets)."""
    if spending == "obrien_fleming":  # each side at alpha / sides: 2 - 2 Phi(z_{1 - alpha/(2 sides)} / sqrt(t))
        return float(sides * 2 * stats.norm.sf(stats.norm.isf(alpha / sides / 2) / math.sqrt(t))) if t > 0 else 0.0
    if spending == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"Received spending={spending!r}; allowed: {', '.join(SPENDING)}.")


def _no_crossing(limits: list[float], fractions: tuple[float, ...], sides: int) -> float:
    """P(no statistic crosses its limit) for the looks so far."""
    k = len(limits)
    t = np.asarray(fractions[:k])
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    upper = np.asarray(limits)
    if k == 1:
        return float(stats.norm.cdf(upper[0]) - (stats.norm.cdf(-upper[0]) if sides == 2 else 0.0))
    lower = -upper if sides == 2 else np.full(k, -np.inf)
    return float(stats.multivariate_normal.cdf(upper, mean=np.zeros(k), cov=cov, lower_limit=lower,
                                               maxpts=50_000 * k, abseps=1e-7, releps=1e-6))


@lru_cache(maxsize=256)
def boundaries(fractions: tuple[float, ...], alpha: float = 0.05, spending: str = "obrien_fleming",
               sides: int = 2) -> tuple[float, ...]:
    """The z boundary of each look (information fractions increasing to 1) spending `alpha` by `spending`."""
    limits: list[float] = []
    for k, t in enumerate(fractions):
        target = 1 - spent(t, alpha, spending, sides)
        if k == 0:
            limits.append(float(stats.norm.isf((1 - target) / sides)))
            continue
        gap = lambda c: _no_crossing([*limits, c], fractions, sides) - target  # noqa: E731
        limits.append(float(optimize.brentq(gap, 0.5, 12.0, xtol=1e-5)))
    return tuple(limits)
