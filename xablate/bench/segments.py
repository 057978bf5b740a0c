"""`xablate bench segments`: train-step cost of one segment convolution across the spectrum.

For every segment count k it times, in one process, a train step of
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

from xablate.models.segment_conv import IMPLEMENTATIONS, SegmentConv2D, choose_implementation

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
    return 1 < k < channels or impl == "grouped"


def _spatial_layer(variant: str, implementation: str, k: int, channels: int):
    if variant == BASELINE:
        return [
            keras.layers.Conv2D(channels, 3, padding="same", groups=k, use_bias=False),
            keras.layers.Conv2D(channels, 1, use_bias=False),
        ]
    impl = "auto" if variant == AUTO else implementation
    return [SegmentConv2D(channels, k, implementation=impl)]


def time_variant(variant, implementation, k, *, channels, size, batch, images, steps, max_seconds, seed=0) -> Row:
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((size, size, channels))]
    layers += _spatial_layer(variant, implementation, k, channels)
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    model = keras.Sequential(layers)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, size, size, channels)).astype("float32")
    y = rng.integers(0, 10, size=(batch,))
    model.train_on_batch(x, y)  # compile / trace
    times, start = [], time.perf_counter()
    while len(times) < steps and (len(times) < 2 or time.perf_counter() - start < max_seconds):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    per_step = min(times)
    return Row(
        backend=keras.backend.backend(),
        segments=k,
        channels=channels,
        variant=variant,
        implementation=implementation,
        steps_timed=len(times),
        seconds_per_step=per_step,
        median_seconds_per_step=statistics.median(times),
        seconds_per_epoch=per_step * images / batch,
        images_per_second=batch / per_step,
    )


def run(*, channels=128, size=32, batch=32, images=512, steps=8, max_seconds=20.0, segments=None, out=None, echo=print):
    """Runs the benchmark and writes a CSV; returns the rows."""
    ks = segments or spectrum(channels)
    rows = []
    for k in ks:
        for variant, implementation in variants_for(k, channels):
            row = time_variant(variant, implementation, k, channels=channels, size=size, batch=batch, images=images,
                               steps=steps, max_seconds=max_seconds)
            rows.append(row)
            echo(f"k={k:4d}  {variant:20s} {implementation:14s} {row.seconds_per_epoch:8.2f} s/epoch  ({row.steps_timed} steps)")
    if out:
        write_csv(rows, out)
        Path(out).with_suffix(".md").write_text(markdown_table(rows))
        echo(f"wrote {out} and {Path(out).with_suffix('.md')}")
    for line in verdict_lines(rows):
        echo(line)
    return rows


def write_csv(rows: list[Row], path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def markdown_table(rows: list[Row]) -> str:
    """Seconds per epoch per k and implementation, auto's choice, and its speed-up over Conv2D(groups=k)."""
    columns = [BASELINE, "dense", "split", "masked", "depthwise_sum", "depthwise"]
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
