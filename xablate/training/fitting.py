"""Fitting one variant inside an MLflow run that already exists: data -> model -> fit -> test -> artifacts.

`xablate.training.trainer` owns the run's lifecycle (validation, identity, skip/resume, FINISHED/FAILED);
this module does the work between, and `xablate bench` reuses its pieces (builder_kwargs, compile_model).

Evaluation protocol: validation after every epoch (for choices: best epoch, tuning), then the test split once,
with the final weights (the EMA weights when the recipe averages), as the reported number. Every evaluation
first recomputes the batch-norm statistics for the weights it evaluates (`train.precise_bn_batches`).
"""

from __future__ import annotations

import csv
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import keras
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from xablate.config import AXES
from xablate.data import load_data
from xablate.data.digest import dataset_inputs
from xablate.models import build_xception, preset_kwargs, summarize_model
from xablate.models.matching import match_params, matched_kwargs
from xablate.schema import Optim, model_settings
from xablate.models.pretrained import IMAGENET_RANGE, family_builds, load_pretrained, weights_file
from xablate.training.curves import log_curves
from xablate.training.finetune import set_base_trainable
from xablate.tracking.identity import param_value, recorded_config
from xablate.tracking.predictions import PREDICTIONS_ARTIFACT, PREDICTIONS_TAG, predict_split, predictions_bytes
from xablate.training.batchnorm import PreciseBatchNorm
from xablate.training.callbacks import MlflowEpochLogger, StopOnSignal, log_missing_steps
from xablate.training.checkpoint import advance_shuffle
from xablate.training.devices import distribution_scope, set_precision
from xablate.training.divergence import DivergenceGuard
from xablate.training.job import Job
from xablate.training.memory import halved_batch, is_out_of_memory
from xablate.training.recipes import build_optimizer, separate_ema_buffers
from xablate.training.reuse import COMPILED, architecture_key, replay_build_peek, reusable, start_job

RESUME_CHANGED_TAG = "xablate.resume_changed_params"  # a resumed run's params that this attempt would change


def builder_kwargs(model: dict, optim: Optim, axes: dict, *, image_shape: tuple[int, int, int], num_classes: int,
                   matched: bool = True) -> dict[str, Any]:
    """Builder arguments: the preset < the recipe's dropout/weight decay < model.* overrides < the axes;
    input shape and classes always come from the data; with `model.match` the width is solved for the segments
    value (xablate.models.matching); `matched=False` gives the configured width (the match's baseline)."""
    model_cfg = model_settings(model)
    preset = model_cfg.pop("preset")
    model_cfg.pop("weights")  # where training starts from (xablate.models.pretrained), not an argument
    match = model_cfg.pop("match")  # compute-matched spectrum: the width comes from the segments value
    match_residual = model_cfg.pop("match_residual", None)  # the reference's shortcuts (None: this model's)
    recipe = {k: getattr(optim, k) for k in ("weight_decay", "dropout") if getattr(optim, k) is not None}
    kwargs = preset_kwargs(preset, **{**recipe, **model_cfg, **{axis: axes[axis] for axis in AXES}})
    kwargs.update(input_shape=tuple(image_shape), classes=int(num_classes))
    return matched_kwargs(kwargs, match, residual=match_residual) if match and matched else kwargs


def compile_model(model, optimizer, num_classes: int, jit_compile="auto", run_eagerly: bool = False) -> None:
    """Sparse cross-entropy, accuracy (and top-5 accuracy above 5 classes), and the data loss (cross-entropy
    without the weight penalty). `run_eagerly` applies on TensorFlow,
    where skipping the graph trace pays off for tiny models; JAX without its jit retraces every step, so it
    always compiles."""
    run_eagerly = bool(run_eagerly) and keras.backend.backend() == "tensorflow"
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    # the cross-entropy alone: Keras' `loss` adds the layers' weight penalties (optim.weight_decay), which differ
    # between models of different sizes by construction; convergence is read on this one
    metrics.append(keras.metrics.SparseCategoricalCrossentropy(name="data_loss"))
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(), metrics=metrics,
                  jit_compile=False if run_eagerly else jit_compile, run_eagerly=run_eagerly)


def fit_with_oom_retry(job: Job):
    """Out of accelerator memory: one retry with half the batch and gradient accumulation (same effective
    batch); the change is recorded as the tag xablate.oom_retry."""
    batch_size = job.batch_size
    try:
        return _fit(job, batch_size, None)
    except Exception as error:
        if not (job.train.oom_retry and is_out_of_memory(error) and batch_size >= 2):
            raise
        smaller, accumulation = halved_batch(batch_size, None)
        note = (f"out of memory at batch {batch_size} ({type(error).__name__}); retried with batch {smaller} x "
                f"{accumulation} gradient accumulation steps")
        print(f"[xablate] {note}", file=sys.stderr, flush=True)
        job.client.set_tag(job.run_id, "xablate.oom_retry", note)
        del error
        gc.collect()
        return _fit(job, smaller, accumulation)


def _fit(job: Job, batch_size: int, accumulation: int | None):
    """`batch_size`: the batch each step loads (the configured one, or half of it after an out-of-memory retry,
    with `accumulation` steps per update)."""
    job.output_dir.mkdir(parents=True, exist_ok=True)
    seeds = job.source_seeds
    start_job(seeds["init"])  # jobs sharing a process (basic launcher) start clean and seeded; kept compiled models stay

    pretrained = weights_file(job.model["weights"])
    data = load_data(job.data, batch_size=batch_size, seed=seeds["order"],
                     value_range=IMAGENET_RANGE if pretrained is not None else (0.0, 1.0))
    set_precision(job.train.precision)
    try:
        with distribution_scope(job.train.data_parallel) as replicas:
            return _fit_in_scope(job, data, accumulation, replicas, pretrained)
    finally:
        set_precision("fp32")  # the policy is global: later jobs and callers start from float32


def _fit_in_scope(job: Job, data, accumulation: int | None, replicas: int, pretrained=None):
    """Builds, loads pretrained weights, compiles, restores and fits inside the distribution scope (variables are
    created here)."""
    train_cfg, client, run_id, output_dir = job.train, job.client, job.run_id, job.output_dir
    checkpoint = job.checkpoint
    axes = {axis: getattr(job.config, axis) for axis in AXES}
    kwargs = builder_kwargs(job.model, job.optim, axes, image_shape=data.image_shape, num_classes=data.num_classes)
    model = build_xception(**kwargs)
    summary = summarize_model(model)
    if pretrained is not None:
        report = load_pretrained(model, pretrained, family_builds(model, kwargs))
        log_params(client, run_id, {**report.params(), "init.weights_file": str(pretrained)})
        write_and_log(client, run_id, output_dir / "fresh_tensors.tsv", report.fresh_listing())
        print(f"[xablate] loaded {len(report.loaded)} tensors ({report.loaded_parameters:,} parameters) from "
              f"{pretrained}; {len(report.fresh)} freshly initialised (fresh_tensors.tsv)", flush=True)
    steps_per_epoch = job.steps_per_epoch(data.train_size)
    if job.model["match"]:  # the baseline's count (at the configured width), this model's, how far apart
        configured = builder_kwargs(job.model, job.optim, axes, image_shape=data.image_shape,
                                    num_classes=data.num_classes, matched=False)
        log_params(client, run_id, match_params(job.model["match"], configured, kwargs,
                                                residual=job.model.get("match_residual")))
    log_params(client, run_id, {
        **{f"builder.{k}": v for k, v in kwargs.items()},
        **summary.to_params(),
        "data.num_classes": data.num_classes,
        "data.train_size": data.train_size,
        "data.validation_size": data.validation_size,
        "data.test_size": data.test_size,
        "train.replicas": replicas,
        "train.steps_per_epoch": steps_per_epoch,
        # each source of variance's seed as drawn (a null key: the replicate's seed; subsample none: the split's order)
        **{f"seeds.{source}": "none" if value is None else value for source, value in job.source_seeds.items()},
        "data.value_range": list(IMAGENET_RANGE if pretrained is not None else (0.0, 1.0)),
    })
    client.log_inputs(run_id, datasets=dataset_inputs(
        job.data, job.digest,
        {"train": data.train_size, "validation": data.validation_size, "test": data.test_size}))
    write_and_log(client, run_id, output_dir / "config.yaml", yaml.safe_dump(recorded_config(job.cfg), sort_keys=False))
    write_and_log(client, run_id, output_dir / "model_summary.json", json.dumps(summary.to_dict(), indent=2))
    write_and_log(client, run_id, output_dir / "model_summary.txt", summary.format_table())

    epochs = int(train_cfg.epochs)
    freeze = int(train_cfg.freeze_base_epochs or 0)

    # a later job of the same architecture in this process trains the kept, already traced model (reuse.py)
    reuse_key = (architecture_key(job.optim, train_cfg, kwargs, steps_per_epoch=steps_per_epoch,
                                  backend=keras.backend.backend())
                 if reusable(train_cfg, accumulation=accumulation, replicas=replicas) else None)

    def compile_phase(frozen: bool):
        """The model compiled for a phase: base frozen (classifier only, batch norm in inference mode) or all
        trainable, each with its own optimizer from the recipe; the schedule counts the run's updates."""
        nonlocal model
        set_base_trainable(model, not frozen)
        # schedules count optimizer updates: with accumulation, steps of the effective (configured) batch
        optimizer = build_optimizer(job.optim, steps_per_epoch=steps_per_epoch, epochs=epochs,
                                    batch_size=job.batch_size, gradient_accumulation_steps=accumulation)
        model, reused = COMPILED.compiled(reuse_key, model, optimizer, lambda m, o: compile_model(
            m, o, data.num_classes, train_cfg.jit_compile, bool(train_cfg.run_eagerly)))
        if reuse_key is not None:
            client.set_tag(run_id, "xablate.compiled", "reused" if reused else "new")
        if reused:
            replay_build_peek(data.train)
        return getattr(model.optimizer, "inner_optimizer", model.optimizer)  # fp16 wraps it for loss scaling

    state = checkpoint.load() if checkpoint is not None else None
    initial_epoch = state.epoch + 1 if state is not None else 0
    # restore in the phase the checkpoint was written in (its optimizer holds that phase's variables)
    frozen = initial_epoch - 1 < freeze if state is not None else freeze > 0
    optimizer = compile_phase(frozen)
    if state is not None:
        checkpoint.restore(model, state)
        repaired = log_missing_steps(client, run_id, state.history)
        advance_shuffle(data.train, state.epoch + 1)
        print(f"[xablate] restored the checkpoint of epoch {state.epoch} from {checkpoint.folder}"
              + (f"; logged {repaired} epoch(s) it held that MLflow had missed" if repaired else ""), flush=True)

    guard = DivergenceGuard(train_cfg.diverge_factor, state.reference_loss if state is not None else None)
    logger = MlflowEpochLogger(client, run_id, data.train_size, checkpoint=checkpoint, guard=guard,
                               history=state.history if state is not None else None)
    evaluation = []  # run at every evaluation's start, in this order: EMA weights in, then their BN statistics
    if optimizer.use_ema:
        # swapped in for evaluation only: each epoch's checkpoint keeps the raw weights as the model's and the
        # averages as the optimizer's, so a resumed run trains on from where training left off
        evaluation.append(keras.callbacks.SwapEMAWeights())
    if train_cfg.precise_bn_batches:
        evaluation.append(PreciseBatchNorm(data.statistics_batches, train_cfg.precise_bn_batches))

    def fit(until: int, start: int, frozen_phase: bool):
        # while the base is frozen its batch-norm statistics stay the pretrained ones (no recomputation)
        phase_evaluation = [c for c in evaluation if not (frozen_phase and isinstance(c, PreciseBatchNorm))]
        model.fit(data.train, validation_data=data.validation, epochs=until, initial_epoch=start,
                  callbacks=[_TrainingEnds(logger), *phase_evaluation, guard, logger, StopOnSignal(),
                             *([job.pruning] if job.pruning is not None else []), *job.context.callbacks],
                  shuffle=False, verbose=_verbosity(train_cfg.verbose))  # the pipeline shuffles
        separate_ema_buffers(model.optimizer)

    if frozen and initial_epoch < freeze:
        fit(freeze, initial_epoch, frozen_phase=True)
        initial_epoch = freeze
    if frozen and guard.diverged is None and not model.stop_training and initial_epoch < epochs:
        optimizer = compile_phase(False)  # unfreeze: every weight trains from here, the schedule goes on
        optimizer.iterations.assign(freeze * steps_per_epoch)
    if guard.diverged is None and not model.stop_training and initial_epoch < epochs:
        fit(epochs, initial_epoch, frozen_phase=False)
    history = logger.history
    final = [_metric("epochs_completed", len(history)),
             _metric("train_seconds", sum(h["epoch_seconds"] for h in history))]
    val_acc = [h["val_accuracy"] for h in history]
    if val_acc and guard.diverged is None:
        final += [_metric("best_val_accuracy", max(val_acc)), _metric("best_epoch", int(val_acc.index(max(val_acc))))]
    pruned = job.pruning is not None and job.pruning.pruned_epoch is not None
    if guard.diverged is None and not pruned:  # a pruned tuning run stops there: no test split for it
        # the reported number: the final weights (Keras' fit leaves the EMA weights in place) on the test split
        test = model.evaluate(data.test, callbacks=[c for c in evaluation if isinstance(c, PreciseBatchNorm)],
                              verbose=0, return_dict=True)
        final += [_metric(f"test_{key}", value, step=max(len(history) - 1, 0)) for key, value in test.items()]
        if job.stage != "tune":  # a final run keeps each test image's prediction (xablate.tracking.predictions)
            labels, predicted = predict_split(model, data.test)
            path = output_dir / PREDICTIONS_ARTIFACT
            path.write_bytes(predictions_bytes(labels, predicted))
            client.log_artifact(run_id, str(path))
            client.set_tag(run_id, PREDICTIONS_TAG, PREDICTIONS_ARTIFACT)
    client.log_batch(run_id, metrics=final)
    log_history_csv(client, run_id, output_dir / "history.csv", history)
    if history:
        log_curves(client, run_id, output_dir / "curves.png", history)
    if guard.diverged is not None:
        raise guard.diverged
    if train_cfg.save_model and not pruned:
        model_path = output_dir / "model.keras"
        model.save(model_path)
        client.log_artifact(run_id, str(model_path))
    return history, summary


class _TrainingEnds(keras.callbacks.Callback):
    """Marks the end of an epoch's training part for `images_per_second` before any evaluation work (EMA swap,
    batch-norm recomputation) starts."""

    def __init__(self, logger: MlflowEpochLogger):
        super().__init__()
        self.logger = logger

    def on_test_begin(self, logs=None):
        self.logger.on_test_begin(logs)


def _metric(key, value, step: int = 0):
    return Metric(key, float(value), int(time.time() * 1000), step)


def unlogged_params(logged: dict[str, str], params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Of `params`, those not logged yet, and the logged ones whose value differs, {key: [logged, now]} (compared
    as MLflow stores them: cut at its length limit)."""
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    fresh, changed = {}, {}
    for key, value in params.items():
        now = param_value(value)
        if key not in logged:
            fresh[key] = value
        elif logged[key] != now[:MAX_PARAM_VAL_LENGTH]:
            changed[key] = [logged[key], now]
    return fresh, changed


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    """Logs `params` on the run. A resumed run keeps what an earlier attempt logged (MLflow refuses to change a
    value): each that this attempt would change is recorded in the tag xablate.resume_changed_params,
    {key: [logged, this attempt's]}. Only settings outside the run's identity can differ there (the same store
    named another way, a heartbeat, the pretrained file's cache path, the replicas of another node); the identity
    that matched the run covers the rest."""
    run = client.get_run(run_id)
    fresh, changed = unlogged_params(run.data.params, params)
    items = [Param(k, param_value(v)) for k, v in fresh.items()]
    for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        client.log_batch(run_id, params=items[start:start + 100])
    if changed:
        recorded = {**json.loads(run.data.tags.get(RESUME_CHANGED_TAG, "{}")),
                    **{key: [value[:200] for value in pair] for key, pair in changed.items()}}
        text = json.dumps(recorded)
        while len(text) > 5000:  # MLflow's tag limit: the last keys give way, the JSON stays whole
            recorded.pop(next(reversed(recorded)))
            text = json.dumps(recorded)
        client.set_tag(run_id, RESUME_CHANGED_TAG, text)


def write_and_log(client: MlflowClient, run_id: str, path: Path, text: str) -> None:
    path.write_text(text)
    client.log_artifact(run_id, str(path))


def log_history_csv(client, run_id, path: Path, history: list[dict[str, float]]) -> None:
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    client.log_artifact(run_id, str(path))


def _verbosity(setting) -> int:
    """auto: Keras' progress bar on a terminal, one line per epoch in logs and pipes."""
    if setting == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(setting)
