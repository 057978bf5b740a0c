"""Seeds until decided: group-sequential analysis with Lan-DeMets alpha spending.

A study may declare, in its analysis block,

    sequential: {looks: [3, 5, 10, 20], spending: obrien_fleming}   # or pocock; alpha: 0.05 (default)

The staged sweeper then runs the study's seeds up to the first look, analyses every claim, and adds seeds up to
the next look only while some claim is undecided (hydra_plugins/xablate_sweeper). At look k of K, with
information fraction t_k = n_k / n_K (seeds per variant), the test may spend alpha*(t_k) in all:

    obrien_fleming   alpha*(t) = 2 - 2 Phi(z_{1-a/2} / sqrt(t)) per side, a = alpha / sides
    pocock           alpha*(t) = alpha ln(1 + (e - 1) t)

The boundary c_k solves P(|Z_1| < c_1, ..., |Z_k| < c_k) = 1 - alpha*(t_k) for the standardised statistics of
the looks, jointly normal with corr(Z_i, Z_j) = sqrt(t_i / t_j) (computed by recursive numerical integration,
`boundaries`; one-sided tests without the absolute values). A claim's test at look k is significant when its p-value is below the nominal
level of c_k (2 (1 - Phi(c_k)) two-sided, 1 - Phi(c_k) one-sided) — the usual p-value form of the boundaries,
with the paired t-test's p at each look. A claim decided at a look (reproduced, non-inferior, equivalent or
contradicted) keeps that outcome; the study stops when every claim is decided or the last look is reached.
"""

from __future__ import annotations

import math
import json
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

SPENDING = ("obrien_fleming", "pocock")


@dataclass(frozen=True)
class SequentialSpec:
    looks: tuple[int, ...]  # seeds per variant at each analysis, increasing
    spending: str = "obrien_fleming"
    alpha: float = 0.05
    source: str = field(default="the study file", compare=False)  # where the plan was read (xablate.analysis.plans)

    def record(self) -> str:
        """The plan as a sweep's parent run records it before its jobs (tag xablate.sequential)."""
        return json.dumps({"looks": list(self.looks), "spending": self.spending, "alpha": self.alpha})

    def nominal(self, look: int, sides: int) -> float:
        """The nominal p-value level of look `look` (0-based) for a two-sided (2) or one-sided (1) test."""
        from scipy import stats  # here, not at import: parsing a study file needs no scipy (0.8 s)

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
    from scipy import stats

    if spending == "obrien_fleming":  # each side at alpha / sides: 2 - 2 Phi(z_{1 - alpha/(2 sides)} / sqrt(t))
        return float(sides * 2 * stats.norm.sf(stats.norm.isf(alpha / sides / 2) / math.sqrt(t))) if t > 0 else 0.0
    if spending == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"Received spending={spending!r}; allowed: {', '.join(SPENDING)}.")


GRID = 801  # Simpson points over each look's continuation region (odd; 2001 moves a boundary by < 1e-8)


def _simpson_weights(n: int, width: float) -> np.ndarray:
    weights = np.ones(n)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return weights * width / (n - 1) / 3.0


@lru_cache(maxsize=256)
def boundaries(fractions: tuple[float, ...], alpha: float = 0.05, spending: str = "obrien_fleming",
               sides: int = 2) -> tuple[float, ...]:
    """The z boundary of each look (information fractions increasing to 1) spending `alpha` by `spending`.

    The sum S_k = Z_k sqrt(t_k) is Brownian motion in information time, so the density of S_k over the paths that
    crossed no earlier boundary follows look by look by numerical integration (Armitage, McPherson & Rowe 1969;
    Jennison & Turnbull 2000, ch. 19): P(no crossing through look k) is one integral over look k-1's
    continuation region, solved for c_k. Deterministic (a quasi-Monte Carlo multivariate normal is not) and fast.
    """
    from scipy import optimize, special, stats

    limits: list[float] = []
    grid = weights = density = None  # S_{k-1} on its continuation region: points, Simpson weights, sub-density
    for k, t in enumerate(fractions):
        target = 1 - spent(t, alpha, spending, sides)
        if k == 0:
            limits.append(float(stats.norm.isf((1 - target) / sides)))
        else:
            step = math.sqrt(t - fractions[k - 1])
            mass = density * weights

            def no_crossing(c: float) -> float:
                upper = special.ndtr((c * math.sqrt(t) - grid) / step)
                lower = special.ndtr((-c * math.sqrt(t) - grid) / step) if sides == 2 else 0.0
                return float(np.sum(mass * (upper - lower)))

            limits.append(float(optimize.brentq(lambda c: no_crossing(c) - target, 0.5, 12.0, xtol=1e-9)))
        high = limits[-1] * math.sqrt(t)
        low = -high if sides == 2 else -10.0 * math.sqrt(t)  # one-sided: no lower boundary (mass below: 1e-23)
        points = np.linspace(low, high, GRID)
        if k == 0:
            density = stats.norm.pdf(points, scale=math.sqrt(t))
        else:
            kernel = np.exp(-0.5 * ((points[:, None] - grid[None, :]) / step) ** 2) / (step * math.sqrt(2 * math.pi))
            density = kernel @ (density * weights)
        grid, weights = points, _simpson_weights(GRID, high - low)
    return tuple(limits)
