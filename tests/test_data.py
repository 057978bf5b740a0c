"""Every data source through its real loading code, on real-format files the tests write, and the pipeline."""

import pickle

import numpy as np
import pytest
from PIL import Image

from xablate.data import load_data
from xablate.schema import Data, typed

BASE = {"image_size": 16, "limit_train": None, "limit_val": None, "limit_test": None, "cache_dir": None,
        "validation_fraction": 0.1, "split_seed": 0, "augment": {"enabled": False}}


def cfg(**overrides) -> Data:
    return typed(Data, {**BASE, **overrides})


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def labels_of(ds):
    return np.concatenate([y for _, y in batches(ds)])


def test_embedded_digits_three_stratified_splits():
    data = load_data(cfg(source="digits", test_fraction=0.2, image_size=32), batch_size=100, seed=0)
    assert (data.train_size, data.validation_size, data.test_size, data.num_classes) == (1295, 143, 359, 10)
    assert data.image_shape == (32, 32, 1)
    assert data.steps_per_epoch == 13
    x, y = next(iter(data.train))
    assert x.shape == (100, 32, 32, 1) and y.dtype.name == "int32"
    assert 0.0 <= float(x.numpy().min()) and float(x.numpy().max()) <= 1.0
    from sklearn.datasets import load_digits

    per_class = np.bincount(load_digits().target)
    test, val = np.bincount(labels_of(data.test)), np.bincount(labels_of(data.validation))
    np.testing.assert_array_equal(test, [round(n * 0.2) for n in per_class])  # stratified: 20 % of every class
    np.testing.assert_array_equal(val, [round((n - t) * 0.1) for n, t in zip(per_class, test)])


def test_digits_splits_are_disjoint_and_follow_the_split_seed():
    def images(data, split):
        return {x.tobytes() for xs, _ in batches(getattr(data, split)) for x in xs}

    one = load_data(cfg(source="digits", test_fraction=0.2, image_size=8), batch_size=512, seed=0)
    again = load_data(cfg(source="digits", test_fraction=0.2, image_size=8), batch_size=512, seed=5)
    other = load_data(cfg(source="digits", test_fraction=0.2, image_size=8, split_seed=1), batch_size=512, seed=0)
    train, val, test = (images(one, s) for s in ("train", "validation", "test"))
    assert not (train & test) and not (train & val) and not (val & test)
    assert images(again, "test") == test  # the training seed does not move the split ...
    assert images(other, "test") != test  # ... the split seed does


def write_cifar(root, files, label_key, n, classes, seed=0):
    """Pickled batches in CIFAR's on-disk format: {b'data': uint8 (n, 3072) planes R,G,B; label list}."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in files:
        labels = [int(v) for v in rng.integers(0, classes, n)]
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key.encode(): labels}
        with open(root / name, "wb") as f:
            pickle.dump(batch, f, protocol=4)


@pytest.mark.parametrize("source, folder, files, test_file, key, classes", [
    ("cifar10", "cifar-10-batches-py-target/cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
     "test_batch", "labels", 10),
    ("cifar100", "cifar-100-python-target/cifar-100-python", ["train"], "test", "fine_labels", 100),
])
def test_cifar_from_keras_cache_layout(tmp_path, source, folder, files, test_file, key, classes):
    write_cifar(tmp_path / "datasets" / folder, [*files, test_file], key, n=6, classes=classes)
    data = load_data(cfg(source=source, cache_dir=str(tmp_path), image_size=32), batch_size=8, seed=0)
    # validation is held out of the training batches (stratified), the test file is the test split
    assert data.train_size + data.validation_size == 6 * len(files) and data.validation_size >= 1
    assert data.test_size == 6
    assert data.num_classes == classes and data.image_shape == (32, 32, 3)
    # the first test image is the test file's first row, planes -> HWC, /255
    with open(tmp_path / "datasets" / folder / test_file, "rb") as f:
        raw = pickle.load(f)[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0) / 255.0
    x, _ = next(iter(data.test))
    np.testing.assert_allclose(x.numpy()[0], raw, atol=1e-6)


def test_cifar_missing_from_a_given_cache_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data.cache_dir=.* has no extracted cifar10"):
        load_data(cfg(source="cifar10", cache_dir=str(tmp_path)), batch_size=8, seed=0)


def write_folder(root, classes=("cat", "dog", "emu"), per_class=(4, 2)):
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_class):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)
                ext = "png" if i % 2 else "jpg"
                Image.fromarray(pixels).save(root / split / name / f"{i}.{ext}")


def test_image_folder_in_the_seed_layout(tmp_path):
    write_folder(tmp_path / "data")
    data = load_data(cfg(source="folder", path=str(tmp_path / "data"), image_size=16, validation_fraction=0.25),
                     batch_size=5, seed=0)
    # train/ (4 per class) gives 3 training + 1 validation image per class; test/ (2 per class) is the test split
    assert (data.train_size, data.validation_size, data.test_size, data.num_classes) == (9, 3, 6, 3)
    assert data.class_names == ["cat", "dog", "emu"]
    assert data.image_shape == (16, 16, 3)
    assert sorted(labels_of(data.validation).tolist()) == [0, 1, 2]
    assert sorted(labels_of(data.train).tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sorted(labels_of(data.test).tolist()) == [0, 0, 1, 1, 2, 2]
    x, _ = next(iter(data.train))
    assert x.shape == (5, 16, 16, 3) and float(x.numpy().max()) <= 1.0


def test_tfds_by_name_with_tfds_mock_data():
    import tensorflow_datasets as tfds  # part of the [dev] extra: a broken install must fail here, not skip

    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        data = load_data(cfg(source="tfds", name="mnist", train_split="train[:75%]", validation_split="train[75%:]",
                             test_split="test"), batch_size=4, seed=0)
        # mock_data serves num_examples for any split spec: each of the three splits is read
        assert (data.train_size, data.validation_size, data.test_size, data.num_classes) == (12, 12, 12, 10)
        assert data.image_shape == (16, 16, 1)
        assert sum(x.shape[0] for x, _ in batches(data.test)) == 12


def test_limits_take_the_first_images():
    data = load_data(cfg(source="digits", test_fraction=0.2, limit_train=50, limit_val=20, limit_test=30),
                     batch_size=16, seed=0)
    assert (data.train_size, data.validation_size, data.test_size) == (50, 20, 30)
    assert sum(len(y) for _, y in batches(data.test)) == 30
    assert sum(len(y) for _, y in batches(data.train)) == 50
    assert sum(len(y) for _, y in batches(data.validation)) == 20


AUGMENT = {"enabled": True, "rotation_degrees": 20, "shift": 0.1, "shear": 0.1, "zoom": 0.1,
           "horizontal_flip": True, "brightness": [0.7, 1.3]}


def test_augmentation_changes_training_batches_and_never_validation_batches():
    common = dict(source="digits", test_fraction=0.2, limit_train=64, limit_val=32)
    plain = load_data(cfg(**common), batch_size=64, seed=3)
    augmented = load_data(cfg(**common, augment=AUGMENT), batch_size=64, seed=3)

    (x_plain, y_plain), = batches(plain.train)
    (x_aug, y_aug), = batches(augmented.train)
    np.testing.assert_array_equal(y_plain, y_aug)  # same shuffle, same images ...
    assert np.abs(x_plain - x_aug).mean() > 0.01  # ... transformed
    (x_aug2, _), = batches(augmented.train)
    assert np.abs(x_aug - x_aug2).mean() > 0.01  # fresh transforms every epoch

    val_plain = batches(plain.validation)
    for val in (batches(augmented.validation), batches(augmented.validation)):
        for (a, la), (b, lb) in zip(val, val_plain):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(la, lb)
