"""Run identity: a hash of everything in a job's config that can change its result, and nothing else.

Two jobs with the same identity train the same variant on the same data with the same recipe and seed, so a
finished run can stand in for a rerun and an interrupted one can be continued. Where the results go
(tracking), how much is printed, whether the model file is kept, caching and checkpoint locations, the
launcher and the output folders do not enter the hash; Hydra's own settings never reach the job config.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from xablate.config import flatten

IDENTITY_VERSION = "1"  # bump when the hashing rule changes, so old and new hashes never collide

# Keys (flattened, prefix match on whole components) that never change what a run computes.
NON_SEMANTIC = (
    "study",            # the MLflow experiment the run is filed under; the lookup is per study anyway
    "force",
    "tracking",
    "train.verbose",
    "train.save_model",
    "train.checkpoint",
    "train.checkpoint_dir",
    "train.oom_retry",
    "train.jit_compile",  # XLA compiles the same computation
    "data.cache",
    "data.cache_dir",
)


def is_semantic(key: str) -> bool:
    """Whether a flattened config key can change a run's result."""
    return not any(key == prefix or key.startswith(prefix + ".") for prefix in NON_SEMANTIC)


def param_value(value: Any) -> str:
    """How a config value is written as an MLflow param (and hashed): JSON for lists and dicts, str otherwise."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def semantic_config(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The flattened config that decides a run's result, values as they are logged as params."""
    return {key: param_value(value) for key, value in sorted(flatten(cfg).items()) if is_semantic(key)}


def run_identity(cfg: Mapping[str, Any], backend: str) -> str:
    """A 16-hex-digit hash of the semantic config plus the Keras backend (its numerics and RNG differ)."""
    payload = {"version": IDENTITY_VERSION, "backend": backend, "config": semantic_config(cfg)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
