"""Fashion-MNIST (Zalando): 60,000 training and 10,000 test images, 28x28 grey, 10 balanced classes, read from
the four IDX files in the dataset's own format.

Where the files are found, first that holds all four: `data.path`; the Debian package dataset-fashion-mnist
(/usr/share/datasets/fashion-mnist); Keras' cache (`data.cache_dir`, else $KERAS_HOME or ~/.keras, then
datasets/fashion-mnist); else keras.datasets.fashion_mnist downloads them there (where there is a network).
The official 10,000 test images are the test split; validation is `data.validation_fraction` of the training
images, stratified by class and drawn with `data.split_seed`. Every split comes in a class-interleaved order, so
`data.limit_train`/`limit_val`/`limit_test` (the first N) are stratified subsamples. The digest is the four
files' bytes: the same data found in another place is the same data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xablate.data.checked_files import remembered_digest
from xablate.data.sources.base import Source, Splits, content_hash, register, stratified_holdout

if TYPE_CHECKING:  # the typed section, for annotations only
    from xablate.schema import Data


FILES = {  # split: (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 dimensions / 1 dimension
SIDE, CLASSES = 28, 10
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


class FashionMnistError(ValueError):
    """A missing, truncated or corrupt Fashion-MNIST file: names the file and what was expected."""


def keras_cache(data: Data) -> Path:
    base = data.cache_dir or os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras")
    return Path(base).expanduser() / "datasets" / "fashion-mnist"


def _names() -> list[str]:
    return [name for pair in FILES.values() for name in pair]


def candidates(data: Data) -> list[tuple[str, Path]]:
    """(what it is, folder) in the order they are tried."""
    if data.path:
        return [("data.path", Path(data.path).expanduser())]
    return [("Debian's dataset-fashion-mnist", DEBIAN), ("Keras' cache", keras_cache(data))]


def locate(data: Data, download: bool = True) -> Path:
    """The folder holding the four files. With data.path only that folder counts (a missing file is named);
    otherwise the first place holding all four, else Keras downloads them into its cache."""
    places = candidates(data)
    if data.path:
        folder = places[0][1]
        missing = [n for n in _names() if not (folder / n).is_file()]
        if missing:
            raise FashionMnistError(f"Received data.path={data.path!r}, which has no {missing[0]}; allowed: a "
                                    f"folder holding the four Fashion-MNIST files {', '.join(_names())}.")
        return folder
    for _, folder in places:
        if all((folder / n).is_file() for n in _names()):
            return folder
    if not download:
        raise FashionMnistError(f"Fashion-MNIST was not found in {' or '.join(str(f) for _, f in places)}; "
                                f"allowed: data.path=<folder with {', '.join(_names())}>, the Debian package "
                                f"dataset-fashion-mnist, or a network for keras.datasets.fashion_mnist.")
    import keras

    try:
        keras.datasets.fashion_mnist.load_data()  # downloads the four files into ~/.keras/datasets/fashion-mnist
    except Exception as error:  # noqa: BLE001 - offline, a proxy, a refused download: said in one line
        raise FashionMnistError(f"Fashion-MNIST is not in {' or '.join(str(f) for _, f in places)} and "
                                f"keras.datasets.fashion_mnist could not download it ({type(error).__name__}: "
                                f"{error}); allowed: data.path=<folder with {', '.join(_names())}> or the Debian "
                                f"package dataset-fashion-mnist.") from None
    return keras_cache(data)


def _read(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, zlib.error) as error:  # not gzip, or cut short
        raise FashionMnistError(f"{path} is not a complete gzip file ({type(error).__name__}: {error}); expected "
                                f"the gzipped IDX file of Fashion-MNIST (a truncated download or copy?).") from None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """One IDX file: images (n, 28, 28) uint8 for magic 2051, labels (n,) uint8 for 2049; its header checked
    against its length."""
    raw = _read(path)
    dims = 3 if magic == IMAGES_MAGIC else 1
    header = 4 + 4 * dims
    if len(raw) < header:
        raise FashionMnistError(f"{path} holds {len(raw)} bytes, fewer than its {header}-byte IDX header.")
    found, *shape = struct.unpack(f">{1 + dims}I", raw[:header])
    if found != magic:
        raise FashionMnistError(f"{path} starts with magic number {found}; expected {magic} (an IDX "
                                f"{'image' if magic == IMAGES_MAGIC else 'label'} file of unsigned bytes).")
    if dims == 3 and tuple(shape[1:]) != (SIDE, SIDE):
        raise FashionMnistError(f"{path} holds {shape[1]}x{shape[2]} images; expected {SIDE}x{SIDE}.")
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise FashionMnistError(f"{path} holds {len(raw) - header:,} bytes of data after its header, which declares "
                                f"{shape[0]:,} {'images' if dims == 3 else 'labels'} ({expected - header:,} bytes).")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _checked(folder_: Path) -> str:
    """Reads and checks the four files of `folder_`; their bytes' digest."""
    for split, (images, labels) in FILES.items():
        x = read_idx(folder_ / images, IMAGES_MAGIC)
        y = read_idx(folder_ / labels, LABELS_MAGIC)
        if len(x) != len(y):
            raise FashionMnistError(f"{folder_ / labels} holds {len(y):,} labels for the {len(x):,} images of "
                                    f"{folder_ / images}; expected one label per image.")
        if len(y) and int(y.max()) >= CLASSES:
            raise FashionMnistError(f"{folder_ / labels} holds label {int(y.max())}; expected 0..{CLASSES - 1}.")
    return content_hash("fashion_mnist", [hashlib.sha256((folder_ / n).read_bytes()).hexdigest() for n in _names()])


def checked_folder(data: Data) -> tuple[Path, str]:
    """(the folder, the digest of its four files' bytes), after reading and checking every file (once per the
    files' stamps: xablate.data.checked_files)."""
    folder = locate(data)
    return folder, remembered_digest("fashion_mnist", [folder / n for n in _names()], lambda: _checked(folder))


def interleaved(labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`rows` reordered class by class in turn (each class keeping its order), so any first N is stratified to
    within one image per class."""
    by_class = [rows[labels[rows] == c] for c in np.unique(labels[rows])]
    rank = np.concatenate([np.arange(len(r)) for r in by_class])
    order = np.argsort(rank, kind="stable")
    return np.concatenate(by_class)[order]


def load(data: Data) -> Splits:
    folder, _ = checked_folder(data)
    x_train = read_idx(folder / FILES["train"][0], IMAGES_MAGIC)
    y_train = read_idx(folder / FILES["train"][1], LABELS_MAGIC).astype("int32")
    x_test = read_idx(folder / FILES["test"][0], IMAGES_MAGIC)
    y_test = read_idx(folder / FILES["test"][1], LABELS_MAGIC).astype("int32")
    kept, held = stratified_holdout(y_train, float(data.validation_fraction), int(data.split_seed))
    kept, held = interleaved(y_train, kept), interleaved(y_train, held)
    test = interleaved(y_test, np.random.default_rng(0).permutation(len(y_test)))
    as_arrays = lambda x, y: ((x[..., None] / 255.0).astype("float32"), y)  # noqa: E731
    return Splits(train=as_arrays(x_train[kept], y_train[kept]), validation=as_arrays(x_train[held], y_train[held]),
                  test=as_arrays(x_test[test], y_test[test]), num_classes=CLASSES, channels=1,
                  train_size=len(kept), validation_size=len(held), test_size=len(test), class_names=CLASS_NAMES)


def digest(data: Data) -> str:
    return checked_folder(data)[1]


def check(data: Data) -> None:
    checked_folder(data)  # missing, truncated or corrupt files: refused before any run exists


def describe(data: Data) -> tuple[str, str]:
    return "fashion_mnist", (data.path if data.path else
                             "Fashion-MNIST IDX files (Debian dataset-fashion-mnist or keras.datasets.fashion_mnist)")


register(Source("fashion_mnist", load=load, digest=digest, describe=describe, check=check, arrays=True))
