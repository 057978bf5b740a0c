"""The divergence guard: a NaN/inf training loss, or one past `factor` x its start, stops the run.

Divergence is a result of the variant (paper-style ablations report it), not a crash: the run ends FAILED
with the tag xablate.outcome=diverged and the epoch and batch it happened at, and the analysis keeps it.
"""

from __future__ import annotations

import math

import keras


class RunDiverged(RuntimeError):
    """Raised after the run has been recorded as diverged, so that the job (and the sweep) reports it."""

    def __init__(self, epoch: int, batch: int, loss: float, reason: str):
        self.epoch, self.batch, self.loss, self.reason = epoch, batch, loss, reason
        super().__init__(f"training diverged at epoch {epoch}, batch {batch}: {reason}")


class DivergenceGuard(keras.callbacks.Callback):
    """Checks the running training loss after every batch.

    The reference is the loss after the run's first batch (kept across resumes); `factor` null or 0 checks
    only for NaN/inf.
    """

    def __init__(self, factor: float | None, reference_loss: float | None = None):
        super().__init__()
        self.factor, self.reference_loss = factor, reference_loss
        self.diverged: RunDiverged | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not logs or "loss" not in logs or self.diverged is not None:
            return
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            reason = f"loss is {loss}"
        elif self.reference_loss is None:
            self.reference_loss = loss
            return
        elif self.factor and loss > self.factor * max(self.reference_loss, 1e-8):
            reason = (f"loss {loss:.4g} > train.diverge_factor={self.factor:g} x its start "
                      f"{self.reference_loss:.4g}")
        else:
            return
        self.diverged = RunDiverged(self._epoch, int(batch), loss, reason)
        self.model.stop_training = True
