"""Every key of a job's config, by section, with its role declared once.

A section is a dataclass; each field carries its default (what conf/ sets) and its role:

    semantic      can change a run's result: enters the run identity
    neutral       added after identities were first issued: enters the identity only when set away from the
                  value that behaves as before it existed (`neutral=`)
    non_semantic  where results go, how much is printed, how fast: never enters the identity

and two flags: `graph` (the traced train step depends on it: a kept compiled model is reused only when it is
the same, xablate.training.reuse) and `split` (it decides which images a split holds: it enters each split's
dataset digest, xablate.data.digest). The identity's lists, the reuse key and the digest keys are derived from
here (`non_semantic_keys`, `neutral_defaults`, `keys_with`); tests/test_schema.py fails on a field without a role
and on a composed key this schema does not know.

`unknown_keys` closes the config: Hydra refuses `train.epoch=3` (no such key) but adds `+train.epoch=3`, so a typo
with `+` would become another experiment; the job, and a sweep before its parent run, refuse any key not declared
here, naming the nearest known one. The model section is the builder's: its keys are the fields below plus every
keyword argument of `build_xception` (xablate.models), so a new builder argument is a new `model.<name>` key with
no edit here.

This module imports nothing heavy (no TensorFlow, Keras or MLflow).
"""

from __future__ import annotations

import difflib
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Mapping, Optional

from xablate.dotted import flatten

ROLES = ("semantic", "neutral", "non_semantic")
# A number, kept as typed: a `float` annotation would turn 20 (YAML) or learning_rate=1 (command line) into 20.0 and
# 1.0, and a run's params and identity with them (identities issued before the typed schema say 20 and 1); the
# value is checked where it is used (xablate.training.validation: "a number > 0", ...).
Number = Any
FREE_FORM = ("analysis",)  # read by its own parser (xablate.studies.parse_study), any keys
# builder arguments that come from elsewhere (the top-level axes, the data): known here, refused by the validation
# with where they come from
MODEL_ELSEWHERE = {"model.residual", "model.intermediate_act", "model.segments", "model.input_shape", "model.classes"}


def key(default: Any = None, role: str = "semantic", *, neutral: Any = MISSING, graph: bool = False,
        split: bool = False, doc: str = ""):
    """A config field with its role (see the module docstring)."""
    if role not in ROLES:
        raise ValueError(f"Received role={role!r}; allowed: {', '.join(ROLES)}.")
    if (role == "neutral") != (neutral is not MISSING):
        raise ValueError("a neutral key declares its neutral value (neutral=...), and only a neutral key does")
    meta = {"role": role, "graph": graph, "split": split, "doc": doc}
    if neutral is not MISSING:
        meta["neutral"] = neutral
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls):
    """A section of the config: a dataclass whose fields are keys (or nested sections)."""
    return dataclass(cls)


@section
class Schedule:
    kind: str = key("constant", doc="constant, exponential or piecewise")
    every_epochs: Optional[Number] = key(None, "neutral", neutral=None, doc="exponential: decay every this many epochs")
    every_samples: Optional[Number] = key(None, "neutral", neutral=None, doc="exponential: decay every this many images")
    factor: Optional[Number] = key(None, "neutral", neutral=None, doc="exponential, piecewise: multiply the learning rate by this")
    at_fractions: Optional[List[float]] = key(None, "neutral", neutral=None, doc="piecewise: fractions of training where the rate drops, e.g. [0.3, 0.7]")
    horizon_epochs: Optional[int] = key(None, "neutral", neutral=None, doc="the epochs the schedule spans (null: the run's train.epochs); a tuning trial stopped at an earlier epoch keeps the final run's")


@section
class Optim:
    name: str = key("adam", doc="the recipe's name")
    optimizer: str = key("adam", doc="sgd, adam or rmsprop")
    learning_rate: Number = key(0.001, doc="the initial learning rate")
    momentum: Optional[Number] = key(None, "neutral", neutral=None, doc="sgd, rmsprop")
    schedule: Schedule = field(default_factory=Schedule)
    weight_decay: Number = key(0.0, doc="L2 on every kernel (a builder argument)")
    dropout: Number = key(0.0, doc="before the classifier (a builder argument)")
    ema_momentum: Optional[Number] = key(None, doc="Polyak/EMA weights for evaluation; null: off")


@section
class Augment:
    enabled: bool = key(False, doc="augment training batches (Keras preprocessing layers)")
    rotation_degrees: Number = key(20, doc="random rotation, degrees")
    shift: Number = key(0.1, doc="random translation, fraction of the image")
    shear: Number = key(0.1, doc="Keras' RandomShear factor on x and y")
    shear_degrees: Optional[Number] = key(None, "neutral", neutral=None, doc="an angle; replaces shear when set")
    zoom: Number = key(0.1, doc="random zoom, fraction")
    horizontal_flip: bool = key(True, doc="random left-right flips")
    brightness: List[float] = key([0.7, 1.3], doc="brightness range")
    brightness_mode: str = key("additive", "neutral", neutral="additive", doc="additive or multiplicative")


@section
class Data:
    source: str = key("digits", doc="digits, cifar10, cifar100, fashion_mnist, folder or tfds")
    image_size: int = key(32, split=True, doc="images are resized to image_size x image_size")
    validation_fraction: Number = key(0.1, split=True, doc="held out of training (stratified) where the source has no validation split")
    test_fraction: Optional[Number] = key(None, "neutral", neutral=None, split=True, doc="digits: held out for testing")
    split_seed: int = key(0, split=True, doc="draws the held-out splits (data.split_seed=${seed}: one per replicate)")
    order_seed: Optional[int] = key(None, "neutral", neutral=None, doc="the training order and augmentation draws (null: seed)")
    subsample_seed: Optional[int] = key(None, "neutral", neutral=None, split=True, doc="which training images limit_train keeps, drawn per class (null: the first N of the split's order)")
    limit_train: Optional[int] = key(None, split=True, doc="use only the first N training images")
    limit_val: Optional[int] = key(None, split=True, doc="use only the first N validation images")
    limit_test: Optional[int] = key(None, "neutral", neutral=None, split=True, doc="use only the first N test images")
    cache: str = key("auto", "non_semantic", doc="auto, memory or none")
    pipeline: str = key("auto", doc="auto, tf_data or memory")
    cache_dir: Optional[str] = key(None, "non_semantic", doc="CIFAR, Fashion-MNIST: Keras' cache; TFDS: its data_dir")
    path: Optional[str] = key(None, "neutral", neutral=None, doc="folder: <path>/train/<class>/*, <path>/test/<class>/*; fashion_mnist: the folder of its four IDX files")
    name: Optional[str] = key(None, "neutral", neutral=None, doc="tfds: the data set's name")
    train_split: Optional[str] = key(None, "neutral", neutral=None, split=True, doc="tfds")
    validation_split: Optional[str] = key(None, "neutral", neutral=None, split=True, doc="tfds")
    test_split: Optional[str] = key(None, "neutral", neutral=None, split=True, doc="tfds")
    augment: Augment = field(default_factory=Augment)


@section
class Train:
    epochs: int = key(8, graph=True, doc="training epochs (the schedule's length)")
    init_seed: Optional[int] = key(None, "neutral", neutral=None, doc="the initial weights and dropout draws (null: seed)")
    batch_size: int = key(64, graph=True, doc="global batch size (split over replicates with data_parallel)")
    verbose: Any = key("auto", "non_semantic", doc="auto (progress bar on a terminal), 0, 1 or 2")
    save_model: bool = key(True, "non_semantic", doc="log the trained model as a .keras artifact")
    diverge_factor: Optional[Number] = key(10.0, doc="stop as diverged when the loss exceeds this x its start (null: NaN/inf only)")
    checkpoint: bool = key(True, "non_semantic", doc="save weights and optimizer at each epoch end (resume)")
    checkpoint_dir: Optional[str] = key(None, "non_semantic", doc="null: beside a SQLite store, else <project>/checkpoints")
    oom_retry: bool = key(True, "non_semantic", doc="out of GPU memory: retry with half the batch, 2 accumulation steps")
    precision: str = key("fp32", graph=True, doc="fp32, bf16 (mixed bfloat16) or fp16 (mixed float16)")
    jit_compile: Any = key("auto", "non_semantic", graph=True, doc="XLA compiles the same computation")
    run_eagerly: bool = key(False, "non_semantic", doc="the same computation, op by op")
    reuse_compiled: bool = key(True, "non_semantic", doc="a kept traced model, bit-for-bit (tests/test_reuse.py)")
    data_parallel: bool = key(False, doc="one replica per local GPU (MirroredStrategy / JAX DataParallel)")
    precise_bn_batches: int = key(4, "neutral", neutral=0, doc="batch-norm statistics recomputed from this many batches before evaluation")
    freeze_base_epochs: int = key(0, "neutral", neutral=0, doc="fine-tuning: train only the classifier this many epochs first")
    onednn: str = key("auto", "non_semantic", doc="the same computation through other CPU kernels")


@section
class Tracking:
    uri: Optional[str] = key(None, "non_semantic", doc="null: $MLFLOW_TRACKING_URI, else <project>/mlflow.db")
    experiment: Optional[str] = key(None, "non_semantic", doc="the MLflow experiment (conf: ${study})")
    heartbeat_seconds: Number = key(60, "non_semantic", doc="a running job refreshes its heartbeat tag this often")
    stale_after_seconds: Number = key(600, "non_semantic", doc="a RUNNING run whose heartbeat is older is dead (on this host also: its pid gone or reused)")
    system_metrics: bool = key(True, "non_semantic", doc="MLflow's CPU/memory/GPU sampler on the run")
    system_metrics_seconds: Number = key(10, "non_semantic", doc="its sampling interval")
    stage: str = key("final", "non_semantic", doc="set by the staged sweeper: pilot, tune or final")
    tuned_key: Optional[str] = key(None, "non_semantic", doc="set by the staged sweeper: the key its tuning stage picks")
    trial: Optional[str] = key(None, "non_semantic", doc="set by the staged sweeper on a pruned search's scout: <Optuna study>@<trial>")
    database: Optional[str] = key(None, "non_semantic", doc="where a study lives with a server store: the server's database URI (postgresql://…); the Optuna studies of its tuning go there too (schema optuna); null: beside a SQLite store")


@section
class Model:
    preset: str = key("mini", doc="a builder preset: xception, mini, debug")
    weights: Optional[str] = key(None, "neutral", neutral=None, doc="null, imagenet or a weights file")
    head: str = key("avg", "neutral", neutral="avg", doc="avg or flatten")
    match: Optional[str] = key(None, "neutral", neutral=None, doc="null, params or flops")
    match_residual: Optional[bool] = key(None, "neutral", neutral=None, doc="the model model.match matches to has shortcut branches (true) or none (false); null: as this model (residual=false model.match=params model.match_residual=true: a residual-free model with the residual one's parameters); inert without model.match")
    # + every keyword argument of xablate.models.build_xception (semantic, graph): `builder_keys()`


@section
class Job:
    study: str = key("default", "non_semantic", doc="the study (MLflow experiment) the runs go to")
    residual: bool = key(True, graph=True, doc="shortcut branches on/off (paper Fig. 9)")
    intermediate_act: Optional[str] = key("none", graph=True, doc="none, or a Keras activation between the depthwise and pointwise op (Fig. 10)")
    segments: Any = key("depthwise", graph=True, doc="channel segments of every spatial conv: 1 ... k ... depthwise")
    seed: int = key(0, doc="the replicate: initial weights, data order, augmentation")
    backend: str = key("tensorflow", doc="Keras backend: tensorflow, jax or torch (conf: $KERAS_BACKEND)")
    force: bool = key(False, "non_semantic", doc="train again even when the study holds a finished run of this config")
    analysis: Any = key(None, "non_semantic", doc="a study file's analysis block (free-form)")
    # the builder's section: Model's fields plus every builder argument, open to them (`model_node`)
    model: Dict[str, Any] = field(default_factory=lambda: model_node(), metadata={"section": Model})
    data: Data = field(default_factory=Data)
    optim: Optim = field(default_factory=Optim)
    train: Train = field(default_factory=Train)
    tracking: Tracking = field(default_factory=Tracking)


class TypedSections:
    """The sections of an object that holds a typed `config` (a Job), read as attributes: what a training job
    (xablate.training.job.Job) and a measured bench run (xablate.bench.common.Measured) share."""

    config: Job

    @property
    def seed(self) -> int:
        return int(self.config.seed)

    @property
    def source_seeds(self) -> dict[str, int | None]:
        """The seed of each source of variance this run drew from (what the replicate `seed` derives where a key
        is null): initial weights, training order, held-out split, training subsample (None: the split's order)."""
        config = self.config
        init, order = config.train.init_seed, config.data.order_seed
        return {"init": int(config.seed if init is None else init), "order": int(config.seed if order is None else order),
                "split": int(config.data.split_seed), "subsample": config.data.subsample_seed}

    @property
    def train(self) -> Train:
        return self.config.train

    @property
    def data(self) -> Data:
        return self.config.data

    @property
    def optim(self) -> Optim:
        return self.config.optim

    @property
    def tracking(self) -> Tracking:
        return self.config.tracking

    @property
    def model(self) -> dict[str, Any]:
        """The builder's section: Model's fields and every builder argument (`preset` where left to the preset)."""
        return self.config.model


def _walk(cls, prefix: str = "") -> Iterable[tuple[str, Any]]:
    for f in fields(cls):
        name = f"{prefix}{f.name}"
        nested = f.metadata.get("section") or (f.default_factory() if f.default_factory is not MISSING else None)
        if is_dataclass(nested):
            yield from _walk(nested if isinstance(nested, type) else type(nested), f"{name}.")
        else:
            yield name, f


def declared() -> dict[str, Any]:
    """Every declared key (dotted) -> its dataclass field."""
    return dict(_walk(Job))


@lru_cache(maxsize=1)
def builder_keys() -> tuple[str, ...]:
    """`model.<argument>` for each keyword argument of the builder a user may set (not the axes, which are
    top-level keys, nor the input shape and classes, which come from the data). Read from the builder's source,
    so that checking a config imports no Keras (tests/test_schema.py compares it with the live signature)."""
    import ast
    from pathlib import Path

    source = Path(__file__).with_name("models") / "xception.py"
    tree = ast.parse(source.read_text())
    builder = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "build_xception")
    skip = {"residual", "intermediate_act", "segments", "input_shape", "classes"}
    return tuple(f"model.{a.arg}" for a in builder.args.kwonlyargs if a.arg not in skip)


PRESET = "preset"  # a builder argument left at the preset's value (model.<argument>: preset)


def model_node() -> dict[str, Any]:
    """The model group's base node: the Model section's fields at their defaults, then every other keyword
    argument of the builder at `preset` (the preset's or the builder's own value), so `model.<argument>=value`
    needs no `+` and a new builder argument is a new key with no edit to conf/."""
    node = {f.name: f.default for f in fields(Model)}
    for name in builder_keys():
        node.setdefault(name.split(".", 1)[1], PRESET)
    return node


def job_node():
    """The typed job config (Hydra's Structured Config): every section's dataclass, the model section open to the
    builder's arguments (their values are checked by the builder, xablate.training.validation). Hydra merges the
    YAML presets over it, so a value of the wrong type (`train.epochs=abc`, `data.limit_train=1.5`) is refused
    while composing, before any run or store exists."""
    from omegaconf import OmegaConf

    return OmegaConf.structured(Job)


def register() -> None:
    """Stores the schema in Hydra's ConfigStore: `_schema` (the typed job, first in conf/config.yaml's defaults)
    and each section in its group as `<group>/_schema` (data, optim, train, tracking; `model/_builder` for the
    model group, which conf/model/*.yaml list first). Idempotent; done when this module is imported, so that every
    compose (run.py, the CLI, the tests) finds it."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="_schema", node=job_node())
    store.store(group="model", name="_builder", node=model_node())


def typed(cls, values: Mapping[str, Any]):
    """The section `cls` (Job for a whole job) as its dataclass instance, from a composed config's plain values:
    each nested section its own dataclass, the model section the builder's dict; a key the values lack takes the
    schema's default (the one place defaults live). Unknown keys are refused before (`check_known_keys`)."""
    kwargs = {}
    for f in fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if is_dataclass(default) and isinstance(value, Mapping):
            value = typed(type(default), value)
        kwargs[f.name] = value
    return cls(**kwargs)


def plain(section) -> dict[str, Any]:
    """A typed section back as the plain nested dict it was built from (what digests and records hash)."""
    return asdict(section)


def model_settings(model: Mapping[str, Any]) -> dict[str, Any]:
    """The model section without the builder arguments left at `preset`."""
    return {k: v for k, v in model.items() if not (isinstance(v, str) and v == PRESET)}


def non_semantic_keys() -> tuple[str, ...]:
    return tuple(name for name, f in declared().items() if f.metadata["role"] == "non_semantic")


def neutral_defaults() -> dict[str, Any]:
    """Declared neutral keys at their neutral value; every builder argument is neutral at `preset`."""
    neutral = {name: PRESET for name in builder_keys() if name not in declared()}
    return neutral | {name: f.metadata["neutral"] for name, f in declared().items() if f.metadata["role"] == "neutral"}


def keys_with(flag: str, prefix: str = "") -> tuple[str, ...]:
    """The declared keys with `flag` (graph or split) under `prefix` (e.g. "data."), prefix removed."""
    return tuple(name[len(prefix):] for name, f in declared().items()
                 if f.metadata[flag] and name.startswith(prefix))


def unknown_keys(names: Iterable[str]) -> list[tuple[str, str | None]]:
    """The keys among `names` (a flattened config's keys) that no section declares, each with the nearest known
    key (or None)."""
    known = known_keys()
    return [(name, nearest(name, known)) for name in names if not is_known(name, known)]


def known_keys() -> frozenset[str]:
    """Every declared key, every builder argument, and the builder arguments that come from elsewhere."""
    return frozenset(set(declared()) | set(builder_keys()) | MODEL_ELSEWHERE)


def is_known(name: str, known: set[str]) -> bool:
    """A known key, a key inside a free-form block, or a list/dict value of a known key (flattened)."""
    return (name in known or any(name == free or name.startswith(free + ".") for free in FREE_FORM)
            or any(name.startswith(k + ".") for k in known))


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known key a typo most likely meant: same section first, then anywhere."""
    known = sorted(known)
    section_ = name.rsplit(".", 1)[0] if "." in name else ""
    same = [k for k in known if (k.rsplit(".", 1)[0] if "." in k else "") == section_]
    for pool in (same, known):
        leaves = {k.rsplit(".", 1)[-1]: k for k in pool}
        close = difflib.get_close_matches(name.rsplit(".", 1)[-1], list(leaves), n=1, cutoff=0.75)
        if close:
            return leaves[close[0]]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return close[0] if close else None


def check_known_keys(flat: Mapping[str, Any]) -> None:
    """ValueError naming the first unknown key of a flattened config, its value and the nearest known key."""
    unknown = unknown_keys(flat)
    if not unknown:
        return
    name, close = unknown[0]
    hint = f"did you mean {close}?" if close else "no known key is close"
    more = f" (and {len(unknown) - 1} more: {', '.join(n for n, _ in unknown[1:])})" if len(unknown) > 1 else ""
    section_ = name.rsplit(".", 1)[0] if "." in name else None
    where = (f"the keys of {section_} are: {', '.join(sorted(k.rsplit('.', 1)[-1] for k in _known_in(section_)))}"
             if section_ and _known_in(section_) else "python run.py --cfg job shows them")
    raise ValueError(f"Received an unknown key {name}={flat[name]!r}{more}; {hint} Allowed: the keys the config "
                     f"declares ({where}).")


def _known_in(section_: str) -> list[str]:
    return [k for k in set(declared()) | set(builder_keys()) if k.rsplit(".", 1)[0] == section_]


class ConfigError(ValueError):
    """A bad setting found before any data loads or any run starts (run.py prints it as one line)."""


def check_override_keys(overrides: Iterable[str], groups: Iterable[str]) -> None:
    """ValueError for a command-line override whose key is neither a config group nor a declared key (a sweep's
    values are applied per job, so the sweep's parent checks their keys by name before it exists)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    known = known_keys()
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        name = override.get_key_element().lstrip("+~")
        if name.split("/")[0] in groups or name.split(".")[0] == "hydra" or is_known(name, known):
            continue
        close = nearest(name, known)
        hint = f"did you mean {close}?" if close else "no known key is close"
        raise ValueError(f"Received an unknown key in the override {override.input_line}; {hint} Allowed: a config "
                         f"group ({', '.join(sorted(groups))}) or a key the config declares.")


def reference_markdown() -> str:
    """docs/config.md: every key with its type, default, role and what it is (`python -m xablate.schema`)."""
    lines = ["# Configuration reference", "",
             "Generated from `xablate/schema.py` by `python -m xablate.schema > docs/config.md` (a test checks it is",
             "current). Set any key as `key=value` (`python run.py train.epochs=3`); a key not listed is refused.",
             "Roles: *semantic* keys enter the run identity; *neutral* keys enter it only away from their neutral",
             "value; *non-semantic* keys never do. *graph*: a kept compiled model is reused only when it is the same;",
             "*split*: it decides which images a split holds (the data digest).", ""]
    sections: dict[str, list[str]] = {}
    for name, f in declared().items():
        section_ = name.rsplit(".", 1)[0] if "." in name else "(top level)"
        role = f.metadata["role"].replace("_", "-")
        if role == "neutral":
            role += f" (at {_yaml(f.metadata['neutral'])})"
        flags = ", ".join(flag for flag in ("graph", "split") if f.metadata[flag])
        default = _yaml(f.default_factory() if f.default_factory is not MISSING else f.default)
        kind = getattr(f.type, "__name__", str(f.type)).replace("typing.", "")
        sections.setdefault(section_, []).append(
            f"| `{name}` | {kind} | `{default}` | {role}{', ' + flags if flags else ''} | {f.metadata['doc']} |")
    builder = [f"| `{name}` | builder argument | `{PRESET}` | neutral (at {PRESET}), graph | the preset's "
               f"value unless set |" for name in builder_keys() if name not in declared()]
    sections["model"] = sections.get("model", []) + builder
    for section_, rows in sections.items():
        lines += [f"## {section_}", "", "| key | type | default | role | what |", "|---|---|---|---|---|", *rows, ""]
    lines += ["`analysis` is a study file's block, read by `xablate.studies.parse_study` (its own keys).", ""]
    return "\n".join(lines)


def _yaml(value: Any) -> str:
    """A default as it is typed in YAML or on the command line."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value) if not isinstance(value, (list, dict)) else str(value).replace("'", "")


register()  # declarative: Hydra's config registry (see `register`)

if __name__ == "__main__":
    print(reference_markdown(), end="")
