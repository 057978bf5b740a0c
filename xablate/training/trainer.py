"""One job, end to end: validate -> MLflow run -> data -> model -> fit -> artifacts -> FINISHED/FAILED.

`train(cfg, context)` takes the plain composed config (run.py converts Hydra's once) and a RunContext with
what Hydra knows about the job; tests call it directly.
"""

from __future__ import annotations

import csv
import gc
import json
import math
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from xablate.config import AXES, flatten, variant_label
from xablate.data import load_data
from xablate.models import ModelSummary, build_xception, preset_kwargs, summarize_model
from xablate.tracking.identity import param_value, run_identity
from xablate.tracking.previous_runs import IDENTITY_TAG, OUTCOME_TAG, Heartbeat, owner_tags, plan_run
from xablate.tracking.store import (PARENT_RUN_FILE, SKIPPED_DIR, check_reachable, git_commit, open_experiment,
                                    resolve_tracking_uri)
from xablate.training.callbacks import MlflowEpochLogger, log_missing_steps
from xablate.training.checkpoint import EpochCheckpoint, advance_shuffle, checkpoint_root
from xablate.training.divergence import DivergenceGuard, RunDiverged
from xablate.training.memory import halved_batch, is_out_of_memory
from xablate.training.devices import distribution_scope, set_precision
from xablate.training.recipes import build_optimizer
from xablate.validation import normalize_axes, validate_job_config


@dataclass
class RunContext:
    """What the launcher knows about a job: where it writes, and which sweep it belongs to."""

    output_dir: Path
    sweep_dir: Path | None = None
    overrides: list[str] = field(default_factory=list)
    job_num: int | None = None
    callbacks: list = field(default_factory=list)  # extra Keras callbacks (profilers, notebooks, tests)


@dataclass
class TrainResult:
    run_id: str
    tracking_uri: str
    status: str
    history: list[dict[str, float]]
    summary: ModelSummary | None


def builder_kwargs(cfg: dict, *, image_shape: tuple[int, int, int], num_classes: int) -> dict[str, Any]:
    """Builder arguments: the preset < the recipe's dropout/weight decay < model.* overrides < the axes;
    input shape and classes always come from the data."""
    model_cfg = dict(cfg["model"])
    preset = model_cfg.pop("preset")
    recipe = {k: cfg["optim"][k] for k in ("weight_decay", "dropout") if cfg["optim"].get(k) is not None}
    axes = {axis: cfg[axis] for axis in AXES}
    kwargs = preset_kwargs(preset, **{**recipe, **model_cfg, **axes})
    kwargs.update(input_shape=tuple(image_shape), classes=int(num_classes))
    return kwargs


def train(cfg: dict, context: RunContext) -> TrainResult:
    """Trains the configured variant and records it as an MLflow run (nested under its sweep's parent).

    A run with the same identity in the study is skipped when it finished or diverged, and resumed (same run
    id, from its last epoch checkpoint) when it was interrupted or failed; `force=true` always starts anew.
    """
    validate_job_config(cfg)
    cfg = normalize_axes(cfg)
    if cfg["backend"] != keras.backend.backend():
        raise ValueError(f"Received backend={cfg['backend']!r}, but Keras in this process runs on "
                         f"{keras.backend.backend()!r}: start the job through run.py (which sets KERAS_BACKEND "
                         f"before Keras loads) or set KERAS_BACKEND={cfg['backend']} yourself.")
    uri = resolve_tracking_uri(cfg["tracking"]["uri"])
    check_reachable(uri)
    client, experiment_id = open_experiment(uri, cfg["tracking"]["experiment"])
    label = variant_label(cfg)
    identity = run_identity(cfg, keras.backend.backend())
    commit = git_commit()
    plan = plan_run(client, experiment_id, identity, force=bool(cfg.get("force")),
                    stale_after_seconds=float(cfg["tracking"]["stale_after_seconds"]))
    if plan.action == "skip":
        return _skip(plan, label, uri, commit, context)

    tags = {
        "xablate.variant": label,
        "xablate.study": str(cfg["study"]),
        IDENTITY_TAG: identity,
        "xablate.backend": keras.backend.backend(),
        "xablate.device": _device(),
        "xablate.overrides": " ".join(context.overrides),
        **{f"xablate.{axis}": str(cfg[axis]) for axis in (*AXES, "seed")},
        **owner_tags(),
    }
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if context.sweep_dir is not None:
        tags["mlflow.parentRunId"] = _parent_run_id(Path(context.sweep_dir))
    if plan.action == "resume":
        run_id = plan.run.info.run_id
        previous = plan.run.data.tags
        tags["xablate.resumes"] = str(int(previous.get("xablate.resumes", "0")) + 1)
        if previous.get("mlflow.parentRunId") and previous.get("mlflow.parentRunId") != tags.get("mlflow.parentRunId"):
            tags["xablate.previous_parent"] = previous["mlflow.parentRunId"]
        client.update_run(run_id, status="RUNNING")
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        if "xablate.error" in previous:
            client.set_tag(run_id, "xablate.previous_error", previous["xablate.error"])
            client.delete_tag(run_id, "xablate.error")
        print(f"[xablate] resuming MLflow run {run_id} ({label}): it was {plan.reason.split(',')[0]}",
              flush=True)
    else:
        run_id = client.create_run(experiment_id, run_name=label, tags=tags).info.run_id
        print(f"[xablate] MLflow run {run_id} ({label}) in experiment '{cfg['tracking']['experiment']}' at {uri}",
              flush=True)

    checkpoint = None
    if cfg["train"]["checkpoint"]:
        folder = checkpoint_root(cfg["train"]["checkpoint_dir"], uri) / str(cfg["study"]) / identity
        checkpoint = EpochCheckpoint(folder, run_id)
        if plan.action == "new":
            checkpoint.delete()  # a forced rerun, or leftovers of a deleted run: start clean
    try:
        with Heartbeat(client, run_id, float(cfg["tracking"]["heartbeat_seconds"])):
            _log_params(client, run_id, flatten(cfg))
            history, summary = _fit_with_oom_retry(cfg, client, run_id, Path(context.output_dir), checkpoint,
                                                   context.callbacks)
    except RunDiverged as diverged:
        _record_divergence(client, run_id, diverged)
        raise
    except BaseException as error:
        _record_failure(client, run_id, error, Path(context.output_dir))
        raise
    client.set_terminated(run_id, status="FINISHED")
    if checkpoint is not None:
        checkpoint.delete()
    return TrainResult(run_id, uri, "FINISHED", history, summary)


def _skip(plan, label: str, uri: str, commit: str | None, context: RunContext) -> TrainResult:
    run = plan.run
    print(f"[xablate] skipping {label}: run {run.info.run_id} {plan.reason} (force=true reruns it)", flush=True)
    recorded = run.data.tags.get("mlflow.source.git.commit")
    if commit and recorded and recorded != commit:
        print(f"[xablate] warning: run {run.info.run_id} was trained at commit {recorded[:12]}, this checkout is "
              f"{commit[:12]}; if the change matters, rerun with force=true", file=sys.stderr, flush=True)
    if context.sweep_dir is not None:  # the sweep's summary lists skipped variants too
        folder = Path(context.sweep_dir) / SKIPPED_DIR
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{context.job_num or 0}").write_text(run.info.run_id)
    return TrainResult(run.info.run_id, uri, "SKIPPED", [], None)


def _fit_with_oom_retry(cfg, client, run_id, output_dir, checkpoint, extra_callbacks):
    """Out of accelerator memory: one retry with half the batch and gradient accumulation (same effective
    batch); the change is recorded as the tag xablate.oom_retry."""
    batch_size = int(cfg["train"]["batch_size"])
    try:
        return _fit(cfg, client, run_id, output_dir, checkpoint, extra_callbacks, batch_size, None)
    except Exception as error:
        if not (cfg["train"]["oom_retry"] and is_out_of_memory(error) and batch_size >= 2):
            raise
        smaller, accumulation = halved_batch(batch_size, None)
        note = (f"out of memory at batch {batch_size} ({type(error).__name__}); retried with batch {smaller} x "
                f"{accumulation} gradient accumulation steps")
        print(f"[xablate] {note}", file=sys.stderr, flush=True)
        client.set_tag(run_id, "xablate.oom_retry", note)
        del error
        gc.collect()
        return _fit(cfg, client, run_id, output_dir, checkpoint, extra_callbacks, smaller, accumulation)


def _parent_run_id(sweep_dir: Path) -> str:
    marker = sweep_dir / PARENT_RUN_FILE
    if not marker.exists():
        raise RuntimeError(
            f"This job belongs to the sweep in {sweep_dir}, but the sweep's MLflow parent run was not created "
            f"({marker} is missing): see the '[xablate] could not start the sweep's parent run' message above, "
            f"and check that conf/config.yaml still lists the mlflow_sweep callback."
        )
    return marker.read_text().strip()


def _fit(cfg: dict, client: MlflowClient, run_id: str, output_dir: Path, checkpoint: EpochCheckpoint | None,
         extra_callbacks: list, batch_size: int, accumulation: int | None):
    output_dir.mkdir(parents=True, exist_ok=True)
    seed, train_cfg = int(cfg["seed"]), cfg["train"]
    keras.backend.clear_session()  # jobs sharing a process (basic launcher) start clean
    keras.utils.set_random_seed(seed)

    data = load_data(cfg["data"], batch_size=batch_size, seed=seed)
    set_precision(train_cfg["precision"])
    try:
        with distribution_scope(train_cfg["data_parallel"]) as replicas:
            return _fit_in_scope(cfg, client, run_id, output_dir, checkpoint, extra_callbacks, data, accumulation,
                                 replicas)
    finally:
        set_precision("fp32")  # the policy is global: later jobs and callers start from float32


def _fit_in_scope(cfg, client, run_id, output_dir, checkpoint, extra_callbacks, data, accumulation, replicas):
    """Builds, compiles, restores and fits inside the distribution scope (variables are created here)."""
    train_cfg = cfg["train"]
    kwargs = builder_kwargs(cfg, image_shape=data.image_shape, num_classes=data.num_classes)
    model = build_xception(**kwargs)
    summary = summarize_model(model)
    _log_params(client, run_id, {
        **{f"builder.{k}": v for k, v in kwargs.items()},
        **summary.to_params(),
        "data.num_classes": data.num_classes,
        "data.train_size": data.train_size,
        "data.validation_size": data.validation_size,
        "train.replicas": replicas,
    })
    _write_and_log(client, run_id, output_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    _write_and_log(client, run_id, output_dir / "model_summary.json", json.dumps(summary.to_dict(), indent=2))
    _write_and_log(client, run_id, output_dir / "model_summary.txt", summary.format_table())

    epochs = int(train_cfg["epochs"])
    # schedules count optimizer updates: with accumulation, steps of the effective (configured) batch
    optimizer = build_optimizer(cfg["optim"], steps_per_epoch=math.ceil(data.train_size / int(train_cfg["batch_size"])),
                                epochs=epochs, batch_size=int(train_cfg["batch_size"]),
                                gradient_accumulation_steps=accumulation)
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if data.num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(), metrics=metrics,
                  jit_compile=train_cfg["jit_compile"])

    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        checkpoint.restore(model, state)
        repaired = log_missing_steps(client, run_id, state.history)
        advance_shuffle(data.train, state.epoch + 1)
        print(f"[xablate] restored the checkpoint of epoch {state.epoch} from {checkpoint.folder}"
              + (f"; logged {repaired} epoch(s) it held that MLflow had missed" if repaired else ""), flush=True)
    initial_epoch = state.epoch + 1 if state is not None else 0

    guard = DivergenceGuard(train_cfg["diverge_factor"], state.reference_loss if state is not None else None)
    logger = MlflowEpochLogger(client, run_id, data.train_size, checkpoint=checkpoint, guard=guard,
                               history=state.history if state is not None else None)
    callbacks = [guard, logger, *extra_callbacks]
    if optimizer.use_ema:  # evaluate each epoch with the Polyak-averaged weights
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if initial_epoch < epochs:
        model.fit(data.train, validation_data=data.validation, epochs=epochs, initial_epoch=initial_epoch,
                  callbacks=callbacks, shuffle=False, verbose=_verbosity(train_cfg["verbose"]))  # the pipeline shuffles
    history = logger.history
    val_acc = [h["val_accuracy"] for h in history]
    final = [_metric("epochs_completed", len(history)), _metric("train_seconds", sum(h["epoch_seconds"] for h in history))]
    if val_acc and guard.diverged is None:
        final += [_metric("best_val_accuracy", max(val_acc)), _metric("best_epoch", int(val_acc.index(max(val_acc))))]
    client.log_batch(run_id, metrics=final)
    _log_history_csv(client, run_id, output_dir / "history.csv", history)
    if guard.diverged is not None:
        raise guard.diverged
    if train_cfg["save_model"]:
        model_path = output_dir / "model.keras"
        model.save(model_path)
        client.log_artifact(run_id, str(model_path))
    return history, summary


def _metric(key, value):
    return Metric(key, float(value), int(time.time() * 1000), 0)


def _log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    items = [Param(k, param_value(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        client.log_batch(run_id, params=items[start:start + 100])


def _write_and_log(client: MlflowClient, run_id: str, path: Path, text: str) -> None:
    path.write_text(text)
    client.log_artifact(run_id, str(path))


def _log_history_csv(client, run_id, path: Path, history: list[dict[str, float]]) -> None:
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    client.log_artifact(run_id, str(path))


def _record_divergence(client: MlflowClient, run_id: str, diverged: RunDiverged) -> None:
    """Diverged is a result: FAILED with outcome=diverged and where it happened."""
    try:
        client.set_tag(run_id, OUTCOME_TAG, "diverged")
        client.set_tag(run_id, "xablate.diverged_epoch", str(diverged.epoch))
        client.set_tag(run_id, "xablate.diverged_batch", str(diverged.batch))
        client.set_tag(run_id, "xablate.error", str(diverged))
    finally:
        client.set_terminated(run_id, status="FAILED")
    print(f"[xablate] run {run_id} {diverged}; recorded as outcome=diverged", file=sys.stderr, flush=True)


def _record_failure(client: MlflowClient, run_id: str, error: BaseException, output_dir: Path) -> None:
    """Never leave a run RUNNING: KILLED on interrupt, FAILED otherwise, with the reason and traceback."""
    status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
    try:
        client.set_tag(run_id, "xablate.error", f"{type(error).__name__}: {error}"[:4000])
        output_dir.mkdir(parents=True, exist_ok=True)
        _write_and_log(client, run_id, output_dir / "traceback.txt", traceback.format_exc())
    finally:
        client.set_terminated(run_id, status=status)


def _verbosity(setting) -> int:
    """auto: Keras' progress bar on a terminal, one line per epoch in logs and pipes."""
    if setting == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(setting)


def _device() -> str:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"{len(gpus)} GPU" if gpus else "CPU"
    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0].platform).upper()
    return "unknown"
