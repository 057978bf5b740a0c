"""The tf.data input pipeline: resize once and cache, shuffle, batch, augment (training only), prefetch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from xablate.data.sources import SOURCES, Splits


@dataclass
class ImageData:
    """Batched train/validation datasets and what the model needs to know about them."""

    train: Any
    validation: Any
    num_classes: int
    image_shape: tuple[int, int, int]
    train_size: int
    validation_size: int
    batch_size: int
    class_names: list[str] | None = None

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_size / self.batch_size)


def augmentation_layers(aug: dict, seed: int) -> list:
    """The seed project's augmentation as Keras preprocessing layers (train batches only).

    rotation 20 degrees, shift 0.1, shear, zoom 0.1, horizontal flip, brightness. Keras' RandomBrightness is
    additive on the value range: brightness [0.7, 1.3] becomes a shift of up to +-0.3 of [0, 1].
    """
    import keras

    layers = []
    if aug.get("rotation_degrees"):
        layers.append(keras.layers.RandomRotation(aug["rotation_degrees"] / 360.0, fill_mode="nearest", seed=seed))
    if aug.get("shift"):
        layers.append(keras.layers.RandomTranslation(aug["shift"], aug["shift"], fill_mode="nearest", seed=seed + 1))
    if aug.get("shear"):
        layers.append(keras.layers.RandomShear(x_factor=aug["shear"], y_factor=aug["shear"], fill_mode="nearest",
                                               seed=seed + 2))
    if aug.get("zoom"):
        layers.append(keras.layers.RandomZoom(aug["zoom"], fill_mode="nearest", seed=seed + 3))
    if aug.get("horizontal_flip"):
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 4))
    if aug.get("brightness"):
        low, high = aug["brightness"]
        layers.append(keras.layers.RandomBrightness((low - 1.0, high - 1.0), value_range=(0.0, 1.0), seed=seed + 5))
    return layers


CACHE_MODES = ("auto", "memory", "none")
AUTO_CACHE_BYTES = 2 * 1024**3  # resized float32 images kept in memory up to this size


def should_cache(mode: str, count: int, size: int, channels: int) -> bool:
    """auto: cache the resized images in memory when they fit in AUTO_CACHE_BYTES (CIFAR, digits, small
    folders), stream them otherwise (an ImageNet-sized folder at 299x299 would need terabytes)."""
    if mode == "auto":
        return count * size * size * channels * 4 <= AUTO_CACHE_BYTES
    return mode == "memory"


def _dataset(split, limit):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(split) if isinstance(split, tuple) else split
    return ds.take(limit) if limit else ds


def load_data(cfg: dict, *, batch_size: int, seed: int) -> ImageData:
    """Train/validation tf.data pipelines for the configured source (see conf/data/)."""
    import tensorflow as tf

    splits: Splits = SOURCES[cfg["source"]](cfg)
    size = int(cfg["image_size"])
    train_size = min(splits.train_size, cfg["limit_train"] or splits.train_size)
    validation_size = min(splits.validation_size, cfg["limit_val"] or splits.validation_size)
    autotune = tf.data.AUTOTUNE

    def prepare(ds, count):
        resize = lambda x, y: (tf.image.resize(tf.cast(x, tf.float32), (size, size)), y)  # noqa: E731
        ds = ds.map(resize, num_parallel_calls=autotune)
        return ds.cache() if should_cache(cfg.get("cache", "auto"), count, size, splits.channels) else ds

    train = prepare(_dataset(splits.train, cfg["limit_train"]), train_size)
    train = train.shuffle(min(train_size, 10_000), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    augment = cfg.get("augment") or {}
    if augment.get("enabled"):
        pipeline = _augmenter(augment, seed)
        # sequential: the layers' seeded generators then draw in the same order on every run
        train = train.map(lambda x, y: (pipeline(x, training=True), y))
    validation = prepare(_dataset(splits.validation, cfg["limit_val"]), validation_size).batch(batch_size)
    return ImageData(
        train=train.prefetch(autotune),
        validation=validation.prefetch(autotune),
        num_classes=splits.num_classes,
        image_shape=(size, size, splits.channels),
        train_size=train_size,
        validation_size=validation_size,
        batch_size=batch_size,
        class_names=splits.class_names,
    )


def _augmenter(augment: dict, seed: int):
    import keras

    return keras.Sequential(augmentation_layers(augment, seed), name="augmentation")
