"""Builder parity: `build_xception()` with its defaults against `keras.applications.Xception(weights=None)`,
train images/s on the same random batch, at an input size a CPU affords.

Both models are built, compiled and traced in one session, then their timed steps alternate (A B A B ...), so
load from elsewhere on a shared machine falls on both alike.
"""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np

PARITY_TARGET = 0.98
KERAS_MIN_SIZE = 71  # keras.applications.Xception refuses smaller inputs
MODELS = ("keras_applications", "xablate")


def _build(which: str, size: int, classes: int):
    from xablate.models import build_xception

    if which == "xablate":
        return build_xception(input_shape=(size, size, 3), classes=classes)
    return keras.applications.Xception(weights=None, input_shape=(size, size, 3), classes=classes)


def measure(*, size: int, batch: int, steps: int, classes: int = 10, warmup: int = 2, seed: int = 0,
            echo=print) -> list[dict]:
    """One row per model; the xablate row carries its ratio to keras.applications (images/s, median step)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(batch, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, size=(batch,))
    models = {}
    for which in MODELS:
        model = _build(which, size, classes)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy())
        start = time.perf_counter()
        for _ in range(warmup):  # the first traces and compiles the step
            model.train_on_batch(x, y)
        echo(f"parity   {which:18s} built and warmed up in {time.perf_counter() - start:.1f} s")
        models[which] = model
    times = {which: [] for which in MODELS}
    cpu = {which: [] for which in MODELS}
    for _ in range(steps):
        for which, model in models.items():
            t0, c0 = time.perf_counter(), time.process_time()
            model.train_on_batch(x, y)
            times[which].append(time.perf_counter() - t0)
            cpu[which].append(time.process_time() - c0)
    shapes = {which: (model.count_params(), len(model.layers)) for which, model in models.items()}
    rows = parity_rows(shapes, times, cpu, size=size, classes=classes, batch=batch)
    for row in rows:
        echo(f"parity   {row['model']:18s} {row['images_per_second']:7.1f} images/s "
             f"({row['parameters']:,} parameters)")
    return rows


def parity_rows(shapes: dict[str, tuple[int, int]], times: dict[str, list[float]], cpu: dict[str, list[float]], *,
                size: int, classes: int, batch: int) -> list[dict]:
    """One row per model (keras.applications first) from its (parameters, layers) and its timed steps' wall and
    CPU seconds; the xablate row carries its ratios to keras.applications: median step, fastest step, CPU."""
    rows = []
    for which in MODELS:
        median, fastest = statistics.median(times[which]), min(times[which])
        parameters, layers = shapes[which]
        rows.append({
            "model": which, "parameters": parameters, "layers": layers, "input_size": size,
            "classes": classes, "batch": batch, "steps_timed": len(times[which]),
            "median_seconds_per_step": round(median, 6), "min_seconds_per_step": round(fastest, 6),
            "images_per_second": round(batch / median, 3), "images_per_second_fastest": round(batch / fastest, 3),
            "images_per_cpu_second": round(batch / statistics.median(cpu[which]), 3),
            "ratio": "", "ratio_fastest": "", "ratio_cpu": "", "target": "", "meets_target": "",
        })
    base, ours = rows
    ratio = ours["images_per_second"] / base["images_per_second"]
    ours.update(ratio=round(ratio, 4), target=PARITY_TARGET, meets_target=ratio >= PARITY_TARGET,
                ratio_fastest=round(ours["images_per_second_fastest"] / base["images_per_second_fastest"], 4),
                ratio_cpu=round(ours["images_per_cpu_second"] / base["images_per_cpu_second"], 4))
    return rows
