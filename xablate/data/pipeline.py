"""The input pipeline: tf.data (resize once and cache, shuffle, batch, augment training batches, prefetch), or
in memory without TensorFlow for array sources (xablate.data.memory)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xablate.data.sources import SOURCES, Splits

if TYPE_CHECKING:  # the typed section, for annotations only
    from xablate.schema import Augment, Data


@dataclass
class ImageData:
    """Batched train / validation / test datasets and what the model needs to know about them."""

    train: Any
    validation: Any
    test: Any
    num_classes: int
    image_shape: tuple[int, int, int]
    train_size: int
    validation_size: int
    test_size: int
    batch_size: int
    class_names: list[str] | None = None
    # a fresh iterable of training batches in a fixed order (augmented like training), for recomputing
    # batch-norm statistics before an evaluation; drawing from it never moves the training stream's order
    statistics_batches: Any = None

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_size / self.batch_size)


def augmentation_layers(aug: Augment, seed: int) -> list:
    """The seed project's augmentation as Keras preprocessing layers (train batches only).

    rotation 20 degrees, shift 0.1, shear, zoom 0.1, horizontal flip, brightness, every fill `nearest` as
    ImageDataGenerator's. The seed's own settings (conf/data/folder.yaml, CIFAR) are faithful to it:
    `shear_degrees: 10` is ImageDataGenerator's shear_range, an angle (Keras' RandomShear takes the factor,
    tan(10°) ≈ 0.18, along x only as the seed's); `brightness_mode: multiplicative` multiplies pixel values by a
    factor drawn from `brightness` as ImageDataGenerator does. With `brightness_mode: additive` (the neutral
    default of the other sources) Keras' RandomBrightness shifts values by up to (factor - 1) of the range.
    """
    import math

    import keras

    layers = []
    if aug.rotation_degrees:
        layers.append(keras.layers.RandomRotation(aug.rotation_degrees / 360.0, fill_mode="nearest", seed=seed))
    if aug.shift:
        layers.append(keras.layers.RandomTranslation(aug.shift, aug.shift, fill_mode="nearest", seed=seed + 1))
    if aug.shear_degrees:
        factor = math.tan(math.radians(float(aug.shear_degrees)))
        layers.append(keras.layers.RandomShear(x_factor=factor, y_factor=0.0, fill_mode="nearest", seed=seed + 2))
    elif aug.shear:
        layers.append(keras.layers.RandomShear(x_factor=aug.shear, y_factor=aug.shear, fill_mode="nearest",
                                               seed=seed + 2))
    if aug.zoom:
        layers.append(keras.layers.RandomZoom(aug.zoom, fill_mode="nearest", seed=seed + 3))
    if aug.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 4))
    if aug.brightness:
        low, high = aug.brightness
        if aug.brightness_mode == "multiplicative":
            from xablate.data.brightness import MultiplicativeBrightness

            layers.append(MultiplicativeBrightness(low, high, seed=seed + 5))
        else:
            layers.append(keras.layers.RandomBrightness((low - 1.0, high - 1.0), value_range=(0.0, 1.0),
                                                        seed=seed + 5))
    return layers


CACHE_MODES = ("auto", "memory", "none")
PIPELINES = ("auto", "tf_data", "memory")


def array_sources() -> tuple[str, ...]:
    """The registered sources that load into numpy arrays (the in-memory pipeline reads only those)."""
    return tuple(name for name, source in SOURCES.items() if source.arrays)


def tensorflow_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def choose_pipeline(data: Data) -> str:
    """tf_data or memory, from `data.pipeline`. auto: tf_data on the TensorFlow backend; on other backends the
    in-memory path for array sources (no TensorFlow needed) and tf_data for folders and TFDS."""
    setting = data.pipeline
    if setting == "auto":
        import keras

        if keras.backend.backend() == "tensorflow" or not SOURCES[data.source].arrays:
            return "tf_data" if tensorflow_available() else "memory"
        return "memory"
    return setting
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


def subsampled(splits: Splits, seed: int) -> Splits:
    """The training split reordered so that its first N images (data.limit_train) are a subsample drawn with `seed`, class by
    class in turn (stratified to within one image per class), whatever the split's own order: the subsample's
    own source of variance, apart from which images the split holds (data.split_seed)."""
    import dataclasses

    if not isinstance(splits.train, tuple):
        raise ValueError("Received data.subsample_seed with a source whose training split is streamed; allowed: "
                         "null, or a source that loads its images as arrays (digits, cifar10, fashion_mnist).")
    x, y = splits.train
    order = np.random.default_rng(seed).permutation(len(y))
    rank = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):  # each class's draws numbered 0, 1, 2, ...: interleaved by that number
        mine = order[y[order] == label]
        rank[mine] = np.arange(len(mine))
    chosen = order[np.argsort(rank[order], kind="stable")]
    return dataclasses.replace(splits, train=(x[chosen], y[chosen]))


def load_data(data: Data, *, batch_size: int, seed: int, value_range: tuple[float, float] = (0.0, 1.0)) -> ImageData:
    """Train / validation / test pipelines for the configured source (see conf/data/).

    Sources give values in [0, 1] and augmentation works there; every split is scaled to `value_range` last
    (pretrained weights expect the scaling they were trained with: Xception's ImageNet weights [-1, 1])."""
    splits: Splits = SOURCES[data.source].load(data)
    if data.subsample_seed is not None and data.limit_train:
        splits = subsampled(splits, int(data.subsample_seed))
    if choose_pipeline(data) == "memory":
        return _in_memory(data, splits, batch_size=batch_size, seed=seed, value_range=value_range)
    import tensorflow as tf

    size = int(data.image_size)
    train_size = min(splits.train_size, data.limit_train or splits.train_size)
    validation_size = min(splits.validation_size, data.limit_val or splits.validation_size)
    test_size = min(splits.test_size, data.limit_test or splits.test_size)
    autotune = tf.data.AUTOTUNE

    def prepare(ds, count):
        resize = lambda x, y: (tf.image.resize(tf.cast(x, tf.float32), (size, size)), y)  # noqa: E731
        ds = ds.map(resize, num_parallel_calls=autotune)
        return ds.cache() if should_cache(data.cache, count, size, splits.channels) else ds

    train = prepare(_dataset(splits.train, data.limit_train), train_size)
    train = train.shuffle(min(train_size, 10_000), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    augment = data.augment
    if augment.enabled:
        pipeline = _augmenter(augment, seed)
        # sequential: the layers' seeded generators then draw in the same order on every run
        train = train.map(lambda x, y: (pipeline(x, training=True), y))
    statistics = _dataset(splits.train, data.limit_train).map(
        lambda x, y: (tf.image.resize(tf.cast(x, tf.float32), (size, size)), y), num_parallel_calls=autotune)
    statistics = statistics.shuffle(min(train_size, 10_000), seed=seed + 1, reshuffle_each_iteration=False)
    statistics = statistics.batch(batch_size)
    if augment.enabled:
        other = _augmenter(augment, seed + 1000)  # its own generators: the training draws stay as they were
        statistics = statistics.map(lambda x, y: (other(x, training=True), y))
    validation = prepare(_dataset(splits.validation, data.limit_val), validation_size).batch(batch_size)
    test = prepare(_dataset(splits.test, data.limit_test), test_size).batch(batch_size)
    low, high = value_range
    if (low, high) != (0.0, 1.0):
        scale = lambda x, y: (x * (high - low) + low, y)  # noqa: E731
        train, statistics, validation, test = (ds.map(scale) for ds in (train, statistics, validation, test))
    return ImageData(
        train=train.prefetch(autotune),
        validation=validation.prefetch(autotune),
        test=test.prefetch(autotune),
        num_classes=splits.num_classes,
        image_shape=(size, size, splits.channels),
        train_size=train_size,
        validation_size=validation_size,
        test_size=test_size,
        batch_size=batch_size,
        class_names=splits.class_names,
        statistics_batches=lambda: iter(statistics),
    )


def _in_memory(data: Data, splits: Splits, *, batch_size: int, seed: int, value_range=(0.0, 1.0)) -> ImageData:
    from xablate.data.memory import array_batches, resize_images

    size = int(data.image_size)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits.train, splits.validation, splits.test
    x_train, y_train = x_train[:data.limit_train or None], y_train[:data.limit_train or None]
    x_val, y_val = x_val[:data.limit_val or None], y_val[:data.limit_val or None]
    x_test, y_test = x_test[:data.limit_test or None], y_test[:data.limit_test or None]
    augment = data.augment
    pipeline = _augmenter(augment, seed) if augment.enabled else None
    x_train = resize_images(x_train, size)
    statistics = array_batches(x_train, y_train, batch_size, seed=seed + 1, value_range=value_range,
                               augment=_augmenter(augment, seed + 1000) if augment.enabled else None)
    return ImageData(
        train=array_batches(x_train, y_train, batch_size, seed=seed, augment=pipeline, value_range=value_range),
        validation=array_batches(resize_images(x_val, size), y_val, batch_size, value_range=value_range),
        test=array_batches(resize_images(x_test, size), y_test, batch_size, value_range=value_range),
        num_classes=splits.num_classes,
        image_shape=(size, size, splits.channels),
        train_size=len(x_train),
        validation_size=len(x_val),
        test_size=len(x_test),
        batch_size=batch_size,
        class_names=splits.class_names,
        statistics_batches=lambda: (statistics[i] for i in range(len(statistics))),
    )


def _augmenter(augment: Augment, seed: int):
    import keras

    return keras.Sequential(augmentation_layers(augment, seed), name="augmentation")
