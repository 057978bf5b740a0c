"""The test set as a source of variance, and the probability of improvement.

The paired t-interval of a comparison treats each replicate's test accuracy as exact; it is an estimate from a
finite test set. With each run's per-image predictions kept (xablate.tracking.predictions), a comparison of
accuracies also gets a two-level paired bootstrap: draw the replicates (seeds) with replacement and, crossed
with them, the test images with replacement; each draw's statistic is the mean over the drawn replicates of the
mean over the drawn images of (correct_A - correct_B), the same images for both variants (paired), its
percentile interval at the comparison's level. Both sources of variance are then in the interval.

The probability of improvement P(A > B) - the chance that a run of A scores better than a run of B, ties half -
is Agarwal et al.'s (2021, rliable) Mann-Whitney statistic U / (n_A n_B) over the replicates' scores (signed so
that higher favours A), with scipy.stats.bootstrap's percentile interval over the two samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
SEED = 0  # fixed: a verdict recomputed from the same store prints the same interval
CHUNK = 100  # image-weight draws held at once (a 10,000-image test set: 8 MB)


@dataclass(frozen=True)
class Bootstrap:
    mean: float  # the observed mean paired difference (replicates x images)
    low: float
    high: float
    replicates: int
    images: int


def two_level_bootstrap(difference: np.ndarray, confidence: float = 0.95, resamples: int = RESAMPLES,
                        seed: int = SEED) -> Bootstrap:
    """Percentile interval of the mean of `difference` (replicates x images: correct_A - correct_B, paired by
    replicate and image) with replicates and images resampled independently (crossed)."""
    d = np.asarray(difference, dtype=float)
    if d.ndim != 2 or not d.size:
        raise ValueError(f"Received differences of shape {d.shape}; allowed: replicates x images, both >= 1.")
    n, m = d.shape
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        drawn = rng.integers(0, m, size=(size, m)) + np.arange(size)[:, None] * m  # images drawn, per resample
        weights = np.bincount(drawn.ravel(), minlength=size * m).reshape(size, m) / m  # ... as weights
        per_replicate = d @ weights.T  # n x size: each replicate's mean over the drawn images
        chosen = rng.integers(0, n, size=(size, n))  # the replicates drawn, per resample
        draws[start:start + size] = np.take_along_axis(per_replicate.T, chosen, axis=1).mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Bootstrap(float(d.mean()), float(low), float(high), n, m)


def probability_of_improvement(a, b) -> float:
    """P(A > B) over runs, ties counted half (rliable's definition: Mann-Whitney U / (n_A n_B)); 0.5 when the
    two samples are the same."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        return math.nan
    if np.array_equal(np.sort(a), np.sort(b)):
        return 0.5
    return float(stats.mannwhitneyu(a, b, alternative="greater").statistic / (len(a) * len(b)))


def _improvement(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """The same statistic, vectorised over resamples (for the bootstrap): the share of pairs a > b, ties half."""
    greater = (a[..., :, None] > b[..., None, :]).mean(axis=(-2, -1))
    ties = (a[..., :, None] == b[..., None, :]).mean(axis=(-2, -1))
    return greater + 0.5 * ties


def improvement_interval(a, b, confidence: float = 0.95, resamples: int = RESAMPLES,
                         seed: int = SEED) -> tuple[float, float]:
    """scipy.stats.bootstrap's percentile interval of P(A > B), the two samples resampled independently."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    if np.unique(np.concatenate([a, b])).size == 1:
        return 0.5, 0.5
    result = stats.bootstrap((a, b), _improvement, vectorized=True, paired=False, confidence_level=confidence,
                             n_resamples=resamples, method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def correctness(locations: list[str]) -> np.ndarray:
    """replicates x images: whether each run (one location per replicate, xablate.analysis.store's predictions
    column) classified each test image right. ValueError when the runs' test sets differ (not one split)."""
    from xablate.tracking.predictions import read_predictions

    rows, reference = [], None
    for location in locations:
        labels, predicted = read_predictions(_local(location))
        if reference is None:
            reference = labels
        elif labels.shape != reference.shape or not np.array_equal(labels, reference):
            raise ValueError(f"Received predictions over another test set at {location} ({labels.size} images, "
                             f"{reference.size} expected); allowed: runs tested on the same split in the same order.")
        rows.append(predicted == labels)
    return np.vstack(rows)


def _local(location: str):
    from pathlib import Path

    if "://" not in location:
        return Path(location)
    import mlflow  # a remote store's artifact: downloaded once into MLflow's temporary folder

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=location))
