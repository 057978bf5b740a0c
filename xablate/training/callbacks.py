"""Keras callbacks of a job: per-epoch metrics to MLflow with step=epoch, after the epoch's checkpoint."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager

import keras
from mlflow import MlflowClient
from mlflow.entities import Metric

from xablate.training.checkpoint import CheckpointState, EpochCheckpoint
from xablate.training.divergence import DivergenceGuard
from xablate.training.recipes import current_learning_rate
from xablate.stop_request import raise_if_requested


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs Keras' epoch logs plus learning rate, seconds and images/s per epoch, one point per epoch.

    `epoch_seconds` is the whole epoch (training and validation); `images_per_second` counts the training
    part only (up to the validation pass), so it is comparable with `xablate bench` throughputs.

    With a checkpoint, each epoch is saved *before* its metrics are logged, and the saved state carries the
    metrics too: a kill between the two is repaired on resume (`log_missing_steps`), so every step is logged
    exactly once. A diverged epoch is logged but not checkpointed.
    """

    def __init__(self, client: MlflowClient, run_id: str, train_size: int, *,
                 checkpoint: EpochCheckpoint | None = None, guard: DivergenceGuard | None = None,
                 history: list[dict[str, float]] | None = None):
        super().__init__()
        self.client, self.run_id, self.train_size = client, run_id, train_size
        self.checkpoint, self.guard = checkpoint, guard
        self.history: list[dict[str, float]] = list(history or [])
        self._epoch_start = self._train_end = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._train_end = None

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        seconds = now - self._epoch_start
        train_seconds = (self._train_end or now) - self._epoch_start
        values = {key: float(value) for key, value in (logs or {}).items()}
        values["learning_rate"] = current_learning_rate(self.model.optimizer)
        values["epoch_seconds"] = seconds
        values["images_per_second"] = self.train_size / train_seconds
        self.history.append({"epoch": epoch, **values})
        with interrupts_held():  # Ctrl-C / SIGTERM lands after the checkpoint and the metrics, not inside them
            if self.checkpoint is not None and (self.guard is None or self.guard.diverged is None):
                reference = self.guard.reference_loss if self.guard is not None else None
                self.checkpoint.save(self.model, CheckpointState(self.run_id, epoch, self.history, reference))
            log_epochs(self.client, self.run_id, [self.history[-1]])


class StopOnSignal(keras.callbacks.Callback):
    """Raises a received SIGINT/SIGTERM again after every training batch and epoch
    (xablate.stop_request): the first KeyboardInterrupt may have been swallowed inside a finalizer. It
    comes after the epoch logger, so an epoch that completed is checkpointed first. No test-batch hook: it would
    make Keras' evaluation synchronous (the divergence guard already has a train-batch one)."""

    def on_train_batch_end(self, batch, logs=None):
        raise_if_requested()

    def on_epoch_end(self, epoch, logs=None):
        raise_if_requested()


@contextmanager
def interrupts_held(signals=(signal.SIGINT, signal.SIGTERM)):
    """Holds SIGINT/SIGTERM back while the block runs and delivers them to their handlers when it is done.

    A KeyboardInterrupt raised inside an MLflow write to SQLite can leave that transaction's connection holding
    the database lock: the run's KILLED status then waits out the busy timeout, fails with "database is locked",
    and the run is left RUNNING. Inside a checkpoint save it would leave a half-written weights file. Only the
    main thread may install handlers; elsewhere the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in signals}
    for signum in signals:
        signal.signal(signum, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)  # stop_request's handler (run.py), or Python's default_int_handler: KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def log_epochs(client: MlflowClient, run_id: str, rows: list[dict[str, float]]) -> None:
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(row["epoch"])) for row in rows for k, v in sorted(row.items())
               if k != "epoch"]
    for start in range(0, len(metrics), 1000):  # MLflow accepts at most 1000 metrics per batch
        client.log_batch(run_id, metrics=metrics[start:start + 1000])


def log_missing_steps(client: MlflowClient, run_id: str, history: list[dict[str, float]]) -> int:
    """Logs the checkpointed epochs whose metrics never reached MLflow; returns how many."""
    logged = {m.step for m in client.get_metric_history(run_id, "loss")}
    missing = [row for row in history if int(row["epoch"]) not in logged]
    if missing:
        log_epochs(client, run_id, missing)
    return len(missing)
