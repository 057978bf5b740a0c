"""scikit-learn's handwritten digits: the embedded default (no network)."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from xablate.checks import number_in
from xablate.data.sources.base import Source, Splits, array_splits, register, stratified_holdout

if TYPE_CHECKING:  # the typed section, for annotations only
    from xablate.schema import Data


def load_digits(data: Data) -> Splits:
    """scikit-learn's handwritten digits (1,797 8x8 grey images, 10 classes), shipped inside the package.

    It has no split of its own: `data.test_fraction` is held out as the test split, then `validation_fraction`
    of the rest as validation, both stratified by class and drawn with `data.split_seed`.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = (digits.images / 16.0)[..., None]  # (1797, 8, 8, 1), 0..16 grey levels -> [0, 1]
    labels = digits.target
    rest, test = stratified_holdout(labels, float(data.test_fraction), int(data.split_seed) + 7919)
    return array_splits(images[rest], labels[rest], images[test], labels[test], num_classes=10, data=data)


def digest(data: Data) -> str:
    """The bytes of the file scikit-learn ships (it is the data)."""
    return _shipped_digest()


@lru_cache(maxsize=1)
def _shipped_digest() -> str:
    # found, not imported: importing scikit-learn takes 0.7 s, longer than `xablate status` should
    package = importlib.util.find_spec("sklearn")
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("scikit-learn is not installed: pip install -e . (it ships the digits)")
    shipped = Path(package.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    return hashlib.sha256(shipped.read_bytes()).hexdigest()[:16]


def check(data: Data) -> None:
    number_in("data.test_fraction", data.test_fraction, 0.0, 1.0, low_open=True)
    if data.test_fraction + data.validation_fraction * (1 - data.test_fraction) >= 0.9:
        raise ValueError(f"Received data.test_fraction={data.test_fraction!r} with data.validation_fraction="
                         f"{data.validation_fraction!r}; allowed: fractions that leave at least 10 % of the "
                         f"images for training.")


register(Source("digits", load=load_digits, digest=digest, describe=lambda data: ("digits", "sklearn.datasets.load_digits"),
                check=check, arrays=True))
