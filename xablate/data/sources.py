"""Where images come from. Each source returns train / validation / test splits at their native size, values
in [0, 1], integer labels, and the class count; the pipeline resizes, batches and augments.

The evaluation protocol: validation is for choices (best epoch, tuning), test is for reporting. Where a source
has no validation split of its own, `data.validation_fraction` of its training split is held out, stratified by
class and drawn with `data.split_seed`, so a study can give each replicate a fresh split (`data.split_seed=${seed}`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from xablate.checks import number_in, positive_int, seed_value

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclass
class Splits:
    """Train, validation and test splits: numpy arrays (in memory) or unbatched tf.data datasets."""

    train: Any
    validation: Any
    test: Any
    num_classes: int
    channels: int
    train_size: int
    validation_size: int
    test_size: int
    class_names: list[str] | None = None


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) row indices: `fraction` of every class held out (at least one row of a class with two
    or more), both in a random order drawn from `seed`."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n = int(round(len(rows) * fraction))
        n = min(max(n, 1 if len(rows) > 1 else 0), len(rows) - 1)
        held.append(rows[:n])
        kept.append(rows[n:])
    kept, held = np.concatenate(kept).astype(int), np.concatenate(held).astype(int)
    if len(held) == 0 and len(labels) > 1 and fraction > 0:  # every class a singleton: hold out at random
        rows = rng.permutation(len(labels))
        n = max(1, int(round(len(labels) * fraction)))
        held, kept = rows[:n], rows[n:]
    return rng.permutation(kept), rng.permutation(held)


def _array_splits(x_train, y_train, x_test, y_test, num_classes, cfg: dict) -> Splits:
    """Carves the validation split out of the training arrays (stratified, `data.split_seed`)."""
    y_train, y_test = np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)
    train, val = stratified_holdout(y_train, float(cfg["validation_fraction"]), int(cfg.get("split_seed", 0)))
    as_arrays = lambda x, y: (np.asarray(x, dtype="float32"), np.asarray(y, dtype="int32"))  # noqa: E731
    return Splits(
        train=as_arrays(x_train[train], y_train[train]),
        validation=as_arrays(x_train[val], y_train[val]),
        test=as_arrays(x_test, y_test),
        num_classes=num_classes,
        channels=int(x_train.shape[-1]),
        train_size=len(train),
        validation_size=len(val),
        test_size=len(x_test),
    )


def load_digits(cfg: dict) -> Splits:
    """scikit-learn's handwritten digits (1,797 8x8 grey images, 10 classes), shipped inside the package.

    It has no split of its own: `data.test_fraction` is held out as the test split, then `validation_fraction`
    of the rest as validation, both stratified by class and drawn with `data.split_seed`.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = (digits.images / 16.0)[..., None]  # (1797, 8, 8, 1), 0..16 grey levels -> [0, 1]
    labels = digits.target
    rest, test = stratified_holdout(labels, float(cfg["test_fraction"]), int(cfg.get("split_seed", 0)) + 7919)
    return _array_splits(images[rest], labels[rest], images[test], labels[test], num_classes=10, cfg=cfg)


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


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, list[int]]:
    """One pickled CIFAR batch file: (uint8 images (n, 3, 32, 32) as colour planes, labels). The format of the
    python version of CIFAR-10/100: a dict with b"data" (n, 3072) and the labels under `label_key`."""
    import pickle

    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, list(batch[label_key.encode()])


def load_cifar(cfg: dict) -> Splits:
    """CIFAR-10/100 from Keras' cache, downloading through keras.datasets when the cache is empty.

    The batch files are read from the folder keras.datasets extracts them to, in the format keras.datasets
    itself reads (`read_cifar_batch`).
    """
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
    parts = [read_cifar_batch(root / f, label_key) for f in train_files]
    x_train = np.concatenate([p[0] for p in parts]).transpose(0, 2, 3, 1) / 255.0
    y_train = np.concatenate([np.asarray(p[1]) for p in parts])
    x_test, y_test = read_cifar_batch(root / test_file, label_key)
    return _array_splits(x_train, y_train, x_test.transpose(0, 2, 3, 1) / 255.0, np.asarray(y_test), classes, cfg)


def index_folder(folder: Path, class_names: list[str] | None = None) -> tuple[list[str], np.ndarray, list[str]]:
    """(file paths, integer labels, class names) of <folder>/<class>/**/<image>, in sorted order."""
    if class_names is None:
        class_names = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for label, name in enumerate(class_names):
        files = sorted(f for f in (folder / name).rglob("*")
                       if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."))
        paths += [str(f) for f in files]
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype="int32"), class_names


def _image_dataset(paths: list[str], labels: np.ndarray, size: tuple[int, int]):
    """Decoded RGB images (resized, float32 in [0, 1]) and labels, in the given order."""
    import tensorflow as tf

    def load(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(image, size)  # bilinear, as keras.utils.image_dataset_from_directory
        return image / 255.0, label

    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def load_folder(cfg: dict) -> Splits:
    """An image folder: <path>/train/<class>/*.jpg and <path>/test/<class>/*.jpg, any number of classes.

    test/ is the test split; `data.validation_fraction` of train/'s files (per class, drawn with
    `data.split_seed`) is held out as validation. Files are listed, not decoded, to split them, and every split
    comes in a random order (so data.limit_* and the pipeline's bounded shuffle buffer see every class)."""
    root = Path(cfg["path"]).expanduser()
    size = (cfg["image_size"], cfg["image_size"])
    paths, labels, class_names = index_folder(root / "train")
    test_paths, test_labels, _ = index_folder(root / "test", class_names)
    kept, held = stratified_holdout(labels, float(cfg["validation_fraction"]), int(cfg.get("split_seed", 0)))
    test_order = np.random.default_rng(0).permutation(len(test_paths))
    pick = lambda rows, p, y: _image_dataset([p[i] for i in rows], y[rows], size)  # noqa: E731
    return Splits(
        train=pick(kept, paths, labels), validation=pick(held, paths, labels),
        test=pick(test_order, test_paths, test_labels), num_classes=len(class_names), channels=3,
        train_size=len(kept), validation_size=len(held), test_size=len(test_paths), class_names=class_names,
    )


def load_tfds(cfg: dict) -> Splits:
    """A TensorFlow Datasets image classification set by name (`data.name`), e.g. cifar10, tf_flowers."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    (train, validation, test), info = tfds.load(
        cfg["name"], split=[cfg["train_split"], cfg["validation_split"], cfg["test_split"]], as_supervised=True,
        with_info=True, data_dir=cfg.get("cache_dir"),
    )
    scale = lambda x, y: (tf.cast(x, tf.float32) / 255.0, tf.cast(y, tf.int32))  # noqa: E731
    return Splits(
        train=train.map(scale), validation=validation.map(scale), test=test.map(scale),
        num_classes=info.features["label"].num_classes, channels=int(info.features["image"].shape[-1]),
        train_size=_cardinality(train), validation_size=_cardinality(validation), test_size=_cardinality(test),
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


def validate_data(data: dict) -> None:
    """Checks a `data` config before anything loads: the source, its splits and the pipeline."""
    from xablate.data.pipeline import ARRAY_SOURCES, CACHE_MODES, PIPELINES, choose_pipeline

    if data["source"] not in SOURCES:
        raise ValueError(f"Received data.source={data['source']!r}; allowed: {', '.join(SOURCES)}.")
    positive_int("data.image_size", data["image_size"])
    for key in ("limit_train", "limit_val", "limit_test"):
        if data.get(key) is not None:
            positive_int(f"data.{key}", data[key])
    seed_value("data.split_seed", data.get("split_seed", 0))
    if data["source"] in ("digits", "cifar10", "cifar100", "folder"):
        number_in("data.validation_fraction", data["validation_fraction"], 0.0, 1.0, low_open=True)
    pipeline = data.get("pipeline", "auto")
    if pipeline not in PIPELINES:
        raise ValueError(f"Received data.pipeline={pipeline!r}; allowed: {', '.join(PIPELINES)}.")
    if choose_pipeline(data) == "memory" and data["source"] not in ARRAY_SOURCES:
        why = "" if pipeline == "memory" else " (TensorFlow is not installed, so auto means memory)"
        raise ValueError(f"Received data.pipeline={pipeline!r} with data.source={data['source']!r}{why}; allowed: "
                         f"the in-memory pipeline reads {', '.join(ARRAY_SOURCES)}; {data['source']} needs tf_data.")
    if data.get("cache", "auto") not in CACHE_MODES:
        raise ValueError(f"Received data.cache={data['cache']!r}; allowed: {', '.join(CACHE_MODES)}.")
    augment = data.get("augment") or {}
    if augment.get("brightness_mode", "additive") not in ("additive", "multiplicative"):
        raise ValueError(f"Received data.augment.brightness_mode={augment['brightness_mode']!r}; allowed: additive, "
                         f"multiplicative.")
    if augment.get("shear_degrees") is not None:
        number_in("data.augment.shear_degrees", augment["shear_degrees"], 0.0, 90.0, high_open=True)
    if data["source"] == "digits":
        number_in("data.test_fraction", data["test_fraction"], 0.0, 1.0, low_open=True)
        if data["test_fraction"] + data["validation_fraction"] * (1 - data["test_fraction"]) >= 0.9:
            raise ValueError(f"Received data.test_fraction={data['test_fraction']!r} with data.validation_fraction="
                             f"{data['validation_fraction']!r}; allowed: fractions that leave at least 10 % of the "
                             f"images for training.")
    if data["source"] == "folder":
        check_folder(data["path"])


def check_folder(path) -> None:
    """The folder layout, and every file in it an image (headers read, not decoded); names the first bad file."""
    from PIL import Image, UnidentifiedImageError

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
