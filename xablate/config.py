"""Plain-dict helpers for a job's config (the Hydra config becomes plain Python once, in run.py)."""

from __future__ import annotations

from typing import Any, Mapping

AXES = ("residual", "intermediate_act", "segments")


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def variant_label(cfg: Mapping[str, Any]) -> str:
    """The human name of a variant: its ablation axes and seed, e.g. intermediate_act=elu,residual=True,…"""
    keys = sorted(AXES) + ["seed"]
    return ",".join(f"{k}={cfg[k]}" for k in keys)
