"""Keras callbacks of a job: per-epoch metrics to MLflow with step=epoch."""

from __future__ import annotations

import time

import keras
from mlflow import MlflowClient
from mlflow.entities import Metric

from xablate.training.recipes import current_learning_rate


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs Keras' epoch logs plus learning rate, seconds and images/s per epoch, one point per epoch.

    `epoch_seconds` is the whole epoch (training and validation); `images_per_second` counts the training
    part only (up to the validation pass), so it is comparable with `xablate bench` throughputs.
    """

    def __init__(self, client: MlflowClient, run_id: str, train_size: int):
        super().__init__()
        self.client, self.run_id, self.train_size = client, run_id, train_size
        self.history: list[dict[str, float]] = []
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
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, epoch) for k, v in sorted(values.items())])
