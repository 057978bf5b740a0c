"""`xablate bench segments`: train-step cost of one segment convolution across the spectrum.

For every segment count k it times, in one process and interleaved (one step of each cell per round), a train
step of
    Input(size, size, channels) -> spatial conv in k segments -> 1x1 conv -> pooling -> Dense
for Keras' own `Conv2D(groups=k)` (the baseline), each SegmentConv2D implementation, and SegmentConv2D
with implementation="auto" (what the builder uses). Seconds per epoch are extrapolated from the fastest
step (other load on a shared machine only ever adds time), as in REFERENCE.md's table (512 images of
32x32x128); the median step is kept beside it.
"""

from __future__ import annotations

import csv
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from xablate.bench import report
from xablate.models.segment_conv import (
    DEPTHWISE_SHIFT_MAX_SEGMENT_WIDTH,
    IMPLEMENTATIONS,
    SegmentConv2D,
    _segment_members_per_block,
    choose_implementation,
)

BASELINE = "keras_conv2d_groups"
AUTO = "xablate_auto"


@dataclass
class Row:
    backend: str
    segments: int
    channels: int
    variant: str
    implementation: str
    steps_timed: int
    seconds_per_step: float
    median_seconds_per_step: float
    seconds_per_epoch: float
    images_per_second: float


def spectrum(channels: int) -> list[int]:
    """Powers of two from 1 to `channels` (which must be a power of two times something >= 1)."""
    ks, k = [], 1
    while k <= channels:
        if channels % k == 0:
            ks.append(k)
        k *= 2
    return ks if ks[-1] == channels else ks + [channels]


def variants_for(k: int, channels: int) -> list[tuple[str, str]]:
    """(variant, implementation) pairs measured at k."""
    impls = [i for i in IMPLEMENTATIONS if _applies(i, k, channels)]
    rows = [(BASELINE, "grouped")] + [(i, i) for i in impls if i != "grouped"]
    return rows + [(AUTO, choose_implementation(k, channels))]


def _applies(impl: str, k: int, channels: int) -> bool:
    if impl == "dense":
        return k == 1
    if impl == "depthwise":
        return k == channels
    if impl == "blocked":  # only where it is neither `split` (one segment per block) nor `masked` (one block)
        return 1 < k < channels and 1 < _segment_members_per_block(k, channels // k) < k
    if impl == "depthwise_shift":  # g depthwise convs: at 2 channels per segment, and up to twice the widest
        width = channels // k    # that auto gives it beside blocked, the choice it competes with
        return 1 < k < channels and (width == 2 or (
            width <= 2 * DEPTHWISE_SHIFT_MAX_SEGMENT_WIDTH and _applies("blocked", k, channels)))
    return 1 < k < channels or impl == "grouped"


def _spatial_layer(variant: str, implementation: str, k: int, channels: int):
    if variant == BASELINE:
        return [
            keras.layers.Conv2D(channels, 3, padding="same", groups=k, use_bias=False),
            keras.layers.Conv2D(channels, 1, use_bias=False),
        ]
    impl = "auto" if variant == AUTO else implementation
    return [SegmentConv2D(channels, k, implementation=impl)]


def _compiled_model(variant, implementation, k, *, channels, size, seed):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((size, size, channels))]
    layers += _spatial_layer(variant, implementation, k, channels)
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    model = keras.Sequential(layers)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def time_variants(cells, *, channels, size, batch, images, steps, max_seconds, seed=0) -> list[Row]:
    """Times the (k, variant, implementation) cells in turn, one train step of each per round.

    Interleaving puts every cell, whatever its k, under the same background load (the machine is shared), so
    that ratios within one run, across k too, compare like with like. A cell stops after `steps` steps, or
    once it has `max_seconds` of steps and at least 2 of them.
    """
    keras.backend.clear_session()
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, size, size, channels)).astype("float32")
    y = rng.integers(0, 10, size=(batch,))
    models = [_compiled_model(v, i, k, channels=channels, size=size, seed=seed) for k, v, i in cells]
    for model in models:
        model.train_on_batch(x, y)  # compile / trace
    times = [[] for _ in cells]

    def running(i):
        return len(times[i]) < steps and (len(times[i]) < 2 or sum(times[i]) < max_seconds)

    while any(running(i) for i in range(len(cells))):
        for i, model in enumerate(models):
            if running(i):
                t0 = time.perf_counter()
                model.train_on_batch(x, y)
                times[i].append(time.perf_counter() - t0)
    rows = []
    for (k, variant, implementation), ts in zip(cells, times):
        per_step = min(ts)
        rows.append(Row(
            backend=keras.backend.backend(),
            segments=k,
            channels=channels,
            variant=variant,
            implementation=implementation,
            steps_timed=len(ts),
            seconds_per_step=per_step,
            median_seconds_per_step=statistics.median(ts),
            seconds_per_epoch=per_step * images / batch,
            images_per_second=batch / per_step,
        ))
    return rows


def run(*, channels=128, size=32, batch=32, images=512, steps=8, max_seconds=20.0, segments=None, out=None, echo=print):
    """Runs the benchmark and writes a CSV; returns the rows."""
    ks = segments or spectrum(channels)
    cells = [(k, variant, implementation) for k in ks for variant, implementation in variants_for(k, channels)]
    rows = time_variants(cells, channels=channels, size=size, batch=batch, images=images, steps=steps,
                         max_seconds=max_seconds)
    for row in rows:
        echo(f"k={row.segments:4d}  {row.variant:20s} {row.implementation:15s} {row.seconds_per_epoch:8.2f} s/epoch"
             f"  ({row.steps_timed} steps)")
    if out:
        write_csv(rows, out)
        targets = target_lines(rows)
        Path(out).with_suffix(".md").write_text(markdown_table(rows) + ("\n" + "\n".join(targets) + "\n" if targets else ""))
        echo(f"wrote {out} and {Path(out).with_suffix('.md')}")
    for line in verdict_lines(rows) + target_lines(rows):
        echo(line)
    return rows


def write_csv(rows: list[Row], path) -> None:
    report.write_csv([asdict(r) for r in rows], path)


def markdown_table(rows: list[Row]) -> str:
    """Seconds per epoch per k and implementation, auto's choice, and its speed-up over Conv2D(groups=k)."""
    columns = [BASELINE, "dense", "split", "masked", "depthwise_sum", "blocked", "depthwise_shift", "depthwise"]
    header = ["k", "`Conv2D(groups=k)`", *[f"`{c}`" for c in columns[1:]], "auto (chosen)", "auto vs groups"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for k in sorted({r.segments for r in rows}):
        at_k = {r.variant: r for r in rows if r.segments == k}
        auto = at_k[AUTO]
        cells = [f"{at_k[c].seconds_per_epoch:.2f}" if c in at_k else "–" for c in columns]
        speedup = at_k[BASELINE].seconds_per_epoch / auto.seconds_per_epoch
        lines.append(f"| {k} | " + " | ".join(cells)
                     + f" | {auto.seconds_per_epoch:.2f} ({auto.implementation}) | {speedup:.1f}x |")
    return "\n".join(lines) + "\n"


def read_csv(path) -> list[Row]:
    with Path(path).open() as f:
        return [Row(**{k: (v if k in ("backend", "variant", "implementation") else
                           int(v) if k in ("segments", "channels", "steps_timed") else float(v))
                       for k, v in r.items()}) for r in csv.DictReader(f)]


# The FLOP line: from k = 8 on, more segments mean less work, so auto should get no slower than at k = 8, and at
# k = 64 (2 channels per segment of 128) come within this factor of the depthwise point
NEAR_DEPTHWISE_K, NEAR_DEPTHWISE_FACTOR, FLAT_FROM_K = 64, 1.3, 8


def noise_floor(rows: list[Row]) -> float:
    """How far apart two measurements of the same computation came out in this run: at every k, auto and the
    column of the implementation it chose time the same layer; the largest relative gap between them."""
    gaps = []
    for k in {r.segments for r in rows}:
        at_k = {r.variant: r for r in rows if r.segments == k}
        auto = at_k[AUTO]
        twin = at_k.get(auto.implementation) or (at_k.get(BASELINE) if auto.implementation == "grouped" else None)
        if twin is not None:
            low, high = sorted((auto.seconds_per_epoch, twin.seconds_per_epoch))
            gaps.append(high / low - 1.0)
    return max(gaps, default=0.0)


def target_lines(rows: list[Row]) -> list[str]:
    """The speed targets of the segment convolution from auto's seconds per epoch in this run: every k > 8 no
    slower than k = 8, and k = 64 within 1.3x of the depthwise point (k = channels). A ratio beyond its target by
    less than the run's noise floor is a tie, and says so."""
    auto = {r.segments: r.seconds_per_epoch for r in rows if r.variant == AUTO}
    channels = max(r.channels for r in rows)
    noise = noise_floor(rows)

    def verdict(ratio, target):
        if ratio <= target:
            return "met"
        return f"met within noise (+{ratio / target - 1:.1%} <= {noise:.1%})" if ratio <= target * (1 + noise) else "missed"

    lines = []
    if FLAT_FROM_K in auto:
        later = {k: t / auto[FLAT_FROM_K] for k, t in sorted(auto.items()) if k > FLAT_FROM_K}
        if later:
            worst = max(later, key=later.get)
            lines.append(f"- every k > {FLAT_FROM_K} no slower than k = {FLAT_FROM_K}: slowest k = {worst} at "
                         f"{later[worst]:.3f}x k = {FLAT_FROM_K}'s time "
                         f"({', '.join(f'k={k} {v:.2f}x' for k, v in later.items())}): {verdict(later[worst], 1.0)}")
    if NEAR_DEPTHWISE_K in auto and channels in auto and NEAR_DEPTHWISE_K < channels:
        ratio = auto[NEAR_DEPTHWISE_K] / auto[channels]
        lines.append(f"- k = {NEAR_DEPTHWISE_K} within {NEAR_DEPTHWISE_FACTOR}x of depthwise (k = {channels}): "
                     f"{ratio:.3f}x: {verdict(ratio, NEAR_DEPTHWISE_FACTOR)}")
    if lines:
        lines.append(f"- noise floor of this run: auto and the implementation it chose, timed side by side, differ by "
                     f"up to {noise:.1%}")
    return (["Targets (auto, this run):"] + lines) if lines else []


def verdict_lines(rows: list[Row]) -> list[str]:
    """Per k: auto's cost, its speed-up over Conv2D(groups=k), and its ratio to the best alternative."""
    lines = ["k      auto s/epoch  vs groups   vs best alternative"]
    for k in sorted({r.segments for r in rows}):
        at_k = [r for r in rows if r.segments == k]
        auto = next(r for r in at_k if r.variant == AUTO)
        base = next(r for r in at_k if r.variant == BASELINE)
        best = min(r.seconds_per_epoch for r in at_k if r.variant != AUTO)
        lines.append(
            f"{k:<6d} {auto.seconds_per_epoch:11.2f}  {base.seconds_per_epoch / auto.seconds_per_epoch:7.1f}x"
            f"   {auto.seconds_per_epoch / best:5.2f}x"
        )
    return lines
