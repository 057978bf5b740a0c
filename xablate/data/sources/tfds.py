"""A TensorFlow Datasets image classification set by name (`data.name`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from xablate.data.sources.base import Source, Splits, content_hash, register

if TYPE_CHECKING:  # the typed section, for annotations only
    from xablate.schema import Data


def load_tfds(data: Data) -> Splits:
    """A TensorFlow Datasets image classification set by name (`data.name`), e.g. cifar10, tf_flowers."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    (train, validation, test), info = tfds.load(
        data.name, split=[data.train_split, data.validation_split, data.test_split], as_supervised=True,
        with_info=True, data_dir=data.cache_dir,
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


def digest(data: Data) -> str:
    """The data set's name and split strings (TFDS versions its data sets)."""
    return content_hash("tfds", data.name, data.train_split, data.validation_split,
                        data.test_split)


register(Source("tfds", load=load_tfds, digest=digest,
                describe=lambda data: (f"tfds:{data.name}", f"tfds://{data.name}"),
                holds_out_validation=False))
