"""What the `xablate bench harness` measurements share: the epoch clock and the trainer's compile."""

from __future__ import annotations

import math
import statistics
import time

import keras


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


def compile_like_trainer(model, optim: dict, *, batch_size: int, train_size: int, num_classes: int,
                         epochs: int, jit_compile="auto", run_eagerly: bool = False) -> None:
    """The optimizer, loss, metrics and XLA setting the trainer gives the model (its own helpers)."""
    from xablate.schema import Optim, typed
    from xablate.training.fitting import compile_model
    from xablate.training.recipes import build_optimizer

    optimizer = build_optimizer(typed(Optim, optim), steps_per_epoch=math.ceil(train_size / batch_size), epochs=epochs,
                                batch_size=batch_size)
    compile_model(model, optimizer, num_classes, jit_compile, run_eagerly)
