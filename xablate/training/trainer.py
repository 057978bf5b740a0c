"""One job, end to end: validate -> MLflow run -> data -> model -> fit -> artifacts -> FINISHED/FAILED.

`train(cfg, context)` takes the plain composed config (run.py converts Hydra's once) and a RunContext with
what Hydra knows about the job (together: a Job, xablate.training.job); tests call it directly.
"""

from __future__ import annotations

import json
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
from mlflow import MlflowClient

from xablate.config import AXES, flatten
from xablate.data.digest import DATA_DIGEST_TAG
from xablate.models import ModelSummary
from xablate.models.pretrained import weights_file
from xablate.onednn import apply as apply_onednn, cpu_model
from xablate.gate import parse_job
from xablate.schema import Tracking
from xablate.paths import portable, portable_traceback
from xablate.tracking.identity import as_recorded
from xablate.tracking.previous_runs import (HEARTBEAT_TAG, IDENTITY_TAG, OUTCOME_TAG, Heartbeat, Plan, owner_tags,
                                            plan_run)
from xablate.tracking.provenance import CLEAN_TAG, DIFF_ARTIFACT, DIFF_TAG, diff_artifact_text, source_state
from xablate.tracking.store import (PARENT_RUN_FILE, SKIPPED_DIR, check_reachable, open_experiment,
                                    resolve_tracking_uri)
from xablate.tracking import native_crash
from xablate.tracking.wall_time import resume_tags
from xablate.training.checkpoint import CRASH_DIR, EpochCheckpoint, checkpoint_root
from xablate.stop_request import raise_if_requested
from xablate.training.divergence import RunDiverged
from xablate.training.fitting import builder_kwargs, fit_with_oom_retry, log_params, write_and_log  # noqa: F401
from xablate.staging import STAGE_TAG, TUNED_KEY_TAG
from xablate.tuning import PRUNED
from xablate.training.job import Job, RunContext  # noqa: F401  (RunContext: callers import it from here)


@dataclass
class TrainResult:
    run_id: str
    tracking_uri: str
    status: str
    history: list[dict[str, float]]
    summary: ModelSummary | None


def train(cfg: dict, context: RunContext) -> TrainResult:
    """Trains the configured variant and records it as an MLflow run (nested under its sweep's parent).

    A run with the same identity in the study is skipped when it finished or diverged, and resumed (same run
    id, from its last epoch checkpoint) when it was interrupted or failed; `force=true` always starts anew.
    """
    job = Job.prepare(parse_job(cfg), context, keras.backend.backend())
    config, tracking = job.config, job.tracking
    if config.backend != job.backend:
        raise ValueError(f"Received backend={config.backend!r}, but Keras in this process runs on "
                         f"{job.backend!r}: start the job through run.py (which sets KERAS_BACKEND "
                         f"before Keras loads) or set KERAS_BACKEND={config.backend} yourself.")
    # before this process' first convolution (xablate/onednn.py)
    onednn = apply_onednn(job.train.onednn, str(job.train.precision))
    uri = resolve_tracking_uri(tracking.uri)
    check_reachable(uri)
    weights_file(job.model["weights"])  # pretrained weights at hand (downloaded if need be) before any run
    client, experiment_id = open_experiment(uri, tracking.experiment)
    axes, label, identity, digest = job.axes, job.label, job.identity, job.digest
    source = source_state()  # the commit, and whether the checkout was edited (xablate.tracking.provenance)
    commit = source.commit
    crashes = checkpoint_root(job.train.checkpoint_dir, uri) / CRASH_DIR
    plan = plan_run(client, experiment_id, identity, data_digest=digest, force=bool(config.force),
                    stale_after_seconds=float(tracking.stale_after_seconds), crash_dir=crashes,
                    stage=job.stage)
    if plan.action == "new" and plan.reason:
        print(f"[xablate] training {label} anew: {plan.reason}", flush=True)
    if plan.action == "skip" and plan.run.data.tags.get(OUTCOME_TAG) == PRUNED and job.stage != "tune":
        print(f"[xablate] training {label} anew: run {plan.run.info.run_id} of the same config was pruned, and a "
              f"pruned tuning run does not stand in for a {job.stage} replicate", flush=True)
        plan = Plan("new")
    if plan.action == "skip":
        _add_stage(client, plan.run, job.stage)
        return _skip(plan, label, uri, commit, context)

    tags = {
        "xablate.variant": label,
        "xablate.axes": json.dumps(axes),
        "xablate.study": str(config.study),
        STAGE_TAG: job.stage,
        **({TUNED_KEY_TAG: str(tracking.tuned_key)} if tracking.tuned_key else {}),
        IDENTITY_TAG: identity,
        DATA_DIGEST_TAG: digest,
        "xablate.backend": job.backend,
        "xablate.device": _device(),
        "xablate.cpu": cpu_model(),
        "xablate.onednn": onednn,
        "xablate.overrides": portable(" ".join(context.overrides)),
        **{f"xablate.{axis}": str(getattr(config, axis)) for axis in (*AXES, "seed")},
        **owner_tags(),
    }
    tags.update(source.tags())
    if context.sweep_dir is not None:
        tags["mlflow.parentRunId"] = _parent_run_id(Path(context.sweep_dir))
    if plan.action == "resume":
        run_id = plan.run.info.run_id
        previous = plan.run.data.tags
        tags["xablate.resumes"] = str(int(previous.get("xablate.resumes", "0")) + 1)
        tags.update(resume_tags(plan.run.info.start_time, plan.run.info.end_time, previous, HEARTBEAT_TAG))
        if previous.get(CLEAN_TAG) == "false":  # edited in any attempt: edited (this attempt's hash, else the last)
            tags[CLEAN_TAG] = "false"
            tags.setdefault(DIFF_TAG, previous.get(DIFF_TAG, ""))
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
        run_id = client.create_run(experiment_id, run_name=job.name, tags=tags).info.run_id
        print(f"[xablate] MLflow run {run_id} ({job.name}) in experiment '{tracking.experiment}' at {uri}",
              flush=True)

    checkpoint = None
    if job.train.checkpoint:
        folder = checkpoint_root(job.train.checkpoint_dir, uri) / str(config.study) / identity
        checkpoint = EpochCheckpoint(folder, run_id)
        if plan.action == "new":
            checkpoint.delete()  # a forced rerun, or leftovers of a deleted run: start clean
    job.client, job.run_id, job.checkpoint = client, run_id, checkpoint
    if source.clean is False:  # the changes themselves, beside the hash the tag holds
        _log_changes(client, run_id, source, Path(context.output_dir))
    if tracking.trial:  # a pruned search's scout: its trial's pruner may stop it (tune stage only)
        job.pruning = pruning_callback(str(tracking.trial), uri, tracking.database)
    native_crash.arm(run_id, crashes, uri=uri, label=label)
    try:
        with Heartbeat(client, run_id, float(tracking.heartbeat_seconds)), \
                system_metrics(tracking, uri, run_id, resumed=plan.action == "resume"):
            log_params(client, run_id, {k: as_recorded(k, v) for k, v in flatten(job.cfg).items()
                                        if not k.startswith("analysis")})  # a resumed run keeps its first values
            history, summary = fit_with_oom_retry(job)
            raise_if_requested()  # a signal whose KeyboardInterrupt was swallowed: KILLED, not FINISHED
    except RunDiverged as diverged:
        _record_divergence(client, run_id, diverged)
        diverged.run_id = run_id  # the staged sweeper scores a diverged tuning run instead of failing the sweep
        raise
    except BaseException as error:
        _record_failure(client, run_id, error, Path(context.output_dir))
        raise
    finally:
        native_crash.disarm(run_id)
    if job.pruning is not None and job.pruning.pruned_epoch is not None:
        _record_pruned(client, run_id, job.pruning)
        if checkpoint is not None:
            checkpoint.delete()
        return TrainResult(run_id, uri, "PRUNED", history, summary)
    client.set_terminated(run_id, status="FINISHED")
    if checkpoint is not None:
        checkpoint.delete()
    _say_result(client, run_id, job.name)
    return TrainResult(run_id, uri, "FINISHED", history, summary)


def _say_result(client: MlflowClient, run_id: str, name: str) -> None:
    """The number the run ends at, as the user's last line (the test metric where the run has one)."""
    metrics = client.get_run(run_id).data.metrics
    shown = [f"{label} {metrics[key]:.4f}" for key, label in (("test_accuracy", "test accuracy"),
                                                               ("val_accuracy", "final validation accuracy"))
             if key in metrics]
    print(f"[xablate] run {run_id} ({name}) FINISHED: {', '.join(shown) or 'no accuracy logged'}", flush=True)


def pruning_callback(trial: str, uri: str, database: str | None):
    from xablate.training.pruning import PruningCallback
    from xablate.tuning import TrialReporter, storage_url

    return PruningCallback(TrialReporter(trial, storage_url(uri, database)))


def _record_pruned(client: MlflowClient, run_id: str, pruning) -> None:
    """Pruned is a tuning result, not a failure: KILLED with outcome=pruned, the epoch and the pruner's reason."""
    try:
        client.set_tag(run_id, OUTCOME_TAG, PRUNED)
        client.set_tag(run_id, "xablate.pruned_epoch", str(pruning.pruned_epoch))
        client.set_tag(run_id, "xablate.pruned_reason", pruning.reason)
    finally:
        client.set_terminated(run_id, status="KILLED")
    print(f"[xablate] run {run_id}: {pruning.reason}; recorded as outcome=pruned", flush=True)


@contextmanager
def system_metrics(tracking: Tracking, uri: str, run_id: str, *, resumed: bool):
    """MLflow's own sampler (CPU, memory, disk, network; NVIDIA GPUs when nvidia-ml-py is installed) logging
    system/* metrics to the run while it trains, when `tracking.system_metrics` is on."""
    if not tracking.system_metrics:
        yield
        return
    import logging

    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines per run
    monitor = SystemMetricsMonitor(run_id, sampling_interval=float(tracking.system_metrics_seconds),
                                   resume_logging=resumed, tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


def _log_changes(client: MlflowClient, run_id: str, source, output_dir: Path) -> None:
    path = output_dir / DIFF_ARTIFACT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(diff_artifact_text(source))
    client.log_artifact(run_id, str(path), artifact_path=str(Path(DIFF_ARTIFACT).parent))


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


def _add_stage(client: MlflowClient, run, stage: str) -> None:
    """A finished run reused by another stage (the same config: a pilot run at the full budget is also a final
    replicate; a tuning run never is, xablate.staging.may_serve) is tagged with both, so the analysis finds it in
    each."""
    stages = run.data.tags.get(STAGE_TAG, "final").split(",")
    if stage not in stages:
        client.set_tag(run.info.run_id, STAGE_TAG, ",".join([*stages, stage]))


def _parent_run_id(sweep_dir: Path) -> str:
    marker = sweep_dir / PARENT_RUN_FILE
    if not marker.exists():
        raise RuntimeError(
            f"This job belongs to the sweep in {sweep_dir}, but the sweep's MLflow parent run was not created "
            f"({marker} is missing): see the '[xablate] could not start the sweep's parent run' message above, "
            f"and check that conf/config.yaml still lists the mlflow_sweep callback."
        )
    return marker.read_text().strip()


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
        write_and_log(client, run_id, output_dir / "traceback.txt", portable_traceback(traceback.format_exc()))
    finally:
        client.set_terminated(run_id, status=status)


def _device() -> str:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"{len(gpus)} GPU" if gpus else "CPU"
    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0].platform).upper()
    return "unknown"
