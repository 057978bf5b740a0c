"""Tidy pandas views of the MLflow store: one row per run, one row per run x epoch x metric, and the runs a
study's outputs are drawn from, with its axes found from what its sweeps varied.

    runs = runs_frame(uri, study="fig10_intermediate_act")   # every job run of the study
    selection = select_runs(runs, load_study("fig10_intermediate_act"))
    selection.runs        # one run per variant x replicate, its axes as columns, `variant` = "intermediate_act=elu"
    selection.axes        # ["intermediate_act"]
    history = history_frame(uri, selection.runs)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import yaml

from xablate.config import REPLICATE_KEYS, variant_label
from xablate.staging import HORIZON_KEY
from xablate.studies import METRICS, Study
from xablate.tracking.identity import NEUTRAL_DEFAULTS, is_semantic, param_value
from xablate.tracking.reader import StoreReader
from xablate.tracking.store import ARTIFACTS_FOLDER, resolve_tracking_uri
from xablate.tracking.wall_time import wall_seconds

RUN_COLUMNS = [
    "run_id", "run_name", "study", "sweep", "stage", "tuned_key", "seed", "split_seed", "status", "outcome",
    "test_accuracy", "test_loss", "test_data_loss", "final_val_accuracy", "best_val_accuracy", "final_val_loss", "final_loss",
    "epochs", "num_classes", "steps_per_epoch", "total_params", "mult_adds", "flops", "effective_segments",
    "images_per_second", "train_seconds", "start_time", "end_time", "wall_seconds", "swept", "params",
    "source_clean", "predictions", "seeds",
]
# Params that are computed from the config and the data, not set by it.
DERIVED_PREFIXES = ("builder.", "segments.", "match.", "seeds.")  # match.*: what a matched width achieved; seeds.*:
# each source of variance's seed as the run drew it
DERIVED = {"model.total_params", "model.trainable_params", "model.mult_adds", "model.flops", "data.num_classes",
           "data.train_size", "data.validation_size", "data.test_size", "train.replicas", "train.steps_per_epoch"}


def is_config_param(key: str) -> bool:
    """Whether a logged param is a config key (one a sweep could vary), not a derived value."""
    return not key.startswith(DERIVED_PREFIXES) and key not in DERIVED


def typed(value):
    """A param as the config held it: "True" -> True, "0.001" -> 0.001, "depthwise" stays a string."""
    if value is None:
        return None
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if isinstance(parsed, (bool, int, float, str)) or parsed is None else value


def _number(value, kind=float):
    return None if value is None else kind(float(value))


def _effective_segments(params: dict) -> float | None:
    """Geometric mean over the separable layers of the segments each actually used (`segments.<layer>`)."""
    values = [float(v) for k, v in params.items() if k.startswith("segments.")]
    return float(np.exp(np.mean(np.log(values)))) if values else None


def predictions_location(uri: str, run) -> str | None:
    """Where a run's per-image test predictions are (xablate.tracking.predictions): a local file, else the
    artifact's URI on a remote store; None for a run that did not keep them. A SQLite store moved or cloned
    elsewhere holds them in its own folder (<store folder>/mlartifacts/<study>/<run>/artifacts)."""
    from xablate.tracking.predictions import PREDICTIONS_TAG

    name = run.data.tags.get(PREDICTIONS_TAG)
    if not name:
        return None
    recorded = run.info.artifact_uri or ""
    local = recorded[len("file://"):] if recorded.startswith("file://") else recorded if "://" not in recorded \
        else None
    candidates = [Path(local) / name] if local else []
    if uri.startswith("sqlite:///"):
        candidates.append(Path(uri[len("sqlite:///"):]).parent / ARTIFACTS_FOLDER / str(run.data.tags.get(
            "xablate.study")) / run.info.run_id / "artifacts" / name)
    found = next((c for c in candidates if c.is_file()), None)
    return str(found) if found is not None else (f"{recorded}/{name}" if recorded and local is None else None)


def _row(run) -> dict:
    params, metrics, tags, info = run.data.params, run.data.metrics, run.data.tags, run.info
    swept = tags.get("xablate.axes")
    return {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "study": tags.get("xablate.study"),
        "sweep": tags.get("mlflow.parentRunId"),
        "stage": tags.get("xablate.stage", "final"),  # pilot, tune, final; "pilot,final": one run serving both
        "tuned_key": tags.get("xablate.tuned_key"),    # the key a staged sweep tuned per variant, if any
        "seed": _number(params.get("seed"), int),
        "split_seed": _number(params.get("data.split_seed"), int),
        "status": info.status,
        "outcome": tags.get("xablate.outcome", {"FINISHED": "finished", "RUNNING": "running",
                                                 "SCHEDULED": "running"}.get(info.status, "failed")),
        "test_accuracy": metrics.get("test_accuracy"),
        "test_loss": metrics.get("test_loss"),
        "test_data_loss": metrics.get("test_data_loss"),
        "final_val_accuracy": metrics.get("val_accuracy"),
        "best_val_accuracy": metrics.get("best_val_accuracy"),
        "final_val_loss": metrics.get("val_loss"),
        "final_loss": metrics.get("loss"),
        "epochs": _number(metrics.get("epochs_completed"), int),
        "num_classes": _number(params.get("data.num_classes"), int),
        "steps_per_epoch": _number(params.get("train.steps_per_epoch"), int),
        "total_params": _number(params.get("model.total_params"), int),
        "mult_adds": _number(params.get("model.mult_adds"), int),
        "flops": _number(params.get("model.flops"), int),
        "effective_segments": _effective_segments(params),
        "images_per_second": metrics.get("images_per_second"),
        "train_seconds": metrics.get("train_seconds"),
        "start_time": pd.Timestamp(info.start_time, unit="ms"),
        "end_time": pd.Timestamp(info.end_time, unit="ms") if info.end_time else pd.NaT,
        # over its attempts: a resumed run's hours between attempts are not its own (tracking.wall_time)
        "wall_seconds": wall_seconds(info.start_time, info.end_time, tags) if info.end_time else math.nan,
        "swept": json.loads(swept) if swept else None,  # {axis: value}; None: logged before sweeps recorded them
        "params": {k: v for k, v in params.items() if is_config_param(k)},
        # each source of variance's seed as the run drew it (runs before they were recorded: {})
        "seeds": {k[len("seeds."):]: v for k, v in params.items() if k.startswith("seeds.")},
        # whether its checkout was unedited (xablate.tracking.provenance); None: recorded before runs said
        "source_clean": {"true": True, "false": False}.get(tags.get("xablate.source.clean")),
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
    uri = resolve_tracking_uri(uri)
    reader = StoreReader(uri)
    experiments = reader.experiments()
    ids = [experiments[study]] if study in experiments else [] if study is not None else list(experiments.values())
    runs = reader.runs(ids, tag="xablate.variant")
    frame = pd.DataFrame([{**_row(r), "predictions": predictions_location(uri, r)} for r in runs],
                         columns=RUN_COLUMNS)
    if sweep is not None:
        frame = frame[frame["sweep"] == sweep]
    if status is not None:
        frame = frame[frame["status"].isin([status] if isinstance(status, str) else status)]
    return frame.reset_index(drop=True)


def studies_in_store(uri: str | None = None) -> list[str]:
    """The studies (MLflow experiments) that hold at least one FINISHED job run."""
    reader = StoreReader(resolve_tracking_uri(uri))
    return sorted(name for name, experiment_id in reader.experiments().items()
                  if reader.runs([experiment_id], tag="xablate.variant", status="FINISHED", limit=1))


def axis_sort_key(value):
    """Numbers in numeric order, then words ("depthwise" after every k), then booleans True first."""
    if isinstance(value, bool):
        return (2, not value, "")
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def ordered(values, baseline=None) -> list:
    """Distinct values, baseline first, then in axis_sort_key order."""
    distinct = sorted(dict.fromkeys(v for v in values if v is not None), key=axis_sort_key)
    if baseline is not None and baseline in distinct:
        distinct = [baseline] + [v for v in distinct if v != baseline]
    return distinct


@dataclass
class Selection:
    """The runs a study's outputs use, and how to read them."""

    study: Study
    runs: pd.DataFrame                    # one run per variant x replicate; axis values as columns
    axes: list[str]                       # the keys that vary between variants
    baseline: dict                        # axis -> value of the baseline variant
    metric: str                           # the reported number
    variants: list[str] = field(default_factory=list)  # variant labels, baseline first
    pilot: pd.DataFrame | None = None     # a staged study's finished pilot runs, labelled by variant like `runs`
    tuning: pd.DataFrame | None = None    # its tune-stage runs (any outcome: pruned and diverged trials too)
    crossed: str | None = None            # a tuned key crossed with the variants (an axis here; claims at `tuned`)
    own: dict = field(default_factory=dict)  # crossed: {variant without the key: its own tuned value of it}

    @property
    def baseline_label(self) -> str:
        return variant_label({axis: self.baseline.get(axis) for axis in self.axes})

    @property
    def variant_axes(self) -> list[str]:
        """The axes that name a variant as its tuning knew it (all of them but a crossed tuned key)."""
        return [axis for axis in self.axes if axis != self.crossed]

    def tuning_label(self, label: str) -> str:
        """A variant's label as its pilot and tuning runs carry it (without a crossed key's level)."""
        if not self.crossed:
            return label
        row = self.runs[self.runs["variant"] == label]
        if row.empty:
            return label
        return variant_label({axis: row.iloc[0][axis] for axis in self.variant_axes})

    def own_value(self, values: dict):
        """A crossed study: the tuned value of its crossed key that the variant with these axis values chose."""
        return self.own.get(variant_label({axis: values.get(axis, self.baseline.get(axis))
                                           for axis in self.variant_axes}))

    def variant_of(self, values: dict) -> str:
        """The label of the variant with these axis values (missing axes take the baseline's)."""
        return variant_label({axis: values.get(axis, self.baseline.get(axis)) for axis in self.axes})


def in_stage(runs: pd.DataFrame, stage: str) -> pd.Series:
    """Which runs belong to a stage of a staged study (pilot, tune, final); unstaged runs are final."""
    from xablate.staging import serves

    stages = runs["stage"] if "stage" in runs else pd.Series("final", index=runs.index)
    return stages.fillna("final").map(lambda stages: serves(stages, stage)).astype(bool)


def _replicate(row) -> tuple:
    """A run's replicate: its seed and split seed, and each source's own seed where a design set one (runs that
    left them null, as every run did before they existed, pair by seed and split as before)."""
    own = tuple(typed(row["params"].get(key)) for key in ("train.init_seed", "data.order_seed", "data.subsample_seed"))
    return (row["seed"], row["split_seed"]) + (own if any(v is not None for v in own) else ())


def _config_id(params: dict, leave_out: set[str]) -> str:
    """Which configuration a run belongs to: its semantic params, as the identity reads them (a key at its neutral
    value left out, so runs logged before and after a key existed group together)."""
    items = sorted((k, v) for k, v in params.items()
                   if k not in leave_out and k not in REPLICATE_KEYS and is_semantic(k) and not k.startswith("analysis")
                   and not (k in NEUTRAL_DEFAULTS and v == param_value(NEUTRAL_DEFAULTS[k])))
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()[:10]


def _candidate_axes(runs: pd.DataFrame, study: Study) -> list[str]:
    if study.axes:
        return list(study.axes)
    keys: list[str] = []
    for swept in runs["swept"]:
        for key in swept or []:
            if key not in keys and key not in REPLICATE_KEYS:
                keys.append(key)
    if runs["swept"].isna().all():  # runs from before sweeps recorded their keys: whatever config key differs
        params = pd.DataFrame(list(runs["params"]))
        keys = [k for k in params.columns if k not in REPLICATE_KEYS and is_semantic(k)
                and params[k].nunique(dropna=False) > 1]
    return keys


def _value(row, axis: str):
    """A run's value of an axis: its param (the config key), else what its sweep recorded (a config group's
    option, e.g. model=debug)."""
    if axis in row["params"]:
        return typed(row["params"][axis])
    return (row["swept"] or {}).get(axis)


def select_runs(runs: pd.DataFrame, study: Study, defaults: Mapping | Callable[[], Mapping] | None = None,
                choices: Mapping[str, dict] | None = None) -> Selection:
    """The runs of `study`'s main configuration, one per variant x replicate.

    Only final-stage runs count (a staged study's pilot and tuning runs are read by pilot_agreement and the
    tuning record); in a tuned study the tuned key is left out of the comparison, as each variant has its own.
    The main configuration is the group of runs equal in every config key apart from the axes and the replicate
    keys that holds the most FINISHED runs (ties: the newest) — so smoke tests and other settings logged in the
    same study do not mix in. Per (variant, replicate) the newest FINISHED run is kept, else the newest.
    `defaults`: the default config's flattened values, for a baseline the study does not declare (or a function
    returning them, called only then: composing the default config is a fifth of `xablate plan`).
    A study crossed at its tuned values (a claim `at: {key: tuned}`) keeps that key as an axis: each variant ran at
    every variant's tuned value. `choices` (the sweep parent's record, xablate.analysis.plans.crossed_choices)
    says which value is each variant's own; the baseline is the baseline variant at its own value.
    """
    metric = study.metric or ("test_accuracy" if runs["test_accuracy"].notna().any() else "final_val_accuracy")
    if runs.empty:
        return Selection(study, runs.assign(variant=pd.Series(dtype=str), replicate=pd.Series(dtype=object)), [],
                         dict(study.baseline), metric)
    tuned = (set(study.tune.keys) if study.tune is not None else set()) | (set(runs["tuned_key"].dropna()) if "tuned_key" in runs else set())
    crossed = study.crossed
    candidates = [a for a in _candidate_axes(runs, study) if a not in tuned] + ([crossed] if crossed else [])
    tuned -= {crossed}
    frame = runs[in_stage(runs, "final")].copy()
    if frame.empty:
        return Selection(study, frame.assign(variant=pd.Series(dtype=str), replicate=pd.Series(dtype=object)), [],
                         dict(study.baseline), metric)
    for axis in candidates:
        frame[axis] = [_value(row, axis) for _, row in frame.iterrows()]
    frame["config_id"] = [_config_id(p, set(candidates) | tuned) for p in frame["params"]]
    frame["_finished"] = frame["status"] == "FINISHED"
    score = frame.groupby("config_id").agg(finished=("_finished", "sum"), newest=("start_time", "max"))
    main = score.sort_values(["finished", "newest"]).index[-1]
    chosen = frame[frame["config_id"] == main]
    axes = [a for a in candidates if chosen[a].nunique(dropna=False) > 1 or (study.axes and a in study.axes)
            or a == crossed]
    own = _own_values(choices or {}, crossed, [a for a in axes if a != crossed]) if crossed else {}
    baseline = {}
    for axis in [a for a in axes if a != crossed]:
        values = ordered(chosen[axis])
        if axis in study.baseline:
            declared = study.baseline[axis]
        else:
            defaults = defaults() if callable(defaults) else defaults
            declared = (defaults or {}).get(axis)
        baseline[axis] = declared if declared in values else (values[0] if values else declared)
    if crossed:  # the baseline variant at its own tuned value
        mine = own.get(variant_label({a: baseline[a] for a in axes if a != crossed}))
        values = ordered(chosen[crossed])
        baseline[crossed] = next((v for v in values if same_value(v, mine)), values[0] if values else mine)
    chosen = chosen.assign(variant=[variant_label({a: row[a] for a in axes}) for _, row in chosen.iterrows()],
                           replicate=[_replicate(row) for _, row in chosen.iterrows()])
    chosen = chosen.sort_values(["_finished", "start_time"]).drop_duplicates(["variant", "replicate"], keep="last")
    chosen = chosen.sort_values("start_time").drop(columns="_finished").reset_index(drop=True)
    selection = Selection(study, chosen, axes, baseline, metric, crossed=crossed, own=own)
    named = selection.variant_axes  # a crossed key's level is not part of a pilot or tuning run's variant
    pilot = runs[in_stage(runs, "pilot") & (runs["status"] == "FINISHED")]
    if len(pilot):
        selection.pilot = pilot.assign(variant=[variant_label({a: _value(row, a) for a in named})
                                                for _, row in pilot.iterrows()])
    tuning = runs[in_stage(runs, "tune") & (runs["status"] != "RUNNING")]
    if len(tuning) and study.tune is not None:  # of the main configuration, but for the tuned keys and budget
        leave = set(candidates) | tuned | {"train.epochs", HORIZON_KEY} | set(study.tune.budget)
        main_ids = {_config_id(p, leave) for p in chosen["params"]}
        tuning = tuning[[_config_id(p, leave) in main_ids for p in tuning["params"]]]
    if len(tuning):
        selection.tuning = tuning.assign(variant=[variant_label({a: _value(row, a) for a in named})
                                                  for _, row in tuning.iterrows()])
    combos = sorted({tuple(row[a] for a in axes) for _, row in chosen.iterrows()},
                    key=lambda combo: [axis_sort_key(v) for v in combo])
    labels = [variant_label(dict(zip(axes, combo))) for combo in combos]
    base = selection.baseline_label
    selection.variants = ([base] if base in labels else []) + [label for label in labels if label != base]
    return selection


def _own_values(choices: Mapping[str, dict], key: str, axes: list[str]) -> dict:
    """{variant label without the crossed key: its own tuned value of it}, from the recorded choices (keyed by
    the sweep's variant names, `intermediate_act=elu`, read back as typed values)."""
    own = {}
    for name, chosen in choices.items():
        if not isinstance(chosen, dict) or key not in chosen:
            continue
        values = dict(part.split("=", 1) for part in name.split(",") if "=" in part)
        own[variant_label({a: _as_param(values.get(a)) for a in axes})] = chosen[key]
    return own


def _as_param(text):
    """An override's value as a run's param of it reads back (typed, and `1e-3` a number as the run logs 0.001)."""
    value = typed(text)
    number = _as_number(value)
    return number if isinstance(value, str) and number is not None else value


def _as_number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def same_value(a, b) -> bool:
    """Two values of a tuned key alike: numbers (floats recorded at 3 significant digits, and `1e-05`, which YAML
    1.1 reads back as a string) compared with a tolerance, others as they are."""
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-9)
    return a == b


def history_frame(uri: str | None, runs: pd.DataFrame, metrics: list[str] | None = None,
                  axes: list[str] = ()) -> pd.DataFrame:
    """One row per run x epoch x metric (columns: run_id, variant, the axes, seed, epoch, step, metric, value;
    `step` = optimizer updates at the epoch's end)."""
    metrics = metrics or ["loss", "accuracy", "val_loss", "val_accuracy"]
    records = {run["run_id"]: run for run in runs.to_dict("records")}
    rows = []
    for point in StoreReader(resolve_tracking_uri(uri)).metric_history(list(records), metrics):
        run = records[point.run_id]
        steps = run.get("steps_per_epoch")
        rows.append({"run_id": point.run_id, "variant": run.get("variant"),
                     **{axis: run.get(axis) for axis in axes}, "seed": run.get("seed"), "epoch": point.step,
                     "step": (point.step + 1) * steps if steps and not math.isnan(steps) else math.nan,
                     "metric": point.key, "value": point.value})
    columns = ["run_id", "variant", *axes, "seed", "epoch", "step", "metric", "value"]
    return pd.DataFrame(rows, columns=columns).sort_values(["run_id", "metric", "epoch"]).reset_index(drop=True)


HISTORY_MEASURES = ["loss", "data_loss"]  # the per-epoch metrics with_history_measures reads


def with_history_measures(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Adds `train_loss_auc` and `train_data_loss_auc`: each run's training loss, and its data loss (the
    cross-entropy without the weight penalty; NaN for runs logged before it was), averaged over its epochs (the
    area under its training curve per epoch; training-mode losses, so batch-norm statistics play no part)."""
    areas = {}
    for column, metric in (("train_loss_auc", "loss"), ("train_data_loss_auc", "data_loss")):
        areas[column] = runs["run_id"].map(history[history["metric"] == metric].groupby("run_id")["value"].mean())
    return runs.assign(**areas)


def scored(runs: pd.DataFrame, metric: str) -> pd.Series:
    """`metric` per run with diverged runs scored, not dropped: an accuracy at chance (1 / classes), a loss at
    the worst finite value any run of the selection reached. Failed and unfinished runs are NaN."""
    higher_is_better = METRICS.get(metric, ("", True, None))[1]
    values = pd.to_numeric(runs[metric], errors="coerce").astype(float)
    finished = runs["status"] == "FINISHED"
    diverged = runs["outcome"] == "diverged"
    finite = values[finished & np.isfinite(values)]
    if higher_is_better:
        penalty = 1.0 / runs["num_classes"].astype(float)
    else:
        penalty = pd.Series(finite.max() if len(finite) else math.nan, index=runs.index)
    return values.where(finished, math.nan).where(~diverged, penalty)
