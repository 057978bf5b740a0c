"""Three debug jobs in one process, as Hydra's basic launcher runs a sweep: seed 1, seed 0, seed 1 again.

Run as `python tests/reuse_jobs.py <tracking uri> <output folder>` under the Keras backend to test; prints one
JSON object: per job its history, final variables (model and optimizer) digests, the run's compiled tag, and
how many jobs trained a kept model. Used by tests/test_reuse.py.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

from xablate.config import compose_job as compose  # noqa: E402
from xablate.training.reuse import COMPILED  # noqa: E402
from xablate.training.trainer import RunContext, train  # noqa: E402

# everything a job could leak into the next: Adam moments, EMA averages, batch-norm statistics, the dropout
# generator, the augmentation generators and the data order
RECIPE = ["debug=default", "train.run_eagerly=false", "optim.ema_momentum=0.9", "optim.dropout=0.5",
          "data.augment.enabled=true", "study=reuse", "force=true"]  # the model file saved too (JAX: after EMA)


class FinalState(keras.callbacks.Callback):
    """The model's and optimizer's variables when training ends (before the test evaluation)."""

    def on_train_end(self, logs=None):
        self.variables = [np.array(v.value) for v in self.model.variables]
        self.optimizer = [np.array(v.value) for v in self.model.optimizer.variables]


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode() + str(a.dtype).encode() + a.tobytes())
    return h.hexdigest()


def main(uri: str, out: Path) -> None:
    jobs = []
    for number, seed in enumerate([1, 0, 1]):
        cfg = compose([*RECIPE, f"seed={seed}", f"backend={keras.backend.backend()}", f"tracking.uri={uri}"])
        state = FinalState()
        result = train(cfg, RunContext(output_dir=out / str(number), callbacks=[state]))
        run = MlflowClient(uri).get_run(result.run_id)
        jobs.append({
            "seed": seed,
            "compiled": run.data.tags.get("xablate.compiled"),
            "history": [{k: v for k, v in row.items() if k not in ("epoch_seconds", "images_per_second")}
                        for row in result.history],
            "test_accuracy": run.data.metrics["test_accuracy"],
            "variables": digest(state.variables),
            "variable_count": len(state.variables),
            "optimizer": digest(state.optimizer),
            "optimizer_count": len(state.optimizer),
        })
    print(json.dumps({"backend": keras.backend.backend(), "reused": COMPILED.reused, "jobs": jobs}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
