"""One job of a study, from a plain config dict (run.py converts Hydra's config once, before this).

For now a job builds its variant and prints what was built; training and MLflow tracking arrive with the
"Hydra sweep -> training -> MLflow" issue.
"""

from __future__ import annotations

from typing import Any, Mapping

import keras

from xablate.models import ModelSummary, build_xception, preset_kwargs, summarize_model

AXES = ("residual", "intermediate_act", "segments")


def model_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Builder arguments of a job: the model preset, its overrides, then the top-level ablation axes."""
    model_cfg = dict(cfg["model"])
    preset = model_cfg.pop("preset")
    if "input_shape" in model_cfg:
        model_cfg["input_shape"] = tuple(model_cfg["input_shape"])
    return preset_kwargs(preset, **model_cfg, **{axis: cfg[axis] for axis in AXES})


def run_job(cfg: Mapping[str, Any]) -> ModelSummary:
    """Builds the configured variant and prints its summary."""
    kwargs = model_kwargs(cfg)
    keras.utils.set_random_seed(int(cfg["seed"]))
    model = build_xception(**kwargs)
    summary = summarize_model(model)
    variant = ", ".join(f"{axis}={cfg[axis]}" for axis in AXES)
    print(f"xablate variant: {variant} (preset {cfg['model']['preset']})")
    print(summary.format_table())
    return summary

