"""Small value checks shared by the owners of each setting; every message names the setting, the value received
and what is allowed."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the typed section, for annotations only
    from xablate.schema import Augment

SEED_LIMIT = 2**32  # numpy's and TensorFlow's seeds are 32-bit


def positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Received {name}={value!r}; allowed: an integer >= 1.")


def number_in(name: str, value, low: float, high: float, *, low_open=False, high_open=True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        bounds = f"{low} {'<' if low_open else '<='} {name} {'<' if high_open else '<='} {high}"
        raise ValueError(f"Received {name}={value!r}; allowed: {bounds}.")


def seed_value(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ValueError(f"Received {name}={value!r}; allowed: an integer from 0 to {SEED_LIMIT - 1}.")


def finite_numbers(flat: dict) -> None:
    """Every number of a flattened config (lists' items too) is finite: a NaN or infinite rate, factor or fraction
    is never a setting, whatever key holds it."""
    for name, value in flat.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"Received {name}={value!r}; allowed: a finite number.")


def augment_ranges(augment: Augment) -> None:
    """The augmentation's magnitudes: angles and fractions in the ranges Keras' layers accept."""
    number_in("data.augment.rotation_degrees", augment.rotation_degrees, 0.0, 180.0, high_open=False)
    for key in ("shift", "zoom", "shear"):
        number_in(f"data.augment.{key}", getattr(augment, key), 0.0, 1.0)
    brightness = augment.brightness
    if brightness is not None and (not isinstance(brightness, (list, tuple)) or len(brightness) != 2
                                   or any(isinstance(b, bool) or not isinstance(b, (int, float)) for b in brightness)
                                   or brightness[0] > brightness[1]):
        raise ValueError(f"Received data.augment.brightness={brightness!r}; allowed: [low, high] with low <= high.")
