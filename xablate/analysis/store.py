"""Tidy pandas views of the MLflow store: one row per run, and one row per run x epoch x metric."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
from mlflow import MlflowClient

from xablate.tracking.identity import is_semantic
from xablate.tracking.store import resolve_tracking_uri

AXES = ["residual", "intermediate_act", "segments"]
RUN_COLUMNS = [
    "run_id", "study", "sweep", "variant", *AXES, "seed", "status", "outcome", "config_id",
    "final_val_accuracy", "best_val_accuracy", "final_val_loss", "final_loss", "epochs",
    "total_params", "mult_adds", "flops", "images_per_second", "start_time",
]


# Params that describe what was trained apart from the variant and seed (the composed config's model/data/
# optim/train groups), minus values derived from the axes or the data and settings that cannot change results.
_CONFIG_GROUPS = ("model.", "data.", "optim.", "train.")
_DERIVED = {"model.total_params", "model.trainable_params", "model.mult_adds", "model.flops",
            "data.num_classes", "data.train_size", "data.validation_size"}


def config_id(params: dict[str, str]) -> str:
    """A short hash of a run's configuration apart from its axes and seed: runs with equal ids are comparable."""
    items = sorted((k, v) for k, v in params.items()
                   if k.startswith(_CONFIG_GROUPS) and k not in _DERIVED and is_semantic(k))
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()[:10]


def comparable_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs a study's figures and tables use: those of its main configuration (the config_id with the most
    FINISHED runs, ties to the newest) — so smoke tests (debug=default) and other settings in the same
    experiment do not mix in — and per (variant, seed) one run: the newest FINISHED one, else the newest."""
    if runs.empty:
        return runs
    ranked = runs.assign(_finished=runs["status"] == "FINISHED")
    score = ranked.groupby("config_id").agg(finished=("_finished", "sum"), newest=("start_time", "max"))
    main = score.sort_values(["finished", "newest"]).index[-1]
    chosen = ranked[ranked["config_id"] == main].sort_values(["_finished", "start_time"])
    chosen = chosen.drop_duplicates(["variant", "seed"], keep="last").sort_values("start_time")
    return chosen.drop(columns="_finished").reset_index(drop=True)


def _study_filter(client: MlflowClient, study: str | None) -> list[str]:
    experiments = client.search_experiments()
    if study is not None:
        experiments = [e for e in experiments if e.name == study]
    return [e.experiment_id for e in experiments]


def _number(value, kind=float):
    return None if value is None else kind(float(value))


def _row(run) -> dict:
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    label = tags.get("xablate.variant", "")
    return {
        "run_id": run.info.run_id,
        "study": tags.get("xablate.study"),
        "sweep": tags.get("mlflow.parentRunId"),
        "variant": ",".join(p for p in label.split(",") if not p.startswith("seed=")),
        "residual": params.get("residual") == "True" if "residual" in params else None,
        "intermediate_act": params.get("intermediate_act"),
        "segments": params.get("segments"),
        "seed": _number(params.get("seed"), int),
        "status": run.info.status,
        "outcome": tags.get("xablate.outcome", {"FINISHED": "finished", "RUNNING": "running",
                                                 "SCHEDULED": "running"}.get(run.info.status, "failed")),
        "config_id": config_id(params),
        "final_val_accuracy": metrics.get("val_accuracy"),
        "best_val_accuracy": metrics.get("best_val_accuracy"),
        "final_val_loss": metrics.get("val_loss"),
        "final_loss": metrics.get("loss"),
        "epochs": _number(metrics.get("epochs_completed"), int),
        "total_params": _number(params.get("model.total_params"), int),
        "mult_adds": _number(params.get("model.mult_adds"), int),
        "flops": _number(params.get("model.flops"), int),
        "images_per_second": metrics.get("images_per_second"),
        "start_time": pd.Timestamp(run.info.start_time, unit="ms"),
    }


def runs_frame(uri: str | None = None, *, study: str | None = None, sweep: str | None = None,
               status: str | list[str] | None = None) -> pd.DataFrame:
    """One row per job run (sweep parents excluded), oldest first.

    Args:
        uri: tracking URI (default: $MLFLOW_TRACKING_URI or the project's store).
        study: the MLflow experiment (a study name) to read; None reads every experiment.
        sweep: only the children of this parent run id.
        status: keep runs with this MLflow status (or any of a list), e.g. "FINISHED".
    """
    client = MlflowClient(resolve_tracking_uri(uri))
    ids = _study_filter(client, study)
    runs = []
    if ids:
        runs = client.search_runs(ids, filter_string="tags.`xablate.variant` != ''", max_results=50_000,
                                  order_by=["attributes.start_time ASC"])
    frame = pd.DataFrame([_row(r) for r in runs], columns=RUN_COLUMNS)
    if sweep is not None:
        frame = frame[frame["sweep"] == sweep]
    if status is not None:
        frame = frame[frame["status"].isin([status] if isinstance(status, str) else status)]
    return frame.reset_index(drop=True)


def history_frame(uri: str | None, runs: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per run x epoch x metric (columns: run_id, variant, axes, seed, epoch, metric, value)."""
    client = MlflowClient(resolve_tracking_uri(uri))
    metrics = metrics or ["loss", "accuracy", "val_loss", "val_accuracy"]
    rows = []
    for run in runs.itertuples(index=False):
        for metric in metrics:
            for point in client.get_metric_history(run.run_id, metric):
                rows.append({"run_id": run.run_id, "variant": run.variant, "residual": run.residual,
                             "intermediate_act": run.intermediate_act, "segments": run.segments,
                             "seed": run.seed, "epoch": point.step, "metric": metric, "value": point.value})
    columns = ["run_id", "variant", *AXES, "seed", "epoch", "metric", "value"]
    return pd.DataFrame(rows, columns=columns).sort_values(["run_id", "metric", "epoch"]).reset_index(drop=True)
