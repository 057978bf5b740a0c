"""Where images come from. Each source returns train / validation / test splits at their native size, values
in [0, 1], integer labels, and the class count; the pipeline resizes, batches and augments.

The evaluation protocol: validation is for choices (best epoch, tuning), test is for reporting. Where a source
has no validation split of its own, `data.validation_fraction` of its training split is held out, stratified by
class and drawn with `data.split_seed`, so a study can give each replicate a fresh split (`data.split_seed=${seed}`).

One module per source registers it (xablate.data.sources.base.Source); importing this package registers them all.
"""

# each registers itself, in the order errors and `python run.py --help` list them
from xablate.data.sources import digits  # noqa: F401,I001
from xablate.data.sources import cifar  # noqa: F401
from xablate.data.sources import fashion_mnist  # noqa: F401
from xablate.data.sources import folder  # noqa: F401
from xablate.data.sources import tfds  # noqa: F401
from xablate.data.sources.base import IMAGE_EXTENSIONS, SOURCES, Source, Splits, register, stratified_holdout
from xablate.data.sources.cifar import cifar_cache_dir, read_cifar_batch
from xablate.data.sources.folder import check_folder, index_folder

__all__ = ["IMAGE_EXTENSIONS", "SOURCES", "Source", "Splits", "check_folder", "cifar_cache_dir", "index_folder",
           "read_cifar_batch", "register", "stratified_holdout"]
