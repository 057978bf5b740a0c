"""Run identity: a hash of everything in a job's config that can change its result, and nothing else.

Two jobs with the same identity train the same variant on the same data with the same recipe and seed, so a
finished run can stand in for a rerun and an interrupted one can be continued. Where the results go
(tracking), how much is printed, whether the model file is kept, caching and checkpoint locations, the
launcher and the output folders do not enter the hash; Hydra's own settings never reach the job config.

Identities survive upgrades. The rule for a new config key:
  - if some value of it reproduces the behaviour from before the key existed, declare that value in
    NEUTRAL_DEFAULTS: a key at its neutral value does not enter the hash, so every identity issued before it
    stays valid (runs of older versions are still found, skipped or resumed);
  - if no value does (a change of protocol), leave it out: identities change, as the results do.
tests/test_identity.py fails for a key that is in neither NEUTRAL_DEFAULTS nor its list of hashed keys, so
the choice is made on purpose.
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
    "train.run_eagerly",  # the same computation, op by op
    "train.onednn",       # the same computation through other CPU kernels (xablate/onednn.py)
    "train.reuse_compiled",  # the same computation on a kept traced model (bit-for-bit, tests/test_reuse.py)
    "data.cache",
    "data.cache_dir",
    "analysis",         # how a study is read (title, baseline, claims), not what a run computes
)

# Keys added after identities were first issued, at the value that behaves as before they existed.
NEUTRAL_DEFAULTS: dict[str, Any] = {
    "train.precise_bn_batches": 0,  # 0 = Keras' moving averages, as before precise batch norm
    "data.limit_test": None,
    "model.weights": None,              # random init, as before pretrained weights could be loaded
    "model.head": "avg",                # global average pooling, the only head before
    "model.match": None,                # widths as configured, not matched in parameters or FLOPs
    "train.freeze_base_epochs": 0,      # no frozen warm-up
    "data.augment.brightness_mode": "additive",  # Keras' RandomBrightness, as before the seed's multiplicative one
    "data.augment.shear_degrees": None,  # shear given as a factor (data.augment.shear), as before
}


def is_semantic(key: str) -> bool:
    """Whether a flattened config key can change a run's result."""
    return not any(key == prefix or key.startswith(prefix + ".") for prefix in NON_SEMANTIC)


def param_value(value: Any) -> str:
    """How a config value is written as an MLflow param (and hashed): JSON for lists and dicts, str otherwise."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def is_neutral(key: str, value: Any) -> bool:
    """Whether a key sits at the value that behaves as before the key existed."""
    return key in NEUTRAL_DEFAULTS and value == NEUTRAL_DEFAULTS[key]


def semantic_config(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The flattened config that decides a run's result (keys at a neutral default left out), values as they
    are logged as params."""
    return {key: param_value(value) for key, value in sorted(flatten(cfg).items())
            if is_semantic(key) and not is_neutral(key, value)}


def run_identity(cfg: Mapping[str, Any], backend: str) -> str:
    """A 16-hex-digit hash of the semantic config plus the Keras backend (its numerics and RNG differ)."""
    payload = {"version": IDENTITY_VERSION, "backend": backend, "config": semantic_config(cfg)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
