"""Numerics and devices within a run: mixed precision, and data parallelism over every local device.

Batch semantics with `train.data_parallel=true`: `train.batch_size` is the global batch, split evenly over
the replicas (64 over 4 GPUs: 16 per GPU per step), so a run's learning-rate recipe means the same thing on
any number of devices. TensorFlow uses tf.distribute.MirroredStrategy over all GPUs (all logical CPUs when
there is none); JAX uses keras.distribution.DataParallel over jax.devices().
"""

from __future__ import annotations

from contextlib import contextmanager

import keras

PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def set_precision(precision: str) -> None:
    """fp32, or mixed bf16/fp16 (float32 variables, low-precision compute; Keras adds loss scaling for fp16)."""
    if precision not in PRECISIONS:
        raise ValueError(f"Received train.precision={precision!r}; allowed: {', '.join(PRECISIONS)}.")
    keras.mixed_precision.set_dtype_policy(PRECISIONS[precision])


@contextmanager
def distribution_scope(data_parallel: bool):
    """Yields the number of replicas; inside, variables are created mirrored/sharded when data_parallel."""
    if not data_parallel:
        yield 1
        return
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        devices = ([d.name for d in tf.config.list_logical_devices("GPU")]
                   or [d.name for d in tf.config.list_logical_devices("CPU")])
        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            yield strategy.num_replicas_in_sync
    elif backend == "jax":
        import jax

        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
        try:
            yield len(jax.devices())
        finally:
            keras.distribution.set_distribution(previous)
    else:
        raise ValueError(f"Received train.data_parallel=true with backend={backend!r}; allowed: the tensorflow "
                         f"or jax backend (torch: launch with torchrun instead).")
