"""What data a run saw, as MLflow dataset inputs: a name, a source and a digest that changes when the data does.

The source digest is cheap and computed before any image loads:
  - digits: the bytes of the file scikit-learn ships (it is the data);
  - folder: every image's path relative to the folder, and its size in bytes (another folder at the same path,
    or a file added, removed or rewritten to another size, changes it);
  - CIFAR: the published data set's name (Keras downloads one fixed release);
  - TFDS: the data set's name and split strings.
Each split (train / validation / test) is logged as its own dataset, whose digest adds the split settings (seed,
fractions, limits) to the source digest, with `mlflow.data.context` set to the split, so MLflow's Dataset column,
its filter and its group-by work. The source digest is also the run's `xablate.data_digest` tag, which the
skip/resume lookup compares (xablate.tracking.previous_runs): runs logged before digests existed have no tag and
keep matching on their config alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag

from xablate.schema import keys_with
from xablate.tracking.previous_runs import DATA_DIGEST_TAG  # noqa: F401  (the tag the digest is recorded as)
SPLIT_KEYS = keys_with("split", "data.")  # the data keys that decide which images a split holds (xablate.schema)
LIMITS = {"train": "limit_train", "validation": "limit_val", "test": "limit_test"}


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_source(data: dict) -> tuple[str, str]:
    """(name, source) of the configured data: what a reader of the run needs to find the data again."""
    source = data["source"]
    if source == "folder":
        root = Path(data["path"]).expanduser().resolve()
        return f"folder:{root.name}", root.as_uri()
    if source == "tfds":
        return f"tfds:{data['name']}", f"tfds://{data['name']}"
    if source == "digits":
        return "digits", "sklearn.datasets.load_digits"
    return source, f"keras.datasets.{source}"


def source_digest(data: dict) -> str:
    """The digest of the configured data's content (see the module docstring for what each source hashes)."""
    source = data["source"]
    if source == "digits":
        import sklearn.datasets

        shipped = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
        return hashlib.sha256(shipped.read_bytes()).hexdigest()[:16]
    if source == "folder":
        root = Path(data["path"]).expanduser()
        files = sorted((str(f.relative_to(root)), f.stat().st_size)
                       for part in ("train", "test") if (root / part).is_dir()
                       for f in (root / part).rglob("*") if f.is_file() and not f.name.startswith("."))
        return _hash("folder", files)
    if source == "tfds":
        return _hash("tfds", data["name"], data.get("train_split"), data.get("validation_split"), data.get("test_split"))
    return _hash("keras.datasets", source)


def dataset_inputs(data: dict, digest: str, sizes: dict[str, int]) -> list[DatasetInput]:
    """One MLflow dataset input per split, named `<data>/<split>`, with the split's size as its profile."""
    name, source = data_source(data)
    split_settings = {key: data.get(key) for key in SPLIT_KEYS if key in data}
    inputs = []
    for split, size in sizes.items():
        dataset = Dataset(name=f"{name}/{split}", digest=_hash(digest, split, split_settings),
                          source_type="local" if data["source"] == "folder" else "code",
                          source=json.dumps({"uri": source, "split": split}),
                          schema=json.dumps({"image_size": data.get("image_size"), "split_settings": split_settings}),
                          profile=json.dumps({"num_rows": size}))
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", split)]))
    return inputs
