"""Input pipeline: the run's model trained from the augmented tf.data pipeline, from the same pipeline without
augmentation, and from the same images as in-memory numpy arrays; plus each pipeline iterated alone (no
model), one augmentation layer at a time, to show where the time goes."""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np

from xablate.bench.common import EpochTimer, Measured, joined, steady
from xablate.bench.overhead import build_like_trainer, compile_like
from xablate.schema import Data

PIPELINE_TARGET = 0.9
AUGMENT_KEYS = ("rotation_degrees", "shift", "shear", "zoom", "horizontal_flip", "brightness")


def with_augment(data: Data, enabled: bool, only: str | None = None) -> Data:
    """The data section with its augmentation enabled or not; `only`: that one augmentation layer (the others
    off). The tf.data sides are tf.data whatever the backend would pick."""
    augment = dataclasses.replace(data.augment, enabled=enabled)
    if only is not None:
        augment = dataclasses.replace(augment, **{key: None for key in AUGMENT_KEYS if key != only})
    return dataclasses.replace(data, augment=augment, pipeline="tf_data")


def load(run: Measured, data: Data | None = None):
    """The run's data (or these data settings of it), batched and seeded as the run's."""
    from xablate.data import load_data

    return load_data(data or run.data, batch_size=int(run.train.batch_size), seed=run.seed)


def in_memory_arrays(run: Measured) -> tuple[np.ndarray, np.ndarray]:
    """The training images exactly as the pipeline feeds them (resized, not augmented), as numpy arrays."""
    batches = list(load(run, with_augment(run.data, False)).train.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


SOURCES = ("in_memory", "tf_data", "tf_data_augmented")


def interleaved(model, run: Measured, epochs: int, arrays) -> dict[str, dict]:
    """Trains `model` one epoch from each source in turn, `epochs` times over (A B C A B C ...), so that load
    from other processes falls on every source alike; per source, images/s of each epoch's training part."""
    datasets = {source: load(run, with_augment(run.data, source == "tf_data_augmented")).train
                for source in SOURCES[1:]}
    timers = {source: EpochTimer() for source in SOURCES}
    for _ in range(epochs):
        for source in SOURCES:
            if source == "in_memory":
                model.fit(*arrays, batch_size=int(run.train.batch_size), epochs=1, shuffle=True,
                          callbacks=[timers[source]], verbose=0)
            else:
                model.fit(datasets[source], epochs=1, callbacks=[timers[source]], verbose=0)
    images = len(arrays[0])
    return {source: {"images": images, "ips": timer.images_per_second(images),
                     "cpu_ips": timer.images_per_cpu_second(images)} for source, timer in timers.items()}


def iterate_only(run: Measured, data: Data, passes: int) -> dict:
    """Images/s of the training dataset alone, iterated without a model: the first pass fills the cache."""
    loaded = load(run, data)
    ips, cpu_ips = [], []
    for _ in range(passes):
        start, cpu = time.perf_counter(), time.process_time()
        for _batch in loaded.train:
            pass
        ips.append(loaded.train_size / (time.perf_counter() - start))
        cpu_ips.append(loaded.train_size / (time.process_time() - cpu))
    return {"images": loaded.train_size, "ips": ips, "cpu_ips": cpu_ips}


def measure(run: Measured, *, epochs: int, echo=print) -> list[dict]:
    """One model, compiled once (its train step is traced once), trained from the three sources in
    interleaved epochs; each source's first epoch (tracing, cache filling) is left out of its steady state.
    Then each pipeline iterated alone."""
    arrays = in_memory_arrays(run)
    keras.backend.clear_session()
    data = load(run)
    model = build_like_trainer(run, data)
    compile_like(model, run, data, epochs * len(SOURCES))
    trained = interleaved(model, run, epochs, arrays)
    rows = []
    for source in SOURCES:
        rows.append(_row(source, "train", trained[source], trained["in_memory"],
                         PIPELINE_TARGET if source == "tf_data_augmented" else None))
        echo(f"pipeline {source:18s} {steady(trained[source]['ips']):7.1f} images/s (training; epochs: "
             f"{joined(trained[source]['ips'])})")
    layers = [key for key in AUGMENT_KEYS if getattr(run.data.augment, key)]
    for name, variant in [("tf_data", with_augment(run.data, False)), ("tf_data_augmented", with_augment(run.data, True)),
                          *[(f"augment_{key}", with_augment(run.data, True, only=key)) for key in layers]]:
        measured = iterate_only(run, variant, passes=max(epochs, 2))
        rows.append(_row(name, "iterate_only", measured, None, None))
        echo(f"pipeline {name:26s} {steady(measured['ips']):9.1f} images/s (iterated alone)")
    return rows


def _row(source: str, mode: str, measured: dict, base: dict | None, target: float | None) -> dict:
    ips, cpu = steady(measured["ips"]), steady(measured["cpu_ips"])
    compared = base is not None and source != "in_memory"
    ratio = ips / steady(base["ips"]) if compared else None
    return {
        "source": source, "mode": mode, "images": measured["images"], "epochs": len(measured["ips"]),
        "steady_images_per_second": round(ips, 2), "epoch_images_per_second": joined(measured["ips"]),
        "images_per_cpu_second": round(cpu, 2),
        "ratio_vs_in_memory": "" if ratio is None else round(ratio, 4),
        "ratio_cpu_vs_in_memory": round(cpu / steady(base["cpu_ips"]), 4) if compared else "",
        "target": "" if target is None else target,
        "meets_target": "" if target is None or ratio is None else ratio >= target,
    }
