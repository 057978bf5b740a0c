"""The Xception family: one builder, its segment convolution, presets and a summary of what was built."""

from xablate.models.presets import PRESETS, build_from_preset, preset_kwargs
from xablate.models.segment_conv import SegmentConv2D, choose_implementation
from xablate.models.segments import effective_segments
from xablate.models.summary import ModelSummary, SeparableLayer, summarize_model
from xablate.models.xception import build_xception, check_build_kwargs

__all__ = [
    "PRESETS",
    "ModelSummary",
    "SegmentConv2D",
    "SeparableLayer",
    "build_from_preset",
    "build_xception",
    "check_build_kwargs",
    "choose_implementation",
    "effective_segments",
    "preset_kwargs",
    "summarize_model",
]
