"""Compute-matched spectrum points: for a segments value, the width at which the model has the baseline's
parameters (or multiply-adds), in closed form.

Across the spectrum the models differ several-fold in size (mini: 737,034 parameters depthwise, 5,468,226 at
k = 1), so "which point is best" mixes the operator with the model's capacity. `model.match: params` (or
`flops`) gives every point the baseline's budget instead: the width multiplier is solved per segments value so
that the count is within `MATCH_TOLERANCE` of the baseline's (the same model at `segments=depthwise`, its own
width). Widths are rounded to multiples of min(k, 8) where that grid reaches the tolerance: for k <= 8 that
keeps k exact in every layer and gives the solver steps finer than multiples of 8 (a regular convolution's
matched mini model is about a third as wide); where it does not (tiny models), the grid is halved until it
does, and k is rounded per layer as everywhere (`segments.<layer>` params say to what). The counts here are computed from the architecture spec without building the model; the tests compare
them with Keras' count of the built model.
"""

from __future__ import annotations

import math
from functools import lru_cache

from xablate.models.segments import DEPTHWISE, effective_segments, validate_segments
from xablate.models.xception import ENTRY_FLOW, EXIT_FLOW, MIDDLE_BLOCK, STEM_WIDTHS, WIDTH_DIVISOR, scale_width

# Every builder argument is either modelled by `counts` or changes no parameter or FLOP count; tests/test_matching.py
# fails for a builder argument in neither set, and `counts` refuses one set away from its default, so a new
# spatial argument cannot make `model.match` solve widths from wrong counts.
COUNTED = frozenset({"input_shape", "classes", "include_top", "head", "stem", "width_multiplier", "width_divisor",
                     "middle_blocks", "residual", "segments", "segment_rounding"})
COUNT_NEUTRAL = frozenset({"intermediate_act", "segment_impl", "pooling", "classifier_activation", "bn_momentum",
                           "dropout", "weight_decay", "name"})  # activations, kernels' layout, regularisation, names

QUANTITIES = ("params", "flops")
MATCH_TOLERANCE = 0.03  # relative distance to the baseline's count a matched point must reach
BN_PARAMS = 4           # gamma, beta, moving mean, moving variance per channel (Keras counts all four)


def counts(**kwargs) -> dict[str, int]:
    """Parameters and multiply-adds per image of `build_xception(**kwargs)`, without building it.

    Follows xablate.models.xception layer by layer; multiply-adds as `summarize_model` counts them (every conv
    and dense kernel once per output pixel)."""
    _check_counted(kwargs)
    kwargs = {**builder_defaults(), **kwargs}
    height, width, in_channels = kwargs["input_shape"]
    multiplier = float(kwargs["width_multiplier"])
    divisor = int(kwargs["width_divisor"])
    segments = validate_segments(kwargs["segments"])
    residual = bool(kwargs["residual"])
    stem = kwargs["stem"]
    params = mult_adds = 0

    def conv(kernel_elements: int, out_h: int, out_w: int):
        nonlocal params, mult_adds
        params += kernel_elements
        mult_adds += kernel_elements * out_h * out_w

    h, w, channels = height, width, in_channels
    for j, base in enumerate(STEM_WIDTHS):
        out = scale_width(base, multiplier, divisor)
        if stem == "imagenet":
            stride = 2 if j == 0 else 1
            h, w = (h - 3) // stride + 1, (w - 3) // stride + 1
        conv(9 * channels * out, h, w)
        params += BN_PARAMS * out
        channels = out
    blocks = [*ENTRY_FLOW, *([MIDDLE_BLOCK] * int(kwargs["middle_blocks"])), *EXIT_FLOW]
    for spec in blocks:
        widths = [scale_width(x, multiplier, divisor) for x in spec.widths]
        pooled_h, pooled_w = (math.ceil(h / 2), math.ceil(w / 2)) if spec.pool else (h, w)
        if residual and spec.shortcut == "projection":
            conv(channels * widths[-1], pooled_h, pooled_w)
            params += BN_PARAMS * widths[-1]
        for out in widths:
            k = effective_segments(segments, channels, rounding=kwargs["segment_rounding"])
            conv(9 * channels * (channels // k), h, w)  # spatial: Conv2D(groups=k) layout
            conv(channels * out, h, w)                  # pointwise
            params += BN_PARAMS * out
            channels = out
        h, w = pooled_h, pooled_w
    if kwargs["include_top"]:
        features = channels if kwargs["head"] == "avg" else channels * h * w
        classes = int(kwargs["classes"])
        params += features * classes + classes
        mult_adds += features * classes
    return {"params": params, "flops": 2 * mult_adds}


@lru_cache(maxsize=1)
def builder_defaults() -> dict:
    """Every keyword argument of build_xception at its default (the builder's signature: said once, there). Read
    only: callers merge it, `{**builder_defaults(), **kwargs}`."""
    import inspect

    from xablate.models.xception import build_xception

    return {name: p.default for name, p in inspect.signature(build_xception).parameters.items()}


def _check_counted(kwargs: dict) -> None:
    defaults = builder_defaults()
    for name, value in kwargs.items():
        if name not in COUNTED | COUNT_NEUTRAL and value != defaults.get(name):
            raise ValueError(f"Received {name}={value!r} with model.match; allowed: {name} at its default "
                             f"({defaults.get(name)!r}): the closed-form counts of xablate.models.matching do not "
                             f"model it, so no width could be matched.")


def reference(kwargs: dict, baseline_segments=DEPTHWISE, residual: bool | None = None) -> dict:
    """The model a matched point is matched to: `kwargs` at the baseline's segments value, and with shortcut
    branches or without them where `residual` says (None: as `kwargs`)."""
    return {**kwargs, "segments": baseline_segments, **({} if residual is None else {"residual": bool(residual)})}


def matched_width(kwargs: dict, quantity: str, baseline_segments=DEPTHWISE, residual: bool | None = None) -> dict:
    """The width at which `kwargs`' segments value has the baseline's `quantity` (params or flops); the baseline
    is `reference(kwargs, baseline_segments, residual)`.

    Returns the builder arguments to use (width_multiplier, width_divisor) with the target, the achieved count
    and its relative error; raises ValueError, naming the point, when no width comes within MATCH_TOLERANCE."""
    if quantity not in QUANTITIES:
        raise ValueError(f"Received model.match={quantity!r}; allowed: null, {', '.join(QUANTITIES)}.")
    target = counts(**reference(kwargs, baseline_segments, residual))[quantity]
    configured = {**builder_defaults(), **kwargs}
    segments = validate_segments(configured["segments"])
    same_shortcuts = residual is None or bool(residual) == bool(configured["residual"])
    if segments == validate_segments(baseline_segments) and same_shortcuts:
        return {"width_multiplier": float(configured["width_multiplier"]),
                "width_divisor": int(configured["width_divisor"]), "target": target,
                "achieved": target, "relative_error": 0.0}
    start = float(configured["width_multiplier"])
    coarsest = min(int(segments), WIDTH_DIVISOR) if segments != DEPTHWISE else WIDTH_DIVISOR
    best = None
    # the coarsest width grid that reaches the tolerance: multiples of min(k, 8) keep k <= 8 exact in every
    # layer; where that grid is too coarse for the model's widths (tiny models), halve it
    for divisor in [d for d in (8, 4, 2, 1) if d <= coarsest]:
        # widths change in steps, so scan multipliers finely (0.1 % apart) over 1/8 .. 2 x the configured one
        for step in range(0, 3001):
            multiplier = start * (0.125 * (16.0 ** (step / 3000)))
            got = counts(**{**kwargs, "width_multiplier": multiplier, "width_divisor": divisor})[quantity]
            error = got / target - 1.0
            if best is None or abs(error) < abs(best["relative_error"]):
                best = {"width_multiplier": round(multiplier, 6), "width_divisor": divisor, "target": target,
                        "achieved": got, "relative_error": error}
        if abs(best["relative_error"]) <= MATCH_TOLERANCE:
            return best
    shortcuts = "" if residual is None else f", residual={configured['residual']}"
    reference_shortcuts = "" if residual is None else f" model.match_residual={bool(residual)}"
    raise ValueError(
        f"Received segments={segments}{shortcuts} with model.match={quantity}{reference_shortcuts}: no width comes within {MATCH_TOLERANCE:.0%} "
        f"of the baseline's {target:,} {quantity} (closest: {best['achieved']:,} at width_multiplier="
        f"{best['width_multiplier']}, widths multiples of {best['width_divisor']}); allowed: a segments value "
        f"that can be matched, or model.match=null.")


def matched_kwargs(kwargs: dict, quantity: str, residual: bool | None = None) -> dict:
    """`kwargs` with the width (multiplier and divisor) at which its segments value matches the baseline."""
    got = matched_width(kwargs, quantity, residual=residual)
    return {**kwargs, "width_multiplier": got["width_multiplier"], "width_divisor": got["width_divisor"]}


def match_params(quantity: str, configured: dict, matched: dict, baseline_segments=DEPTHWISE,
                 residual: bool | None = None) -> dict[str, object]:
    """What a matched run logs: the quantity, the baseline's count (at the configured width: the target), the
    matched model's count and the relative error."""
    base = reference(configured, baseline_segments, residual)
    target = counts(**base)[quantity]
    achieved = counts(**matched)[quantity]
    return {"match.quantity": quantity, "match.baseline_segments": baseline_segments,
            "match.baseline_residual": bool({**builder_defaults(), **base}["residual"]), "match.target": target,
            "match.achieved": achieved, "match.relative_error": round(achieved / target - 1.0, 6)}
