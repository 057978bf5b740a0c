"""The seed project's brightness augmentation, which Keras' preprocessing layers lack."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="xablate")
class MultiplicativeBrightness(keras.layers.Layer):
    """Multiplies each image's values by a factor drawn uniformly from [low, high], then clips to [0, 1]: the
    brightness of Keras' ImageDataGenerator(brightness_range=(low, high)). (Keras' RandomBrightness adds a shift
    instead.) Images are expected in [0, 1]; inference leaves them as they are."""

    def __init__(self, low: float, high: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high, self.seed = float(low), float(high), seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        images = keras.ops.convert_to_tensor(images)
        factor = keras.random.uniform((keras.ops.shape(images)[0], 1, 1, 1), self.low, self.high,
                                      seed=self.generator, dtype=images.dtype)
        return keras.ops.clip(images * factor, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high, "seed": self.seed}
