"""Optional dependencies: what each extra of the package brings, and one line naming it when it is missing.

The core install trains, tracks and analyses (TensorFlow, Keras, Hydra with its joblib launcher, MLflow, Optuna,
pandas, seaborn, scipy, statsmodels). The rest is an extra (pyproject.toml's optional-dependencies; `[dev]` is all
of them plus pytest):

    ray        hydra/launcher=ray_cluster       jobs as Ray tasks, on this machine or a cluster
    slurm      hydra/launcher=slurm|slurm_local  jobs as Slurm (or local submitit) jobs
    jax        backend=jax                       Keras on JAX
    tfds       data=tfds                         TensorFlow Datasets by name
    notebooks  notebooks/*.py as notebooks       Jupyter and jupytext
    gpu        tracking.system_metrics on a GPU  NVML's utilisation and memory
    server     xablate server, tracking.database  PostgreSQL's driver (psycopg) for the server and Optuna

`require(extra, what)` is called where the feature starts, before any run exists.
"""

from __future__ import annotations

import importlib.util

EXTRAS = {  # extra -> the modules it installs that xablate imports
    "ray": ("hydra_plugins.hydra_ray_launcher", "ray"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "submitit"),
    "jax": ("jax",),
    "tfds": ("tensorflow_datasets",),
    "notebooks": ("jupytext", "nbconvert"),
    "server": ("psycopg",),
}
LAUNCHER_EXTRAS = {"ray_cluster": "ray", "ray": "ray", "slurm": "slurm", "slurm_local": "slurm",
                   "submitit_slurm": "slurm", "submitit_local": "slurm"}  # hydra/launcher=<option> -> extra


class MissingExtra(ImportError):
    """A feature whose optional dependencies are not installed; the message is one line naming the extra."""


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return False


def require(extra: str, what: str) -> None:
    """MissingExtra naming `what` and the extra that installs it, when any of the extra's modules is missing."""
    missing = [module for module in EXTRAS[extra] if not installed(module)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtra(f"{what} needs xablate's optional dependencies [{extra}] ({', '.join(missing)} {verb} not "
                           f"installed): pip install -e '.[{extra}]' (or '.[dev]': all of them).")


def require_launcher(overrides: list[str]) -> None:
    """The extra of a `hydra/launcher=<option>` override (each option of a swept launcher), before Hydra looks."""
    for word in overrides:
        key, _, value = word.partition("=")
        if key.lstrip("+~") != "hydra/launcher":
            continue
        for option in value.split(","):
            extra = LAUNCHER_EXTRAS.get(option.strip())
            if extra:
                require(extra, f"hydra/launcher={option.strip()}")


def require_for(config) -> None:
    """The extras a job needs (its typed config, xablate.schema.Job): its backend's and its data source's."""
    if config.backend == "jax":
        require("jax", "backend=jax")
    if config.data.source == "tfds":
        require("tfds", "data.source=tfds")
