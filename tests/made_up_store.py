"""Made-up stores whose right answers are known in closed form: real MLflow runs logged the way the trainer logs
them (params, tags, metrics), without training anything."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from xablate.tracking.predictions import PREDICTIONS_ARTIFACT, PREDICTIONS_TAG, predictions_bytes
from xablate.tracking.store import ensure_store


def log_study(uri: str, study: str, values: dict, *, axis: str = "intermediate_act", metric: str = "test_accuracy",
              losses: dict | None = None, diverged: dict | None = None, classes: int = 10,
              extra_params: dict | None = None, value_params: dict | None = None,
              predictions: dict | None = None) -> dict:
    """One sweep of `study`: for each axis value, one FINISHED run per entry of `values[value]` (seed = its
    index) with `metric` = that entry; `losses[value][seed]` the per-epoch training losses; `diverged[value]`
    seeds that diverged (FAILED, outcome=diverged, no metric); `value_params[value]` params of that value's runs
    (e.g. its segments.<layer> and model.total_params); `predictions[value][seed]` = (labels, predicted) kept as
    the trainer keeps them (xablate.tracking.predictions). Returns {value: [run ids]}."""
    ensure_store(uri)  # a new store: a copy of an empty one, as xablate makes them
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    folder = Path(uri[len("sqlite:///"):]).parent  # artifacts beside the store, as xablate puts them
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(
        study, artifact_location=(folder / "mlartifacts" / study).as_uri())
    parent = client.create_run(experiment_id, run_name=f"{study}: sweep", tags={"xablate.role": "sweep"}).info.run_id
    ids = {}
    for value, per_seed in values.items():
        for seed, number in enumerate(per_seed):
            is_diverged = seed in (diverged or {}).get(value, ())
            run = client.create_run(experiment_id, run_name=f"{axis}={value} · seed {seed}", tags={
                "xablate.variant": f"{axis}={value}", "xablate.axes": json.dumps({axis: value}),
                "xablate.study": study, "mlflow.parentRunId": parent,
                **({"xablate.outcome": "diverged"} if is_diverged else {})})
            run_id = run.info.run_id
            params = {axis: str(value), "seed": str(seed), "data.split_seed": str(seed), "data.num_classes": str(classes),
                      "optim.learning_rate": "0.001", "train.steps_per_epoch": "10", "model.total_params": "1000",
                      "model.flops": "2000", **(extra_params or {}),
                      **(value_params or {}).get(value, {})}
            client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()],
                             tags=[RunTag("xablate.seed", str(seed))])
            metrics = []
            if not is_diverged:
                metrics.append(Metric(metric, float(number), 0, 0))
            for epoch, loss in enumerate(((losses or {}).get(value) or {}).get(seed, [])):
                metrics.append(Metric("loss", float(loss), 0, epoch))
            if metrics:
                client.log_batch(run_id, metrics=metrics)
            kept = ((predictions or {}).get(value) or {}).get(seed)
            if kept is not None:
                path = folder / "outputs" / run_id / PREDICTIONS_ARTIFACT
                path.parent.mkdir(parents=True)
                path.write_bytes(predictions_bytes(*kept))
                client.log_artifact(run_id, str(path))
                client.set_tag(run_id, PREDICTIONS_TAG, PREDICTIONS_ARTIFACT)
            client.set_terminated(run_id, status="FAILED" if is_diverged else "FINISHED")
            ids.setdefault(value, []).append(run_id)
    client.set_terminated(parent, status="FINISHED")
    return ids

