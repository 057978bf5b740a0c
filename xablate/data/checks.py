"""Checks of a `data` section before anything loads: the settings every source shares, then the source's own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from xablate.checks import augment_ranges, number_in, positive_int, seed_value
from xablate.data.pipeline import CACHE_MODES, PIPELINES, array_sources, choose_pipeline
from xablate.data.sources import SOURCES

if TYPE_CHECKING:  # the typed section, for annotations only
    from xablate.schema import Data


def validate_data(data: Data) -> None:
    """ValueError for the first bad data setting, naming it, the value received and what is allowed."""
    if data.source not in SOURCES:
        raise ValueError(f"Received data.source={data.source!r}; allowed: {', '.join(SOURCES)}.")
    source = SOURCES[data.source]
    positive_int("data.image_size", data.image_size)
    for key in ("limit_train", "limit_val", "limit_test"):
        if getattr(data, key) is not None:
            positive_int(f"data.{key}", getattr(data, key))
    seed_value("data.split_seed", data.split_seed)
    for key in ("order_seed", "subsample_seed"):
        if getattr(data, key) is not None:
            seed_value(f"data.{key}", getattr(data, key))
    if data.subsample_seed is not None and data.source in ("folder", "tfds"):
        raise ValueError(f"Received data.subsample_seed={data.subsample_seed!r} with data.source={data.source!r}; "
                         f"allowed: null, or a source that loads its images as arrays (digits, cifar10, fashion_mnist).")
    if source.holds_out_validation:
        number_in("data.validation_fraction", data.validation_fraction, 0.0, 1.0, low_open=True)
    pipeline = data.pipeline
    if pipeline not in PIPELINES:
        raise ValueError(f"Received data.pipeline={pipeline!r}; allowed: {', '.join(PIPELINES)}.")
    if choose_pipeline(data) == "memory" and not source.arrays:
        why = "" if pipeline == "memory" else " (TensorFlow is not installed, so auto means memory)"
        raise ValueError(f"Received data.pipeline={pipeline!r} with data.source={data.source!r}{why}; allowed: "
                         f"the in-memory pipeline reads {', '.join(array_sources())}; {data.source} needs tf_data.")
    if data.cache not in CACHE_MODES:
        raise ValueError(f"Received data.cache={data.cache!r}; allowed: {', '.join(CACHE_MODES)}.")
    augment = data.augment
    if augment.brightness_mode not in ("additive", "multiplicative"):
        raise ValueError(f"Received data.augment.brightness_mode={augment.brightness_mode!r}; allowed: additive, "
                         f"multiplicative.")
    if augment.shear_degrees is not None:
        number_in("data.augment.shear_degrees", augment.shear_degrees, 0.0, 90.0, high_open=True)
    augment_ranges(augment)
    source.check(data)
