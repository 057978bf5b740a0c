"""Run identity: a hash of everything in a job's config that can change its result, and nothing else.

Two jobs with the same identity train the same variant on the same data with the same recipe and seed, so a
finished run can stand in for a rerun and an interrupted one can be continued. Where the results go
(tracking), how much is printed, whether the model file is kept, caching and checkpoint locations, the
launcher and the output folders do not enter the hash; Hydra's own settings never reach the job config.

Identities survive upgrades. The rule for a new config key:
  - if some value of it reproduces the behaviour from before the key existed, declare it in xablate.schema with
    role "neutral" and that value: a key at its neutral value does not enter the hash, so every identity
    issued before it stays valid (runs of older versions are still found, skipped or resumed);
  - if no value does (a change of protocol), declare it "semantic": identities change, as the results do.
Every key declares its role in xablate.schema (tests/test_schema.py fails for one that does not, and recomputes
the identity of every committed run from its params), so the choice is made on purpose.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from xablate.config import flatten
from xablate.paths import portable
from xablate.schema import neutral_defaults, non_semantic_keys

IDENTITY_VERSION = "1"  # bump when the hashing rule changes, so old and new hashes never collide

# Both derived from each key's declared role (xablate.schema): flattened keys, prefix match on whole components.
NON_SEMANTIC = non_semantic_keys()  # never change what a run computes
NEUTRAL_DEFAULTS: dict[str, Any] = neutral_defaults()  # added later, at the value that behaves as before


def is_semantic(key: str) -> bool:
    """Whether a flattened config key can change a run's result."""
    return not any(key == prefix or key.startswith(prefix + ".") for prefix in NON_SEMANTIC)


def as_recorded(key: str, value: Any) -> Any:
    """A config value as a run records it (its params and its config.yaml): a non-semantic string (the tracking
    URI, an output folder) through paths.portable, so the records hold no machine's layout; others unchanged."""
    return portable(value) if isinstance(value, str) and not is_semantic(key) else value


def recorded_config(cfg: Mapping, prefix: str = "") -> dict:
    """The nested config with every value as_recorded (what the run's config.yaml artifact holds)."""
    return {k: recorded_config(v, f"{prefix}{k}.") if isinstance(v, Mapping) else as_recorded(f"{prefix}{k}", v)
            for k, v in cfg.items()}


def param_value(value: Any) -> str:
    """How a config value is written as an MLflow param (and hashed): JSON for lists and dicts, str otherwise."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def is_neutral(key: str, value: Any) -> bool:
    """Whether a key sits at the value that behaves as before the key existed."""
    return key in NEUTRAL_DEFAULTS and value == NEUTRAL_DEFAULTS[key]


def semantic_params(flat: Mapping[str, Any]) -> dict[str, str]:
    """Of a flattened config, what decides a run's result (keys at a neutral default left out), values as they
    are logged as params."""
    return {key: param_value(value) for key, value in sorted(flat.items())
            if is_semantic(key) and not is_neutral(key, value)}


def run_identity(cfg: Mapping[str, Any], backend: str) -> str:
    """A 16-hex-digit hash of the semantic config plus the Keras backend (its numerics and RNG differ)."""
    payload = {"version": IDENTITY_VERSION, "backend": backend, "config": semantic_params(flatten(cfg))}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
