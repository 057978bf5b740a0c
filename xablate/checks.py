"""Small value checks shared by the owners of each setting; every message names the setting, the value received
and what is allowed."""

from __future__ import annotations

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
