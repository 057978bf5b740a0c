"""Named model presets: data, not code. A preset is a dict of build_xception keyword arguments;
explicit overrides win."""

from __future__ import annotations

import keras

from xablate.models.xception import build_xception

PRESETS: dict[str, dict] = {
    # The paper's model (Chollet 2017) = keras.applications.Xception: the builder's defaults.
    "xception": {},
    # CPU studies on 32x32 images: 1/4 width, 2 middle blocks, a stem that keeps 32x32, and a BN momentum
    # whose moving statistics catch up within a few hundred steps.
    "mini": {
        "input_shape": (32, 32, 3),
        "classes": 10,
        "stem": "small",
        "width_multiplier": 0.25,
        "middle_blocks": 2,
        "bn_momentum": 0.9,
    },
    # The smallest model that still has every block kind: for tests and the debug config.
    "debug": {
        "input_shape": (16, 16, 3),
        "classes": 10,
        "stem": "small",
        "width_multiplier": 0.0625,
        "middle_blocks": 1,
        "bn_momentum": 0.9,
    },
}


def preset_kwargs(preset: str, **overrides) -> dict:
    """The builder arguments of a named preset with `overrides` applied."""
    if preset not in PRESETS:
        raise ValueError(f"Received preset={preset!r}; allowed: {', '.join(PRESETS)}.")
    return {**PRESETS[preset], **overrides}


def build_from_preset(preset: str, **overrides) -> keras.Model:
    """build_xception(**preset_kwargs(preset, **overrides))."""
    return build_xception(**preset_kwargs(preset, **overrides))
