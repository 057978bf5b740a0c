"""The Xception family: one builder, its segment convolution, presets and a summary of what was built.

The names below load their module (and with it Keras) when first used, so that importing a Keras-free part of
the package - `xablate.models.segments`, which `xablate status` needs - does not start Keras and TensorFlow.
"""

from importlib import import_module

_HOMES = {
    "PRESETS": "presets", "build_from_preset": "presets", "preset_kwargs": "presets",
    "SegmentConv2D": "segment_conv", "choose_implementation": "segment_conv",
    "effective_segments": "segments",
    "ModelSummary": "summary", "SeparableLayer": "summary", "summarize_model": "summary",
    "build_xception": "xception", "check_build_kwargs": "xception",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'xablate.models' has no attribute {name!r}")
    value = getattr(import_module(f"xablate.models.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
