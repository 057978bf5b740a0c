"""What data a run saw, as MLflow dataset inputs: a name, a source and a digest that changes when the data does.

The source digest is cheap and computed before any image loads; each source declares its own (required) in
its module of xablate/data/sources/: digits hashes the file scikit-learn ships, a folder every image's relative
path and size, CIFAR the fixed release's name, TFDS the data set's name and split strings.
Each split (train / validation / test) is logged as its own dataset, whose digest adds the split settings (seed,
fractions, limits) to the source digest, with `mlflow.data.context` set to the split, so MLflow's Dataset column,
its filter and its group-by work. The source digest is also the run's `xablate.data_digest` tag, which the
skip/resume lookup compares (xablate.tracking.previous_runs): runs logged before digests existed have no tag and
keep matching on their config alone.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from xablate.data.sources import SOURCES
from xablate.schema import keys_with

if TYPE_CHECKING:  # for annotations only
    from mlflow.entities import DatasetInput

    from xablate.schema import Data


DATA_DIGEST_TAG = "xablate.data_digest"  # the run tag the source digest is recorded as
SOURCE_OWN_KEYS = ("test_fraction", "train_split", "validation_split", "test_split")
SPLIT_KEYS = keys_with("split", "data.")  # the data keys that decide which images a split holds (xablate.schema)
LIMITS = {"train": "limit_train", "validation": "limit_val", "test": "limit_test"}


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_source(data: Data) -> tuple[str, str]:
    """(name, source) of the configured data: what a reader of the run needs to find the data again."""
    return SOURCES[data.source].describe(data)


def source_digest(data: Data) -> str:
    """The digest of the configured data's content (declared by its source)."""
    return SOURCES[data.source].digest(data)


def dataset_inputs(data: Data, digest: str, sizes: dict[str, int]) -> list[DatasetInput]:
    """One MLflow dataset input per split, named `<data>/<split>`, with the split's size as its profile."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    name, source = data_source(data)
    # a source's own keys are null on the other sources (the typed schema holds every key): left out when null,
    # as they were absent before it, so the same data keeps its dataset digests
    split_settings = {key: getattr(data, key) for key in SPLIT_KEYS
                      if not (key in (*SOURCE_OWN_KEYS, "subsample_seed") and getattr(data, key) is None)}
    inputs = []
    for split, size in sizes.items():
        dataset = Dataset(name=f"{name}/{split}", digest=_hash(digest, split, split_settings),
                          source_type="local" if data.source == "folder" else "code",
                          source=json.dumps({"uri": source, "split": split}),
                          schema=json.dumps({"image_size": data.image_size, "split_settings": split_settings}),
                          profile=json.dumps({"num_rows": size}))
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", split)]))
    return inputs
