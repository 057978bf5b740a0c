"""What the `xablate bench harness` measurements share: the measured run, the epoch clock and the trainer's
compile."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import keras

from xablate import schema


@dataclass(frozen=True)
class Measured(schema.TypedSections):
    """The measured run, read once from its composed config: the plain config a real run trains from (`cfg`,
    the harness side of a comparison) and its typed sections, which every other side reads."""

    cfg: dict[str, Any]
    config: schema.Job

    @classmethod
    def compose(cls, overrides: list[str]) -> Measured:
        """The bench's constructor, as Job.prepare is the trainer's: the config `run.py <overrides>` composes, and
        its typed sections built once."""
        from xablate.config import compose_job

        cfg = compose_job(overrides)
        return cls(cfg, schema.typed(schema.Job, cfg))

    def with_data(self, data: schema.Data) -> Measured:
        """The same run on other data settings (an input pipeline's variants)."""
        return Measured(self.cfg, dataclasses.replace(self.config, data=data))

    def builder(self, *, image_shape, num_classes: int) -> dict[str, Any]:
        """The builder's arguments exactly as the trainer gives them (xablate.training.fitting.builder_kwargs)."""
        from xablate.config import axes_of
        from xablate.training.fitting import builder_kwargs

        return builder_kwargs(self.config.model, self.optim, axes_of(self.config), image_shape=image_shape,
                              num_classes=num_classes)


class EpochTimer(keras.callbacks.Callback):
    """The training part of each epoch (epoch begin -> validation begins, else epoch end), timed exactly as
    xablate.training.callbacks.MlflowEpochLogger times `images_per_second`, in wall seconds and in CPU seconds
    of the whole process; and the whole epoch up to this callback's `on_epoch_end` (after the callbacks listed
    before it, e.g. a run's checkpoint and MLflow logging).

    CPU seconds are the noise-robust companion of wall time on a shared machine: other processes' load
    stretches wall time (this process waits for a core) but not the work this process does. The delay from an
    epoch's start to its first batch is kept too: Keras' fit loop sometimes idles there for seconds.
    """

    def __init__(self):
        super().__init__()
        self.train_seconds: list[float] = []
        self.train_cpu_seconds: list[float] = []
        self.epoch_seconds: list[float] = []
        self.first_batch_delay: list[float] = []
        self._start = self._cpu_start = 0.0
        self._train_end: tuple[float, float] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._cpu_start = time.perf_counter(), time.process_time()
        self._train_end = None
        self._first_batch = True

    def on_train_batch_begin(self, batch, logs=None):
        if self._first_batch:
            self.first_batch_delay.append(time.perf_counter() - self._start)
            self._first_batch = False

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        wall, cpu = self._train_end or (now, time.process_time())
        self.train_seconds.append(wall - self._start)
        self.train_cpu_seconds.append(cpu - self._cpu_start)
        self.epoch_seconds.append(now - self._start)

    def images_per_second(self, images: int) -> list[float]:
        return [images / s for s in self.train_seconds]

    def images_per_cpu_second(self, images: int) -> list[float]:
        return [images / s for s in self.train_cpu_seconds]


def steady(values: list[float]) -> float:
    """Median of the epochs after the first (the first traces and compiles the train step)."""
    return statistics.median(values[1:]) if len(values) > 1 else float("nan")


def joined(values: list[float], digits: int = 1) -> str:
    """Per-epoch values as one CSV cell."""
    return ";".join(f"{v:.{digits}f}" for v in values)


def split(cell: str) -> list[float]:
    return [float(v) for v in cell.split(";") if v]


def compile_like_trainer(model, optim: dict | schema.Optim, *, batch_size: int, train_size: int, num_classes: int,
                         epochs: int, jit_compile="auto", run_eagerly: bool = False) -> None:
    """The optimizer, loss, metrics and XLA setting the trainer gives the model (its own helpers); `optim` typed,
    or as a subprocess receives it (a plain dict)."""
    from xablate.training.fitting import compile_model
    from xablate.training.recipes import build_optimizer

    optim = optim if isinstance(optim, schema.Optim) else schema.typed(schema.Optim, optim)
    optimizer = build_optimizer(optim, steps_per_epoch=math.ceil(train_size / batch_size), epochs=epochs,
                                batch_size=batch_size)
    compile_model(model, optimizer, num_classes, jit_compile, run_eagerly)
