"""The Fashion-MNIST source on small IDX files the tests write in the dataset's real format (gzipped, big-endian
headers, magic numbers 2051/2049): splits, stratified limits, the digest of the files' bytes, and every kind of
broken file refused before anything loads, naming the file and what was expected; then `python run.py
data=fashion_mnist` end to end, from a written folder and from Debian's package."""

import gzip
import shutil
import struct

import numpy as np
import pytest

from helpers import run_py, sqlite_uri
from xablate.data.sources import SOURCES
from xablate.data.sources.fashion_mnist import DEBIAN, FILES, FashionMnistError, interleaved
from xablate.schema import Data, typed

PER_CLASS_TRAIN, PER_CLASS_TEST = 5, 2


def write_idx(path, array, magic, raw=None):
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(raw if raw is not None else header + array.astype(np.uint8).tobytes())


def write_set(folder, per_class_train=PER_CLASS_TRAIN, per_class_test=PER_CLASS_TEST):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        labels = np.repeat(np.arange(10), per_class)
        images = (labels[:, None, None] * 25 + rng.integers(0, 5, (len(labels), 28, 28))).astype(np.uint8)
        order = rng.permutation(len(labels))
        write_idx(folder / FILES[split][0], images[order], 2051)
        write_idx(folder / FILES[split][1], labels[order], 2049)
    return folder


def data(path, **extra) -> Data:
    return typed(Data, {"source": "fashion_mnist", "path": str(path), "cache_dir": None, "validation_fraction": 0.2,
                        "split_seed": 0, **extra})


def test_a_written_set_loads_into_stratified_splits_at_the_native_size(tmp_path):
    folder = write_set(tmp_path / "fm")
    splits = SOURCES["fashion_mnist"].load(data(folder))
    assert (splits.train_size, splits.validation_size, splits.test_size) == (40, 10, 20)
    assert (splits.num_classes, splits.channels, splits.class_names[0]) == (10, 1, "T-shirt/top")
    x, y = splits.train
    assert x.shape == (40, 28, 28, 1) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert np.bincount(splits.validation[1], minlength=10).tolist() == [1] * 10  # 20 % of 5 per class
    # class-interleaved: any first N is stratified (data.limit_* takes the first N)
    assert sorted(y[:10].tolist()) == list(range(10)) and sorted(splits.test[1][:10].tolist()) == list(range(10))
    # the pixels travel with their labels: class c was written as grey level 25c..25c+4
    assert np.all(np.floor(x[:, 0, 0, 0] * 255 / 25) == y)


def test_interleaving_keeps_each_class_in_its_order():
    labels = np.array([0, 0, 0, 1, 1, 2])
    assert interleaved(labels, np.array([2, 0, 5, 1, 4, 3])).tolist() == [2, 4, 5, 0, 3, 1]


def test_the_digest_is_the_files_bytes_wherever_they_are(tmp_path):
    folder = write_set(tmp_path / "a")
    copy = shutil.copytree(folder, tmp_path / "b")
    digest = SOURCES["fashion_mnist"].digest
    assert digest(data(folder)) == digest(data(copy))
    labels = np.repeat(np.arange(10), PER_CLASS_TEST)[::-1].copy()
    write_idx(copy / FILES["test"][1], labels, 2049)  # one file's content changed
    assert digest(data(copy)) != digest(data(folder))


def break_train_images(folder, how):
    path = folder / FILES["train"][0]
    images = np.zeros((50, 28, 28), np.uint8)
    if how == "magic":
        write_idx(path, images, 2049)
    elif how == "count":  # the header declares 50 images, 49 follow
        write_idx(path, images, 2051, raw=struct.pack(">4I", 2051, 50, 28, 28) + images[:49].tobytes())
    elif how == "short_gzip":
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
    elif how == "not_gzip":
        path.write_bytes(b"not a gzip file at all")
    elif how == "labels":  # 50 images, 40 labels
        write_idx(folder / FILES["train"][1], np.zeros(40, np.uint8), 2049)
    elif how == "size":
        write_idx(path, np.zeros((50, 27, 27), np.uint8), 2051)
    elif how == "missing":
        path.unlink()
    return path


@pytest.mark.parametrize("how, message", [
    ("magic", "starts with magic number 2049; expected 2051 (an IDX image file of unsigned bytes)"),
    ("count", "holds 38,416 bytes of data after its header, which declares 50 images (39,200 bytes)"),
    ("short_gzip", "is not a complete gzip file"),
    ("not_gzip", "is not a complete gzip file"),
    ("labels", "holds 40 labels for the 50 images of"),
    ("size", "holds 27x27 images; expected 28x28"),
    ("missing", "which has no train-images-idx3-ubyte.gz; allowed: a folder holding the four Fashion-MNIST files"),
])
def test_a_broken_file_is_refused_by_the_check_naming_it(tmp_path, how, message):
    folder = write_set(tmp_path / how)
    path = break_train_images(folder, how)
    with pytest.raises(FashionMnistError) as error:
        SOURCES["fashion_mnist"].check(data(folder))
    assert message in str(error.value)
    assert how == "missing" or str(path) in str(error.value) or str(folder / FILES["train"][1]) in str(error.value)


@pytest.mark.slow
def test_run_py_trains_on_a_written_folder_and_refuses_a_truncated_copy_before_any_run(tmp_path):
    good = write_set(tmp_path / "good", per_class_train=20, per_class_test=10)
    done = run_py("data=fashion_mnist", "debug=default", f"data.path={good}", "train.save_model=false",
                  f"tracking.uri={sqlite_uri(tmp_path)}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    bad = shutil.copytree(good, tmp_path / "bad")
    truncated = break_train_images(bad, "short_gzip")
    store = tmp_path / "second"
    store.mkdir()
    refused = run_py("data=fashion_mnist", "debug=default", f"data.path={bad}", f"tracking.uri={sqlite_uri(store)}",
                     cwd=store)
    assert refused.returncode == 2
    assert f"xablate: {truncated} is not a complete gzip file" in refused.stderr
    assert not (store / "mlflow.db").exists()  # refused before the store, let alone a run


@pytest.mark.slow
@pytest.mark.skipif(not (DEBIAN / FILES["test"][1]).exists(), reason="Debian's dataset-fashion-mnist is not "
                                                                      "installed (.ci/run installs it)")
def test_run_py_trains_from_debians_files():
    from mlflow import MlflowClient

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as scratch:
        done = run_py("data=fashion_mnist", "debug=default", "train.save_model=false",
                      f"tracking.uri={sqlite_uri(Path(scratch))}", cwd=scratch)
        assert done.returncode == 0, done.stderr[-3000:]
        [run] = MlflowClient(sqlite_uri(Path(scratch))).search_runs(["1"])
        assert run.info.status == "FINISHED" and run.data.params["data.source"] == "fashion_mnist"
        # debug limits of the full splits: 54,000 / 6,000 / 10,000 before them
        assert (run.data.params["data.train_size"], run.data.params["data.test_size"]) == ("128", "64")
