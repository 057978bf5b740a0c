"""A training job that dies natively on purpose, for the containment tests (a real SIGSEGV, any processor).

    python tests/crash_job.py <tracking uri> <output folder> crash|clean [overrides ...]

`crash`: the process sends itself SIGSEGV at the first training batch of its second epoch (after the first
epoch's checkpoint), as a fault inside a native kernel would; `clean`: the same job without the crash.
"""

import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from xablate.config import compose_job  # noqa: E402
from xablate.training.trainer import RunContext, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class SegfaultInSecondEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 1:
            os.kill(os.getpid(), signal.SIGSEGV)


def main() -> None:
    uri, output, mode, *overrides = sys.argv[1:]
    cfg = compose_job(["debug=default", f"tracking.uri={uri}", *overrides])
    callbacks = [SegfaultInSecondEpoch()] if mode == "crash" else []
    result = train(cfg, RunContext(output_dir=Path(output), callbacks=callbacks))
    print(f"RESULT {result.run_id} {result.status}", flush=True)


if __name__ == "__main__":
    main()
