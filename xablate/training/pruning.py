"""A tuning job's pruning: after each epoch its validation value goes to its Optuna trial, whose pruner may stop
the run there (xablate.tuning.TrialReporter). Only the staged sweeper's tune stage arms it (`tracking.trial`); a
final-stage job never carries a trial, so it is never pruned."""

from __future__ import annotations

import keras

from xablate.staging import TUNE_METRICS


class PruningCallback(keras.callbacks.Callback):
    """Stops training where the trial's pruner says; `pruned_epoch` (epochs completed) and `reason` say so."""

    def __init__(self, reporter):
        super().__init__()
        name, self.higher = TUNE_METRICS[reporter.metric]
        self.reporter = reporter
        self.name = "val_accuracy" if name == "best_val_accuracy" else name  # what each epoch logs
        self.pruned_epoch: int | None = None
        self.reason = ""

    def on_epoch_end(self, epoch, logs=None):
        if not logs or self.name not in logs:
            return
        value = float(logs[self.name])
        if self.reporter.should_stop(value if self.higher else -value, epoch + 1):
            self.pruned_epoch = epoch + 1
            self.reason = (f"{self.reporter.pruner_name} pruner stopped the trial after epoch {epoch + 1} of its "
                           f"stage: {self.name} {value:.4f}")
            self.model.stop_training = True
