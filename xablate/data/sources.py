"""Where images come from. Each source returns train/validation splits at their native size, values in
[0, 1], integer labels, and the class count; the pipeline resizes, batches and augments."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclass
class Splits:
    """Train and validation splits: numpy arrays (in memory) or unbatched tf.data datasets."""

    train: Any
    validation: Any
    num_classes: int
    channels: int
    train_size: int
    validation_size: int
    class_names: list[str] | None = None


def _array_splits(x_train, y_train, x_val, y_val, num_classes) -> Splits:
    return Splits(
        train=(x_train.astype("float32"), y_train.astype("int32").reshape(-1)),
        validation=(x_val.astype("float32"), y_val.astype("int32").reshape(-1)),
        num_classes=num_classes,
        channels=int(x_train.shape[-1]),
        train_size=len(x_train),
        validation_size=len(x_val),
    )


def load_digits(cfg: dict) -> Splits:
    """scikit-learn's handwritten digits (1,797 8x8 grey images, 10 classes), shipped inside the package.

    The split is fixed (seed 0, `validation_fraction` held out, stratified by shuffling within classes is not
    needed at this size) so every variant of a study sees the same images.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = (digits.images / 16.0)[..., None]  # (1797, 8, 8, 1), 0..16 grey levels -> [0, 1]
    labels = digits.target
    order = np.random.default_rng(0).permutation(len(images))
    n_val = int(round(len(images) * cfg["validation_fraction"]))
    val, train = order[:n_val], order[n_val:]
    return _array_splits(images[train], labels[train], images[val], labels[val], num_classes=10)


CIFAR = {
    # source: (Keras cache folder, extracted folder, train files, test file, label key, classes, loader)
    "cifar10": ("cifar-10-batches-py-target", "cifar-10-batches-py",
                [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "labels", 10, "cifar10"),
    "cifar100": ("cifar-100-python-target", "cifar-100-python", ["train"], "test", "fine_labels", 100, "cifar100"),
}


def cifar_cache_dir(cfg: dict) -> Path:
    """Keras' dataset cache: `data.cache_dir`, else $KERAS_HOME or ~/.keras, then datasets/."""
    base = cfg.get("cache_dir") or os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras")
    return Path(base).expanduser() / "datasets"


def load_cifar(cfg: dict) -> Splits:
    """CIFAR-10/100 from Keras' cache, downloading through keras.datasets when the cache is empty.

    The batch files are read with Keras' own CIFAR reader, from the folder keras.datasets extracts them to.
    """
    from keras.src.datasets.cifar import load_batch

    folder, inner, train_files, test_file, label_key, classes, module = CIFAR[cfg["source"]]
    root = cifar_cache_dir(cfg) / folder / inner
    if not all((root / f).exists() for f in [*train_files, test_file]):
        if cfg.get("cache_dir"):
            raise FileNotFoundError(
                f"data.cache_dir={cfg['cache_dir']!r} has no extracted {cfg['source']} at {root}; "
                f"leave data.cache_dir unset to download through keras.datasets."
            )
        import keras

        getattr(keras.datasets, module).load_data()  # downloads and extracts into ~/.keras/datasets
    parts = [load_batch(str(root / f), label_key=label_key) for f in train_files]
    x_train = np.concatenate([p[0] for p in parts]).transpose(0, 2, 3, 1) / 255.0
    y_train = np.concatenate([np.asarray(p[1]) for p in parts])
    x_test, y_test = load_batch(str(root / test_file), label_key=label_key)
    return _array_splits(x_train, y_train, x_test.transpose(0, 2, 3, 1) / 255.0, np.asarray(y_test), classes)


def load_folder(cfg: dict) -> Splits:
    """An image folder: <path>/train/<class>/*.jpg and <path>/test/<class>/*.jpg, any number of classes."""
    import keras

    root = Path(cfg["path"]).expanduser()
    size = (cfg["image_size"], cfg["image_size"])

    def split(name, class_names=None):
        # Files come sorted by class; one fixed shuffle (seed 0, the same for every variant) mixes them so that
        # data.limit_* and the pipeline's bounded shuffle buffer see every class.
        return keras.utils.image_dataset_from_directory(
            root / name, labels="inferred", label_mode="int", class_names=class_names, image_size=size,
            batch_size=None, shuffle=True, seed=0, color_mode="rgb", verbose=False,
        )

    train = split("train")
    class_names = list(train.class_names)
    validation = split("test", class_names)
    scale = lambda x, y: (x / 255.0, y)  # noqa: E731
    return Splits(
        train=train.map(scale), validation=validation.map(scale), num_classes=len(class_names), channels=3,
        train_size=_cardinality(train), validation_size=_cardinality(validation), class_names=class_names,
    )


def load_tfds(cfg: dict) -> Splits:
    """A TensorFlow Datasets image classification set by name (`data.name`), e.g. cifar10, tf_flowers."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    (train, validation), info = tfds.load(
        cfg["name"], split=[cfg["train_split"], cfg["validation_split"]], as_supervised=True, with_info=True,
        data_dir=cfg.get("cache_dir"),
    )
    scale = lambda x, y: (tf.cast(x, tf.float32) / 255.0, tf.cast(y, tf.int32))  # noqa: E731
    return Splits(
        train=train.map(scale), validation=validation.map(scale),
        num_classes=info.features["label"].num_classes, channels=int(info.features["image"].shape[-1]),
        train_size=_cardinality(train), validation_size=_cardinality(validation),
        class_names=list(info.features["label"].names),
    )


def _cardinality(ds) -> int:
    """Number of examples of a tf.data dataset, counted when tf.data does not know it."""
    known = int(ds.cardinality())
    return known if known >= 0 else int(ds.reduce(0, lambda n, _: n + 1))


SOURCES: dict[str, Callable[[dict], Splits]] = {
    "digits": load_digits,
    "cifar10": load_cifar,
    "cifar100": load_cifar,
    "folder": load_folder,
    "tfds": load_tfds,
}
