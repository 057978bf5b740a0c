"""An image folder: <path>/train/<class>/* and <path>/test/<class>/* (the seed project's layout)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xablate.data.sources.base import IMAGE_EXTENSIONS, Source, Splits, content_hash, register, stratified_holdout

if TYPE_CHECKING:  # the typed section, for annotations only
    from xablate.schema import Data


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


def load_folder(data: Data) -> Splits:
    """An image folder: <path>/train/<class>/*.jpg and <path>/test/<class>/*.jpg, any number of classes.

    test/ is the test split; `data.validation_fraction` of train/'s files (per class, drawn with
    `data.split_seed`) is held out as validation. Files are listed, not decoded, to split them, and every split
    comes in a random order (so data.limit_* and the pipeline's bounded shuffle buffer see every class)."""
    root = Path(data.path).expanduser()
    size = (data.image_size, data.image_size)
    paths, labels, class_names = index_folder(root / "train")
    test_paths, test_labels, _ = index_folder(root / "test", class_names)
    kept, held = stratified_holdout(labels, float(data.validation_fraction), int(data.split_seed))
    test_order = np.random.default_rng(0).permutation(len(test_paths))
    pick = lambda rows, p, y: _image_dataset([p[i] for i in rows], y[rows], size)  # noqa: E731
    return Splits(
        train=pick(kept, paths, labels), validation=pick(held, paths, labels),
        test=pick(test_order, test_paths, test_labels), num_classes=len(class_names), channels=3,
        train_size=len(kept), validation_size=len(held), test_size=len(test_paths), class_names=class_names,
    )


def check_folder(path) -> None:
    """The folder layout, and every file in it an image (headers read, not decoded); names the first bad file."""
    from PIL import Image, UnidentifiedImageError

    root = Path(str(path)).expanduser()
    held: dict[str, list[str]] = {}  # split: the class folders that hold files
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
        held[split] = sorted({f.relative_to(folder).parts[0] for f in files})
    if len(held["train"]) < 2:
        raise ValueError(f"Received data.path={str(path)!r}; allowed: at least two classes under train/ (it holds "
                         f"images of {len(held['train'])}: {', '.join(held['train'])}), else every prediction is right.")
    if held["train"] != held["test"]:
        only_train = sorted(set(held["train"]) - set(held["test"]))
        only_test = sorted(set(held["test"]) - set(held["train"]))
        raise ValueError(f"Received data.path={str(path)!r}; allowed: the same classes in train/ and test/ "
                         f"(only in train/: {', '.join(only_train) or 'none'}; only in test/: "
                         f"{', '.join(only_test) or 'none'}).")


def digest(data: Data) -> str:
    """Every image's path relative to the folder and its size in bytes: another folder at the same path, or a
    file added, removed or rewritten to another size, changes it."""
    root = Path(data.path).expanduser()
    files = sorted((str(f.relative_to(root)), f.stat().st_size)
                   for part in ("train", "test") if (root / part).is_dir()
                   for f in (root / part).rglob("*") if f.is_file() and not f.name.startswith("."))
    return content_hash("folder", files)


def describe(data: Data) -> tuple[str, str]:
    root = Path(data.path).expanduser().resolve()
    return f"folder:{root.name}", root.as_uri()


register(Source("folder", load=load_folder, digest=digest, describe=describe,
                check=lambda data: check_folder(data.path)))
