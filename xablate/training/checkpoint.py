"""Epoch-end checkpoints, so that a killed run continues where it stopped.

One folder per run identity holds `epoch-<n>.weights.h5` (the model's and the optimizer's variables: weights,
moments, EMA weights, iteration count and with it the learning-rate schedule) and `state.json` (the run id,
the last completed epoch, the per-epoch metrics so far and the divergence guard's reference loss). The
weights file is written first under its own name and `state.json` is replaced atomically after it, so a kill
at any moment leaves either the previous or the new checkpoint, never a mix.

Not restored (Keras keeps them outside the model's variables): the state of the dropout and augmentation
random generators. The data order of each epoch is restored (see `advance_shuffle`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from xablate.paths import project_root

STATE_FILE = "state.json"
CRASH_DIR = "crashes"  # beside the identities' folders: a training run's native crash report (tracking.native_crash)


def checkpoint_root(configured: str | None, tracking_uri: str) -> Path:
    """`train.checkpoint_dir` if set; else beside a SQLite store (<store folder>/checkpoints); else
    <project>/checkpoints for a server store."""
    if configured:
        return Path(configured).expanduser().resolve()
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):]).parent / "checkpoints"
    return project_root() / "checkpoints"


@dataclass
class CheckpointState:
    run_id: str
    epoch: int = -1                      # last completed epoch; -1: none
    history: list[dict] = field(default_factory=list)
    reference_loss: float | None = None  # the divergence guard's start loss
    weights_file: str | None = None


class EpochCheckpoint:
    """Saves and restores one run's training state in `folder`."""

    def __init__(self, folder: Path, run_id: str):
        self.folder, self.run_id = Path(folder), run_id

    def load(self) -> CheckpointState | None:
        """The saved state of this run, or None (no checkpoint, or one left by another run)."""
        path = self.folder / STATE_FILE
        if not path.exists():
            return None
        state = CheckpointState(**json.loads(path.read_text()))
        if state.run_id != self.run_id or not state.weights_file or not (self.folder / state.weights_file).exists():
            return None
        return state

    def restore(self, model, state: CheckpointState) -> None:
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its variables must exist before loading
        model.load_weights(self.folder / state.weights_file)

    def save(self, model, state: CheckpointState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        weights_file = f"epoch-{state.epoch}.weights.h5"
        model.save_weights(self.folder / weights_file, overwrite=True)
        state.weights_file = weights_file
        tmp = self.folder / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state.__dict__))
        os.replace(tmp, self.folder / STATE_FILE)
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != weights_file:
                old.unlink(missing_ok=True)

    def delete(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def advance_shuffle(dataset, epochs: int) -> None:
    """Moves a reshuffling dataset on by `epochs` epochs of Keras' fit, so that a run resumed at epoch `epochs`
    sees the order the uninterrupted run would: the in-memory pipeline reseeds; a tf.data dataset opens (and
    drops) the iterators fit would have opened, each of which draws the next shuffle seed."""
    if epochs <= 0:
        return
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epochs)
    elif hasattr(dataset, "_variant_tensor"):
        for _ in range(keras_iterators_before(dataset, epochs)):
            iter(dataset)


def keras_iterators_before(dataset, epochs: int) -> int:
    """How many iterators Keras 3's fit opens on a tf.data dataset before epoch `epochs` starts.

    Its epoch iterator (keras.src.trainers.epoch_iterator, steps_per_epoch=None) opens one at the start of every
    epoch and, once the epoch's length is known, another at its end, which the next epoch's start replaces
    unused: two per epoch, so epoch e reads the 2e-th. Over a dataset of unknown length the first epoch opens
    only one (epoch e >= 1 reads the (2e-1)-th); a resumed run then matches its first epoch, but not the later
    ones, whose pattern no number of dropped iterators can restore (arrays, image folders and most TFDS sets
    have a known length).
    """
    known = int(dataset.cardinality()) >= 0
    return 2 * epochs if known else 2 * epochs - 1
