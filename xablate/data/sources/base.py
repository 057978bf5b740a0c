"""What every source shares: the splits it returns, the registry it joins, the stratified hold-out.

A source is one module in this package that calls `register(Source(...))`: its loader, its content digest (how
a run knows it saw the same images: required, so that changed data is never mistaken for the same job), how a
reader of the run finds the data again, the check of its own settings, and whether it loads into numpy arrays
(the in-memory pipeline, which needs no TensorFlow, reads only those). A new source is one module plus one
YAML file in conf/data/ (and its own keys declared in xablate/schema.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # the typed section, for annotations only
    from xablate.schema import Data


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclass
class Splits:
    """Train, validation and test splits: numpy arrays (in memory) or unbatched tf.data datasets."""

    train: Any
    validation: Any
    test: Any
    num_classes: int
    channels: int
    train_size: int
    validation_size: int
    test_size: int
    class_names: list[str] | None = None


@dataclass(frozen=True)
class Source:
    """A data source as the registry holds it."""

    name: str
    load: Callable[[dict], Splits]               # the data section -> train / validation / test
    digest: Callable[[dict], str]                # the data section -> a digest of the content a run depends on
    describe: Callable[[dict], tuple[str, str]]  # (dataset name, where a reader finds it) for MLflow
    check: Callable[[dict], None] = lambda data: None  # its own settings, before anything loads
    arrays: bool = False                         # loads into numpy arrays: the in-memory pipeline can read it
    holds_out_validation: bool = True            # carves validation out of training (data.validation_fraction)


SOURCES: dict[str, Source] = {}


def register(source: Source) -> Source:
    if source.name in SOURCES:
        raise ValueError(f"a data source named {source.name!r} is registered twice")
    SOURCES[source.name] = source
    return source


def content_hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) row indices: `fraction` of every class held out (at least one row of a class with two
    or more), both in a random order drawn from `seed`."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n = int(round(len(rows) * fraction))
        n = min(max(n, 1 if len(rows) > 1 else 0), len(rows) - 1)
        held.append(rows[:n])
        kept.append(rows[n:])
    kept, held = np.concatenate(kept).astype(int), np.concatenate(held).astype(int)
    if len(held) == 0 and len(labels) > 1 and fraction > 0:  # every class a singleton: hold out at random
        rows = rng.permutation(len(labels))
        n = max(1, int(round(len(labels) * fraction)))
        held, kept = rows[:n], rows[n:]
    return rng.permutation(kept), rng.permutation(held)


def array_splits(x_train, y_train, x_test, y_test, num_classes, data: Data) -> Splits:
    """Carves the validation split out of the training arrays (stratified, `data.split_seed`)."""
    y_train, y_test = np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)
    train, val = stratified_holdout(y_train, float(data.validation_fraction), int(data.split_seed))
    as_arrays = lambda x, y: (np.asarray(x, dtype="float32"), np.asarray(y, dtype="int32"))  # noqa: E731
    return Splits(
        train=as_arrays(x_train[train], y_train[train]),
        validation=as_arrays(x_train[val], y_train[val]),
        test=as_arrays(x_test, y_test),
        num_classes=num_classes,
        channels=int(x_train.shape[-1]),
        train_size=len(train),
        validation_size=len(val),
        test_size=len(x_test),
    )
