"""The per-layer rule that turns the `segments` axis into a valid segment count.

Xception's separable-layer widths (64, 128, 256, 728, 1024, 1536 at full width) have gcd 8, so one
uniform segment count k divides every layer only for k in {1, 2, 4, 8} and depthwise. To sweep the
whole spectrum, a requested k is mapped per layer to the divisor of that layer's channels nearest to k
on a log scale (ties go to the smaller divisor), capped at one segment per channel. The effective value
of every layer is reported by `xablate.models.summarize_model` and logged with each run.
"""

from __future__ import annotations

import math

DEPTHWISE = "depthwise"
ROUNDING_RULES = ("nearest", "exact")


def validate_segments(segments: int | str) -> int | str:
    """Checks the `segments` argument and returns it normalised (an int >= 1 or "depthwise").

    Args:
        segments: 1 (a regular convolution), any integer k >= 1, or "depthwise" (one segment per
            channel). Integer-valued strings such as "4" (from a command line) are accepted.

    Raises:
        ValueError: naming the value received and what is allowed.
    """
    allowed = 'an integer >= 1 or "depthwise"'
    if isinstance(segments, str):
        text = segments.strip().lower()
        if text == DEPTHWISE:
            return DEPTHWISE
        if text.isdigit():
            segments = int(text)
        else:
            raise ValueError(f"Received segments={segments!r}; allowed: {allowed}.")
    if isinstance(segments, bool) or not isinstance(segments, int):
        raise ValueError(f"Received segments={segments!r} ({type(segments).__name__}); allowed: {allowed}.")
    if segments < 1:
        raise ValueError(f"Received segments={segments}; allowed: {allowed}.")
    return segments


def divisors(n: int) -> list[int]:
    """All positive divisors of n, ascending."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def effective_segments(segments: int | str, channels: int, *, rounding: str = "nearest", layer: str = "") -> int:
    """The segment count a layer with `channels` input channels actually uses.

    Args:
        segments: the requested value (see `validate_segments`).
        channels: input channels of the layer's spatial convolution.
        rounding: "nearest" maps k to the nearest divisor of `channels` (log scale, ties to the smaller,
            at most `channels`); "exact" requires k to divide `channels`.
        layer: the layer's name, for error messages.

    Raises:
        ValueError: for an invalid `segments`, an unknown `rounding`, or (with "exact") a k that does not
            divide `channels`.
    """
    if rounding not in ROUNDING_RULES:
        raise ValueError(f"Received segment_rounding={rounding!r}; allowed: {', '.join(ROUNDING_RULES)}.")
    k = validate_segments(segments)
    if k == DEPTHWISE:
        return channels
    if channels % k == 0:
        return k
    if rounding == "exact":
        where = f" of layer {layer}" if layer else ""
        raise ValueError(
            f"Received segments={k}, which does not divide the {channels} input channels{where}; "
            f"allowed for this layer: {divisors(channels)} or 'depthwise' "
            f"(or segment_rounding='nearest' to round per layer)."
        )
    return min(divisors(channels), key=lambda d: (abs(math.log(d / k)), d))
