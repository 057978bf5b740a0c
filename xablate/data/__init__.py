"""Image classification data for a job: sources (embedded digits, CIFAR, an image folder, TFDS) and the
tf.data input pipeline."""

from xablate.data.pipeline import ImageData, augmentation_layers, load_data
from xablate.data.sources import SOURCES

__all__ = ["ImageData", "SOURCES", "augmentation_layers", "load_data"]
