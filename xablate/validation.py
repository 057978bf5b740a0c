"""Validation of a job's whole config before any data loads or any MLflow run starts.

Every message names the setting, the value received and what is allowed.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from xablate.config import AXES
from xablate.backend import BACKENDS
from xablate.data.pipeline import ARRAY_SOURCES, CACHE_MODES, PIPELINES, choose_pipeline
from xablate.data.sources import SOURCES
from xablate.models import PRESETS, check_build_kwargs
from xablate.models.segments import validate_segments
from xablate.models.xception import normalize_activation
from xablate.studies import parse_study
from xablate.training.devices import PRECISIONS
from xablate.training.recipes import OPTIMIZERS, SCHEDULES

VERBOSITY = ("auto", 0, 1, 2)
SEED_LIMIT = 2**32  # numpy's and TensorFlow's seeds are 32-bit


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Received {name}={value!r}; allowed: an integer >= 1.")


def _number(name: str, value, low: float, high: float, *, low_open=False, high_open=True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        bounds = f"{low} {'<' if low_open else '<='} {name} {'<' if high_open else '<='} {high}"
        raise ValueError(f"Received {name}={value!r}; allowed: {bounds}.")


def normalize_axes(cfg: dict) -> dict:
    """A copy of the config with the axes in canonical form (intermediate_act "none" or a name; segments an
    int or "depthwise"), so that tags, params and the analysis compare like with like."""
    cfg = copy.deepcopy(cfg)
    cfg["intermediate_act"] = normalize_activation(cfg["intermediate_act"]) or "none"
    cfg["segments"] = validate_segments(cfg["segments"])
    return cfg


def validate_job_config(cfg: dict) -> None:
    """Raises ValueError for the first bad setting in a composed job config."""
    if not isinstance(cfg.get("residual"), bool):
        raise ValueError(f"Received residual={cfg.get('residual')!r}; allowed: true, false.")
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"Received seed={seed!r}; allowed: an integer from 0 to {SEED_LIMIT - 1}.")
    if not str(cfg.get("study") or "").strip():
        raise ValueError(f"Received study={cfg.get('study')!r}; allowed: a non-empty name.")

    if cfg.get("analysis") is not None:  # a study file's analysis block: checked where it is read
        parse_study(str(cfg["study"]), {"analysis": cfg["analysis"]}, where=f"study {cfg['study']!r}")

    train = cfg["train"]
    _positive_int("train.epochs", train["epochs"])
    precise = train.get("precise_bn_batches", 0)
    if isinstance(precise, bool) or not isinstance(precise, int) or precise < 0:
        raise ValueError(f"Received train.precise_bn_batches={precise!r}; allowed: an integer >= 0 (0: Keras' moving "
                         f"averages).")
    _positive_int("train.batch_size", train["batch_size"])
    if train.get("verbose", "auto") not in VERBOSITY:
        raise ValueError(f"Received train.verbose={train['verbose']!r}; allowed: auto, 0, 1, 2.")
    factor = train.get("diverge_factor")
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1):
        raise ValueError(f"Received train.diverge_factor={factor!r}; allowed: a number > 1, or null to stop only "
                         f"on a NaN/inf loss.")
    if cfg.get("backend", "tensorflow") not in BACKENDS:
        raise ValueError(f"Received backend={cfg['backend']!r}; allowed: {', '.join(BACKENDS)}.")
    if train.get("precision", "fp32") not in PRECISIONS:
        raise ValueError(f"Received train.precision={train['precision']!r}; allowed: {', '.join(PRECISIONS)}.")
    if train.get("jit_compile", "auto") not in ("auto", True, False):
        raise ValueError(f"Received train.jit_compile={train['jit_compile']!r}; allowed: auto, true, false.")
    for key, value in (("force", cfg.get("force", False)), ("train.checkpoint", train.get("checkpoint", True)),
                       ("train.data_parallel", train.get("data_parallel", False)),
                       ("train.oom_retry", train.get("oom_retry", True)),
                       ("train.save_model", train.get("save_model", True))):
        if not isinstance(value, bool):
            raise ValueError(f"Received {key}={value!r}; allowed: true, false.")
    _check_checkpoint_dir(train.get("checkpoint_dir"))
    tracking = cfg["tracking"]
    for key in ("heartbeat_seconds", "stale_after_seconds"):
        _number(f"tracking.{key}", tracking.get(key, 60), 0, float("inf"), low_open=True)

    _validate_data(cfg["data"])
    _validate_optim(cfg["optim"])

    model = dict(cfg["model"])
    preset = model.pop("preset")
    if preset not in PRESETS:
        raise ValueError(f"Received model.preset={preset!r}; allowed: {', '.join(PRESETS)}.")
    for key in (*AXES, "input_shape", "classes"):
        if key in model:
            where = "the top-level key" if key in AXES else "the data (data.image_size and the source's classes)"
            raise ValueError(f"Received model.{key}={model[key]!r}; allowed: not set here — {key} comes from "
                             f"{where}.")
    recipe = {k: cfg["optim"][k] for k in ("weight_decay", "dropout") if cfg["optim"].get(k) is not None}
    size = cfg["data"]["image_size"]
    try:
        check_build_kwargs(**{
            **PRESETS[preset], **recipe, **model, **{axis: cfg[axis] for axis in AXES},
            "input_shape": (size, size, 3),
        })
    except TypeError as error:  # a non-numeric value where the builder compares numbers
        raise ValueError(f"Received a model setting of the wrong type ({error}); model: {model}.") from None
    except ValueError as error:  # the builder owns the ranges; name the setting as the user typed it
        message = str(error)
        for key in recipe:
            if key not in model and message.startswith(f"Received {key}="):
                message = message.replace(f"Received {key}=", f"Received optim.{key}=", 1).replace(
                    f" {key} ", f" optim.{key} ")
        raise ValueError(message) from None


def _validate_data(data: dict) -> None:
    if data["source"] not in SOURCES:
        raise ValueError(f"Received data.source={data['source']!r}; allowed: {', '.join(SOURCES)}.")
    _positive_int("data.image_size", data["image_size"])
    for key in ("limit_train", "limit_val", "limit_test"):
        if data.get(key) is not None:
            _positive_int(f"data.{key}", data[key])
    split_seed = data.get("split_seed", 0)
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or not 0 <= split_seed < SEED_LIMIT:
        raise ValueError(f"Received data.split_seed={split_seed!r}; allowed: an integer from 0 to {SEED_LIMIT - 1}.")
    if data["source"] in ("digits", "cifar10", "cifar100", "folder"):
        _number("data.validation_fraction", data["validation_fraction"], 0.0, 1.0, low_open=True)
    pipeline = data.get("pipeline", "auto")
    if pipeline not in PIPELINES:
        raise ValueError(f"Received data.pipeline={pipeline!r}; allowed: {', '.join(PIPELINES)}.")
    if choose_pipeline(data) == "memory" and data["source"] not in ARRAY_SOURCES:
        why = "" if pipeline == "memory" else " (TensorFlow is not installed, so auto means memory)"
        raise ValueError(f"Received data.pipeline={pipeline!r} with data.source={data['source']!r}{why}; allowed: "
                         f"the in-memory pipeline reads {', '.join(ARRAY_SOURCES)}; {data['source']} needs tf_data.")
    if data.get("cache", "auto") not in CACHE_MODES:
        raise ValueError(f"Received data.cache={data['cache']!r}; allowed: {', '.join(CACHE_MODES)}.")
    if data["source"] == "digits":
        _number("data.test_fraction", data["test_fraction"], 0.0, 1.0, low_open=True)
        if data["test_fraction"] + data["validation_fraction"] * (1 - data["test_fraction"]) >= 0.9:
            raise ValueError(f"Received data.test_fraction={data['test_fraction']!r} with data.validation_fraction="
                             f"{data['validation_fraction']!r}; allowed: fractions that leave at least 10 % of the "
                             f"images for training.")
    if data["source"] == "folder":
        _check_folder(data["path"])


def _validate_optim(optim: dict) -> None:
    if optim["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"Received optim.optimizer={optim['optimizer']!r}; allowed: {', '.join(OPTIMIZERS)}.")
    lr = optim["learning_rate"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"Received optim.learning_rate={lr!r}; allowed: a number > 0.")
    if optim.get("momentum") is not None:
        _number("optim.momentum", optim["momentum"], 0.0, 1.0)
    if optim.get("ema_momentum") is not None:
        _number("optim.ema_momentum", optim["ema_momentum"], 0.0, 1.0, low_open=True)
    schedule = optim.get("schedule") or {"kind": "constant"}
    kind = schedule.get("kind", "constant")
    if kind not in SCHEDULES:
        raise ValueError(f"Received optim.schedule.kind={kind!r}; allowed: {', '.join(SCHEDULES)}.")
    if kind in ("exponential", "piecewise"):
        _number("optim.schedule.factor", schedule.get("factor"), 0.0, 1.0, low_open=True, high_open=False)
    if kind == "exponential":
        every = schedule.get("every_samples") or schedule.get("every_epochs")
        if not (isinstance(every, (int, float)) and not isinstance(every, bool) and every > 0):
            raise ValueError(f"Received optim.schedule={schedule!r}; allowed: an exponential schedule needs "
                             f"every_epochs > 0 or every_samples > 0.")
    if kind == "piecewise":
        fractions = schedule.get("at_fractions")
        if (not isinstance(fractions, list) or not fractions or fractions != sorted(fractions)
                or not all(isinstance(f, (int, float)) and 0 < f < 1 for f in fractions)):
            raise ValueError(f"Received optim.schedule.at_fractions={fractions!r}; allowed: increasing fractions "
                             f"of training between 0 and 1, e.g. [0.3, 0.7].")


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


def _check_folder(path) -> None:
    """The folder layout, and every file in it an image (headers read, not decoded); names the first bad file."""
    from PIL import Image, UnidentifiedImageError

    from xablate.data.sources import IMAGE_EXTENSIONS

    root = Path(str(path)).expanduser()
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise ValueError(
                f"Received data.path={str(path)!r}; allowed: a folder holding train/<class>/ and test/<class>/ "
                f"image folders ({folder} does not exist)."
            )
        classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        files = [f for d in classes for f in sorted(d.rglob("*")) if f.is_file() and not f.name.startswith(".")]
        if not files:
            raise ValueError(f"Received data.path={str(path)!r}; allowed: a folder whose {split}/<class>/ folders "
                             f"hold images ({folder} has {len(classes)} class folder(s) and no image files).")
        for file in files:
            if file.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ValueError(f"Received data.path={str(path)!r}; allowed: only images "
                                 f"({', '.join(IMAGE_EXTENSIONS)}) under {split}/<class>/, found {file}.")
            try:
                with Image.open(file) as image:
                    image.size  # noqa: B018 - reading the header is the check
            except (UnidentifiedImageError, OSError) as error:
                raise ValueError(f"Received data.path={str(path)!r}; allowed: readable images, but {file} is not "
                                 f"one ({type(error).__name__}).") from None
