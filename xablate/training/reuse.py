"""One compile per architecture: jobs in one process that train the same graph reuse its traced steps.

Hydra's basic launcher runs a sweep's jobs one after another in one process. Each job used to build, compile
and trace its own model, and the trace costs more than an epoch of a small variant (mini Xception on this CPU:
~17 s of tracing in the first epoch against ~9 s per later epoch), paid again by every seed.

Here the first job of an architecture keeps its compiled model. A later job with the same key (builder
arguments, recipe, batch, schedule length, precision and compile settings: another seed, or any variant whose
graph is the same) still builds its fresh model and optimizer, exactly as a job without reuse would, so every
value its seed decides (initial weights, dropout generator states, the data order drawn before) is the one a
fresh job gets. That state is then copied into the kept model, whose optimizer takes the state of the job's
initial state (kept when it was built: iteration 0, zero moments and averages, the initial learning rate), and whose metrics are
reset; the traced train and test steps run on the new values. Only the trace is shared: the results are
bit-for-bit those of a fresh model (tests/test_reuse.py checks it on TensorFlow and JAX).

Not reused (each builds and compiles as before): eager runs (no trace to keep), fine-tuning with a frozen warm-up
(two compiles with different trainable sets), gradient accumulation after an out-of-memory retry, and
data-parallel runs (variables belong to a per-job distribution scope). `train.reuse_compiled=false` turns it off.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import asdict
from typing import Callable

import keras

from xablate.schema import Optim, Train, keys_with

KEPT_ARCHITECTURES = 4  # compiled models kept per process (least recently used dropped): a sweep that
                        # alternates a few variants across seeds still reuses, memory stays bounded


class CompiledModels:
    """The compiled models of this process, by architecture key, each with its optimizer's initial state."""

    def __init__(self, capacity: int = KEPT_ARCHITECTURES):
        self.capacity = capacity
        self._kept: OrderedDict[str, tuple[keras.Model, list]] = OrderedDict()
        self.reused = 0  # jobs that trained a kept model (for benches and tests)

    def compiled(self, key: str | None, model: keras.Model, optimizer, compile_fn: Callable) -> tuple[keras.Model, bool]:
        """The model to train: the kept model of `key` carrying the fresh `model`'s state and its optimizer's
        initial state, or `model` itself compiled with `optimizer` (and kept under `key`); and whether a kept
        one was reused."""
        kept = self._kept.get(key) if key is not None else None
        if kept is not None and _adopt(*kept, model, optimizer):
            self._kept.move_to_end(key)
            self.reused += 1
            return kept[0], True
        compile_fn(model, optimizer)
        if key is not None:
            # built now rather than in the first step (the same zeros, iteration 0 and initial rate), so that its
            # initial state can be kept for the next job of this architecture
            model.optimizer.build(model.trainable_variables)
            self._kept[key] = (model, [keras.ops.convert_to_numpy(v.value) for v in model.optimizer.variables])
            self._kept.move_to_end(key)
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
        return model, False

    def clear(self) -> None:
        self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)


COMPILED = CompiledModels()


def start_job(seed: int) -> None:
    """`keras.backend.clear_session()` and `keras.utils.set_random_seed(seed)` for a new job: fresh layer names,
    default settings, every generator seeded. While compiled models are kept, TensorFlow's kernel cache is left in
    place: both calls clear it (set_seed "to reset any existing seeds" of stateful kernels), after which a kept
    model's first step re-instantiates all its kernels (~2.5 s for the debug model here, the cost of a trace of a
    small one). Keras draws its randomness through stateless ops seeded from SeedGenerator variables, which are
    copied per job, so no kernel state carries over (tests/test_reuse.py: bit-for-bit, dropout and augmentation
    on)."""
    with _kernel_cache_kept(len(COMPILED) > 0 and keras.backend.backend() == "tensorflow"):
        keras.backend.clear_session(free_memory=not len(COMPILED))  # Python's own collector frees the rest
        keras.utils.set_random_seed(seed)


@contextmanager
def _kernel_cache_kept(keep: bool):
    if not keep:
        yield
        return
    from tensorflow.python import pywrap_tfe

    clear = pywrap_tfe.TFE_ContextClearCaches
    pywrap_tfe.TFE_ContextClearCaches = lambda handle: None
    try:
        yield
    finally:
        pywrap_tfe.TFE_ContextClearCaches = clear


def architecture_key(optim: Optim, train: Train, builder: dict, *, steps_per_epoch: int, backend: str) -> str:
    """What the traced steps depend on besides variable values: the builder's arguments, the recipe (optimizer,
    schedule, averaging), the train keys declared `graph` in xablate.schema (batch size, epochs: the schedule's
    length, precision, XLA), steps per epoch and the backend. The seed is not in it."""
    return json.dumps({
        "backend": backend,
        "builder": {k: list(v) if isinstance(v, tuple) else v for k, v in builder.items()},
        "optim": asdict(optim),
        "train": {key: getattr(train, key) for key in keys_with("graph", "train.")},  # xablate.schema's graph keys
        "steps_per_epoch": int(steps_per_epoch),
    }, sort_keys=True, default=str)


def reusable(train: Train, *, accumulation: int | None, replicas: int) -> bool:
    """Whether this job may train a kept model (see the module's docstring for what is left out)."""
    return (bool(train.reuse_compiled)
            and not (train.run_eagerly and keras.backend.backend() == "tensorflow")
            and not int(train.freeze_base_epochs or 0)
            and accumulation is None
            and int(replicas) == 1)


def replay_build_peek(dataset) -> None:
    """On JAX (and torch) the first `fit` of a fresh model takes one batch from a new iterator over the training
    data to build the model's state symbolically (Keras' `_symbolic_build`); that draws the iterator's shuffle
    seed and advances the augmentation generators by a batch. A kept model is built already, so the draw is made
    here, for the job's data to come out as a fresh job's. TensorFlow builds inside its trace: nothing to do."""
    if keras.backend.backend() == "tensorflow":
        return
    next(iter(dataset))


def _adopt(kept: keras.Model, initial_optimizer_state: list, fresh: keras.Model, optimizer) -> bool:
    """Copies the fresh model's variables (weights, batch-norm statistics, seed-generator states) into the kept
    model and puts its optimizer back to its initial state; False (nothing changed) if the layouts differ."""
    kept_vars, fresh_vars = kept.variables, fresh.variables
    inner = getattr(kept.optimizer, "inner_optimizer", kept.optimizer)  # fp16: Keras wraps it for loss scaling
    if not _same_layout(kept_vars, fresh_vars) or type(optimizer) is not type(inner):
        return False
    for target, source in zip(kept_vars, fresh_vars):
        target.assign(source.value)
    for target, value in zip(kept.optimizer.variables, initial_optimizer_state):
        target.assign(value)
    kept.reset_metrics()
    kept.stop_training = False
    return True


def _same_layout(targets, sources) -> bool:
    return len(targets) == len(sources) and all(
        tuple(t.shape) == tuple(s.shape) and t.dtype == s.dtype for t, s in zip(targets, sources))
