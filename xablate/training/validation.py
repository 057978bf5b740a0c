"""Validation of a job's typed sections before any data loads or any MLflow run starts (the gate that calls it:
xablate.schema.parse_job). Every message names the setting, the value received and what is allowed.
"""

from __future__ import annotations

import os
from pathlib import Path

from xablate.config import AXES
from xablate.backend import BACKENDS
from xablate.checks import number_in, positive_int, seed_value
from xablate.data.checks import validate_data
from xablate.extras import require_for
from xablate.models.pretrained import check_weights_setting
from xablate.onednn import check_mode as check_onednn_mode
from xablate.schema import ConfigError, Job, model_settings  # noqa: F401  (ConfigError: where callers import it from)
from xablate.models import PRESETS, check_build_kwargs
from xablate.models.matching import matched_kwargs
from xablate.models.xception import normalize_activation
from xablate.staging import STAGES
from xablate.studies import check_study_name
from xablate.training.devices import PRECISIONS
from xablate.training.recipes import validate_recipe

VERBOSITY = ("auto", 0, 1, 2)


def validate_job(config: Job) -> None:
    """The settings of a job's typed sections, each against what it allows (the keys are known by now)."""
    if not isinstance(config.residual, bool):
        raise ValueError(f"Received residual={config.residual!r}; allowed: true, false.")
    seed_value("seed", config.seed)
    if config.train.init_seed is not None:
        seed_value("train.init_seed", config.train.init_seed)
    check_study_name(config.study)

    train = config.train
    positive_int("train.epochs", train.epochs)
    precise = train.precise_bn_batches
    if isinstance(precise, bool) or not isinstance(precise, int) or precise < 0:
        raise ValueError(f"Received train.precise_bn_batches={precise!r}; allowed: an integer >= 0 (0: Keras' moving "
                         f"averages).")
    positive_int("train.batch_size", train.batch_size)
    if train.verbose not in VERBOSITY:
        raise ValueError(f"Received train.verbose={train.verbose!r}; allowed: auto, 0, 1, 2.")
    factor = train.diverge_factor
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1):
        raise ValueError(f"Received train.diverge_factor={factor!r}; allowed: a number > 1, or null to stop only "
                         f"on a NaN/inf loss.")
    if config.backend not in BACKENDS:
        raise ValueError(f"Received backend={config.backend!r}; allowed: {', '.join(BACKENDS)}.")
    require_for(config)  # backend=jax, data.source=tfds: their extras installed
    if train.precision not in PRECISIONS:
        raise ValueError(f"Received train.precision={train.precision!r}; allowed: {', '.join(PRECISIONS)}.")
    if train.jit_compile not in ("auto", True, False):
        raise ValueError(f"Received train.jit_compile={train.jit_compile!r}; allowed: auto, true, false.")
    for flag in ("run_eagerly", "reuse_compiled"):
        if not isinstance(getattr(train, flag), bool):
            raise ValueError(f"Received train.{flag}={getattr(train, flag)!r}; allowed: true, false.")
    check_onednn_mode(train.onednn)
    if train.run_eagerly and train.jit_compile is True:
        raise ValueError("Received train.run_eagerly=true with train.jit_compile=true; allowed: one of them (XLA "
                         "compiles the traced graph that eager execution skips).")
    for key, value in (("force", config.force), ("train.checkpoint", train.checkpoint),
                       ("train.data_parallel", train.data_parallel),
                       ("train.oom_retry", train.oom_retry),
                       ("train.save_model", train.save_model)):
        if not isinstance(value, bool):
            raise ValueError(f"Received {key}={value!r}; allowed: true, false.")
    _check_checkpoint_dir(train.checkpoint_dir)
    horizon = config.optim.schedule.horizon_epochs
    if isinstance(horizon, int) and not isinstance(horizon, bool) and horizon < int(train.epochs):
        raise ValueError(f"Received optim.schedule.horizon_epochs={horizon} with train.epochs={train.epochs}; "
                         f"allowed: null or at least train.epochs (a schedule cannot end before its run).")
    freeze = train.freeze_base_epochs
    if not isinstance(freeze, int) or isinstance(freeze, bool) or not 0 <= freeze < int(train.epochs):
        raise ValueError(f"Received train.freeze_base_epochs={freeze!r}; allowed: an integer from 0 (no frozen "
                         f"warm-up) to train.epochs - 1 = {int(train.epochs) - 1}.")
    tracking = config.tracking
    for key in ("heartbeat_seconds", "stale_after_seconds", "system_metrics_seconds"):
        number_in(f"tracking.{key}", getattr(tracking, key), 0, float("inf"), low_open=True)
    if not isinstance(tracking.system_metrics, bool):
        raise ValueError(f"Received tracking.system_metrics={tracking.system_metrics!r}; allowed: true, false.")
    stages = [s for s in str(tracking.stage).split(",")]
    if not set(stages) <= set(STAGES):
        raise ValueError(f"Received tracking.stage={tracking.stage!r}; allowed: {', '.join(STAGES)} (set by the "
                         f"staged sweeper).")

    validate_data(config.data)  # each owner checks its own settings
    validate_recipe(config.optim)

    model = model_settings(config.model)
    preset = model.pop("preset")
    check_weights_setting(model.pop("weights"))  # where training starts from, not a builder argument
    match = model.pop("match")  # how the width is chosen (xablate.models.matching), not a builder argument
    match_residual = model.pop("match_residual", None)  # the shortcuts of the model it is matched to
    if match_residual is not None and not isinstance(match_residual, bool):
        raise ValueError(f"Received model.match_residual={match_residual!r}; allowed: null, true or false (the "
                         f"model model.match matches to has shortcut branches or not).")
    if preset not in PRESETS:
        raise ValueError(f"Received model.preset={preset!r}; allowed: {', '.join(PRESETS)}.")
    for key in (*AXES, "input_shape", "classes"):
        if key in model:
            where = "the top-level key" if key in AXES else "the data (data.image_size and the source's classes)"
            raise ValueError(f"Received model.{key}={model[key]!r}; allowed: not set here — {key} comes from "
                             f"{where}.")
    recipe = {k: getattr(config.optim, k) for k in ("weight_decay", "dropout") if getattr(config.optim, k) is not None}
    size = config.data.image_size
    try:
        kwargs = {**PRESETS[preset], **recipe, **model, **{axis: getattr(config, axis) for axis in AXES},
                  "input_shape": (size, size, 3)}
        check_build_kwargs(**kwargs)
        if match is not None:
            check_build_kwargs(**matched_kwargs(kwargs, match, residual=match_residual))
    except TypeError as error:  # a non-numeric value where the builder compares numbers
        raise ValueError(f"Received a model setting of the wrong type ({error}); model: {model}.") from None
    except ValueError as error:  # the builder owns the ranges; name the setting as the user typed it
        message = str(error)
        for key in recipe:
            if key not in model and message.startswith(f"Received {key}="):
                message = message.replace(f"Received {key}=", f"Received optim.{key}=", 1).replace(
                    f" {key} ", f" optim.{key} ")
        raise ValueError(message) from None
    normalize_activation(config.intermediate_act)  # a name Keras knows (the builder reads it as Keras does)


def _check_checkpoint_dir(configured) -> None:
    """null, or a folder that exists or can be created (its nearest existing ancestor is a writable folder)."""
    if configured is None:
        return
    allowed = "null (beside the store), or a folder that can be created and written"
    if not isinstance(configured, str) or not configured.strip():
        raise ValueError(f"Received train.checkpoint_dir={configured!r}; allowed: {allowed}.")
    folder = Path(configured).expanduser().resolve()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ValueError(f"Received train.checkpoint_dir={configured!r}; allowed: {allowed} ({existing} is not a "
                         f"writable folder).")
