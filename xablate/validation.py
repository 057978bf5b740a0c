"""Validation of a job's whole config before any data loads or any MLflow run starts.

Every message names the setting, the value received and what is allowed.
"""

from __future__ import annotations

from pathlib import Path

from xablate.data.sources import SOURCES
from xablate.models import PRESETS, check_build_kwargs
from xablate.training.recipes import OPTIMIZERS, SCHEDULES


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Received {name}={value!r}; allowed: an integer >= 1.")


def validate_job_config(cfg: dict) -> None:
    """Raises ValueError for the first bad setting in a composed job config."""
    if not isinstance(cfg.get("residual"), bool):
        raise ValueError(f"Received residual={cfg.get('residual')!r}; allowed: true, false.")
    if isinstance(cfg.get("seed"), bool) or not isinstance(cfg.get("seed"), int):
        raise ValueError(f"Received seed={cfg.get('seed')!r}; allowed: an integer.")
    if not str(cfg.get("study") or "").strip():
        raise ValueError(f"Received study={cfg.get('study')!r}; allowed: a non-empty name.")

    train = cfg["train"]
    _positive_int("train.epochs", train["epochs"])
    _positive_int("train.batch_size", train["batch_size"])

    data = cfg["data"]
    if data["source"] not in SOURCES:
        raise ValueError(f"Received data.source={data['source']!r}; allowed: {', '.join(SOURCES)}.")
    _positive_int("data.image_size", data["image_size"])
    for key in ("limit_train", "limit_val"):
        if data.get(key) is not None:
            _positive_int(f"data.{key}", data[key])
    if data["source"] == "folder":
        _check_folder(data["path"])

    optim = cfg["optim"]
    if optim["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"Received optim.optimizer={optim['optimizer']!r}; allowed: {', '.join(OPTIMIZERS)}.")
    if not (isinstance(optim["learning_rate"], (int, float)) and optim["learning_rate"] > 0):
        raise ValueError(f"Received optim.learning_rate={optim['learning_rate']!r}; allowed: a number > 0.")
    kind = (optim.get("schedule") or {}).get("kind", "constant")
    if kind not in SCHEDULES:
        raise ValueError(f"Received optim.schedule.kind={kind!r}; allowed: {', '.join(SCHEDULES)}.")

    model = dict(cfg["model"])
    preset = model.pop("preset")
    if preset not in PRESETS:
        raise ValueError(f"Received model.preset={preset!r}; allowed: {', '.join(PRESETS)}.")
    model.pop("input_shape", None)  # the data decides these
    model.pop("classes", None)
    check_build_kwargs(**{
        **PRESETS[preset], **model,
        "residual": cfg["residual"], "intermediate_act": cfg["intermediate_act"], "segments": cfg["segments"],
        "input_shape": (data["image_size"], data["image_size"], 3),
    })


def _check_folder(path) -> None:
    root = Path(str(path)).expanduser()
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise ValueError(
                f"Received data.path={str(path)!r}; allowed: a folder holding train/<class>/ and test/<class>/ "
                f"image folders ({folder} does not exist)."
            )
