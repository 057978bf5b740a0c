"""Plain-dict helpers for a job's config (the Hydra config becomes plain Python once, in run.py), and the
names a run is shown by.

An *axis* is any config key a sweep varies (`intermediate_act`, `optim.learning_rate`, `model.width_multiplier`);
`seed` and `data.split_seed` are replicates, never axes. The three top-level keys of the paper's ablations go
to the model builder (`MODEL_AXES`); any other builder argument is swept as `model.<argument>`.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from xablate.dotted import flatten  # noqa: F401  (xablate.config.flatten: where callers import it from)

MODEL_AXES = ("residual", "intermediate_act", "segments")
AXES = MODEL_AXES  # the builder's ablation arguments that are top-level config keys
# what varies between replicates of one variant: the replicate's seed and each source of variance's own seed
SOURCE_SEED_KEYS = {"init": "train.init_seed", "order": "data.order_seed", "split": "data.split_seed",
                    "subsample": "data.subsample_seed"}
REPLICATE_KEYS = ("seed", "data.split_seed", "train.init_seed", "data.order_seed", "data.subsample_seed")
# Short names for run names in MLflow's narrow columns; any other key is shown by its last component.
SHORT_NAMES = {"intermediate_act": "act", "segments": "k", "learning_rate": "lr", "residual": "residual"}


def axes_of(config) -> dict[str, Any]:
    """The builder's three ablation arguments (the top-level axes) of a typed config (xablate.schema.Job)."""
    return {axis: getattr(config, axis) for axis in AXES}


def variant_label(axes: Mapping[str, Any]) -> str:
    """The full name of a variant: its axes, e.g. `intermediate_act=elu`; `baseline` when nothing is swept."""
    return ",".join(f"{key}={value}" for key, value in axes.items()) or "baseline"


def short_name(key: str) -> str:
    """`intermediate_act` -> `act`, `optim.learning_rate` -> `lr`, `model.width_multiplier` -> `width_multiplier`."""
    last = key.rsplit(".", 1)[-1]
    return SHORT_NAMES.get(key, SHORT_NAMES.get(last, last))


def run_name(axes: Mapping[str, Any], seed: int) -> str:
    """A short run name that shows what varies first: `act=elu · seed 0`, `k=16 · seed 2`."""
    parts = [f"{short_name(key)}={value}" for key, value in axes.items()]
    return " · ".join([*parts, f"seed {seed}"])


def compose_job(overrides: Iterable[str] = (), *, resolve: bool = True, hydra: bool = False):
    """The job config `python run.py <overrides>` composes, as plain Python (resolve=False: interpolations kept);
    hydra=True: Hydra's DictConfig with its own section (a sweep's declared params, its sweeper). The one place
    a config is composed outside run.py (the CLI, the benchmarks, the tests)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import xablate.schema  # noqa: F401  (registers the typed schema with Hydra's ConfigStore)
    from xablate.paths import project_root

    if GlobalHydra.instance().is_initialized():  # inside a running Hydra app (a sweeper): its config search path
        cfg = compose("config", overrides=list(overrides), return_hydra_config=hydra)
    else:
        with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=list(overrides), return_hydra_config=hydra)
    return cfg if hydra else OmegaConf.to_container(cfg, resolve=resolve)
