"""CIFAR-10/100 from Keras' cache (downloaded through keras.datasets where there is a network)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xablate.data.sources.base import Source, Splits, array_splits, content_hash, register

if TYPE_CHECKING:  # the typed section, for annotations only
    from xablate.schema import Data


CIFAR = {
    # source: (Keras cache folder, extracted folder, train files, test file, label key, classes, loader)
    "cifar10": ("cifar-10-batches-py-target", "cifar-10-batches-py",
                [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "labels", 10, "cifar10"),
    "cifar100": ("cifar-100-python-target", "cifar-100-python", ["train"], "test", "fine_labels", 100, "cifar100"),
}


def cifar_cache_dir(data: Data) -> Path:
    """Keras' dataset cache: `data.cache_dir`, else $KERAS_HOME or ~/.keras, then datasets/."""
    base = data.cache_dir or os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras")
    return Path(base).expanduser() / "datasets"


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, list[int]]:
    """One pickled CIFAR batch file: (uint8 images (n, 3, 32, 32) as colour planes, labels). The format of the
    python version of CIFAR-10/100: a dict with b"data" (n, 3072) and the labels under `label_key`."""
    import pickle

    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, list(batch[label_key.encode()])


def load_cifar(data: Data) -> Splits:
    """CIFAR-10/100 from Keras' cache, downloading through keras.datasets when the cache is empty.

    The batch files are read from the folder keras.datasets extracts them to, in the format keras.datasets
    itself reads (`read_cifar_batch`).
    """
    folder, inner, train_files, test_file, label_key, classes, module = CIFAR[data.source]
    root = cifar_cache_dir(data) / folder / inner
    if not all((root / f).exists() for f in [*train_files, test_file]):
        if data.cache_dir:
            raise FileNotFoundError(
                f"data.cache_dir={data.cache_dir!r} has no extracted {data.source} at {root}; "
                f"leave data.cache_dir unset to download through keras.datasets."
            )
        import keras

        getattr(keras.datasets, module).load_data()  # downloads and extracts into ~/.keras/datasets
    parts = [read_cifar_batch(root / f, label_key) for f in train_files]
    x_train = np.concatenate([p[0] for p in parts]).transpose(0, 2, 3, 1) / 255.0
    y_train = np.concatenate([np.asarray(p[1]) for p in parts])
    x_test, y_test = read_cifar_batch(root / test_file, label_key)
    return array_splits(x_train, y_train, x_test.transpose(0, 2, 3, 1) / 255.0, np.asarray(y_test), classes, data)


def digest(data: Data) -> str:
    """The published data set's name: Keras downloads one fixed release (checked against its own hash)."""
    return content_hash("keras.datasets", data.source)


for _name in CIFAR:
    register(Source(_name, load=load_cifar, digest=digest,
                    describe=lambda data: (data.source, f"keras.datasets.{data.source}"), arrays=True))
