"""A job: the composed config, what the launcher knows about it, and what is derived from them once.

`Job.prepare(checked, context, backend)` takes a config past the gate (xablate.schema.parse_job: validated, axes
in canonical form, typed sections) and derives the run's identity, data digest, axes, label and name; the trainer then attaches the MLflow run (`client`, `run_id`) and the epoch
checkpoint, and the fitting code reads everything from the job instead of a long list of positional arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xablate import schema
from xablate.config import REPLICATE_KEYS, flatten, run_name, variant_label
from xablate.data.digest import source_digest
from xablate.sweeps import SWEEP_KEYS_FILE
from xablate.tracking.identity import run_identity
from xablate.studies import check_study_block
from xablate.gate import Checked
from xablate.schema import ConfigError


@dataclass
class RunContext:
    """What the launcher knows about a job: where it writes, and which sweep it belongs to."""

    output_dir: Path
    sweep_dir: Path | None = None
    overrides: list[str] = field(default_factory=list)
    job_num: int | None = None
    callbacks: list = field(default_factory=list)  # extra Keras callbacks (profilers, notebooks, tests)


@dataclass
class Job(schema.TypedSections):
    cfg: dict[str, Any]  # validated, axes canonical: what the identity and the recorded params read
    config: schema.Job  # the same config as the schema's typed sections (job.train.epochs, job.data.limit_train)
    context: RunContext
    backend: str
    identity: str  # xablate.tracking.identity: what a finished run of the same job shares
    digest: str  # xablate.data.digest: the data it trains and is tested on
    axes: dict[str, Any]  # what the sweep varies, with this job's values
    label: str  # the variant, e.g. "act=elu"
    name: str  # the run's name, e.g. "act=elu · seed 0"
    client: Any = None  # the MlflowClient and run, once the trainer has opened it
    run_id: str | None = None
    checkpoint: Any = None  # xablate.training.checkpoint.EpochCheckpoint, when train.checkpoint
    pruning: Any = None  # xablate.training.pruning.PruningCallback, on a pruned search's scout (tracking.trial)

    @classmethod
    def prepare(cls, checked: Checked, context: RunContext, backend: str) -> Job:
        """The job's constructor, from a config past the gate (`parse_job(cfg)`)."""
        cfg, config = checked.cfg, checked.config
        if context.sweep_dir is None:  # a sweep's callback parsed its study's blocks once, before its parent run
            try:
                check_study_block(config.study, config.analysis)
            except ValueError as error:
                raise ConfigError(str(error)) from None
        flat = flatten(cfg)  # a swept key may be any key
        keys = sweep_keys(context.sweep_dir)
        keys += [k for k in (config.analysis or {}).get("axes") or [] if k not in keys]  # a study's axes: variants
        if context.sweep_dir is None:  # a single run is named by the settings its command line changed
            keys += [k for k in typed_keys(flat, context.overrides) if k not in keys]
        axes = axis_values(flat, keys, context.overrides)
        return cls(cfg=cfg, config=config, context=context, backend=backend, identity=run_identity(cfg, backend),
                   digest=source_digest(config.data), axes=axes, label=variant_label(axes),
                   name=run_name(axes, int(config.seed)))

    @property
    def stage(self) -> str:
        return str(self.tracking.stage)

    @property
    def batch_size(self) -> int:
        """The configured (effective) batch: what the schedule and the steps per epoch count in, whatever the
        out-of-memory retry or the replicas split it into."""
        return int(self.train.batch_size)

    @property
    def output_dir(self) -> Path:
        return Path(self.context.output_dir)

    def steps_per_epoch(self, train_size: int) -> int:
        return math.ceil(train_size / self.batch_size)


def sweep_keys(sweep_dir: Path | None) -> list[str]:
    """The keys this job's sweep varies (written by the sweep callback); none for a single run."""
    if sweep_dir is None or not (Path(sweep_dir) / SWEEP_KEYS_FILE).exists():
        return []
    return (Path(sweep_dir) / SWEEP_KEYS_FILE).read_text().split()


def typed_keys(flat: dict[str, Any], overrides: list[str]) -> list[str]:
    """The config keys (of the flattened config) a command line set that can change a result (not a group choice,
    a replicate, or a non-semantic key such as tracking.uri): `intermediate_act=gelu` names the run
    `intermediate_act=gelu`."""
    from xablate.schema import non_semantic_keys

    ignored = set(non_semantic_keys()) | set(REPLICATE_KEYS)
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o]
    return [k for k in dict.fromkeys(keys) if k in flat and k not in ignored]


def axis_values(flat: dict[str, Any], keys: list[str], overrides: list[str] = ()) -> dict[str, Any]:
    """The job's value of each swept key (replicates left out): from the flattened config, or for a config group
    (e.g. `model=mini,debug`) the option its override chose."""
    chosen = {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[1] for o in overrides if "=" in o}
    return {key: flat[key] if key in flat else chosen.get(key) for key in keys if key not in REPLICATE_KEYS}
