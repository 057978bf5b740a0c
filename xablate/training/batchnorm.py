"""Batch-norm statistics that match the weights being evaluated ("precise BN").

Keras' moving averages trail the weights: with few steps per epoch and fast-changing weights, a model evaluated
after its first epoch sees statistics of weights it no longer has (seen here: training accuracy 0.85, validation
accuracy 0.106 = chance). Before every evaluation, `PreciseBatchNorm` recomputes each BatchNormalization layer's
moving mean and variance as the plain average of its batch statistics over a fixed number of training batches,
with the current (or EMA) weights, in training mode — as Wu & Johnson's PreciseBN does. Training is unaffected:
in training mode the layers normalise with batch statistics, and their own momentum is restored afterwards.
"""

from __future__ import annotations

import keras


def batch_norm_layers(layer) -> list:
    """Every trainable BatchNormalization layer inside `layer` (nested models included)."""
    found = []
    for child in getattr(layer, "layers", []):
        if isinstance(child, keras.layers.BatchNormalization):
            if child.trainable:
                found.append(child)
        else:
            found.extend(batch_norm_layers(child))
    return found


def recompute_batch_norm(model, batches, max_batches: int) -> int:
    """Sets every BN layer's moving statistics to the average of its batch statistics over up to
    `max_batches` batches of (images, labels); returns the number of batches used."""
    layers = batch_norm_layers(model)
    if not layers or max_batches < 1:
        return 0
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        for images, _ in batches:
            for layer in layers:  # running mean: batch i gets weight 1/(i+1)
                layer.momentum = used / (used + 1)
            model(images, training=True)
            used += 1
            if used >= max_batches:
                break
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return used


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recomputes the BN statistics from `batches()` (a fresh iterable of training batches) at every
    evaluation's start, so validation and test see statistics of the weights they evaluate."""

    def __init__(self, batches, max_batches: int):
        super().__init__()
        self.batches, self.max_batches = batches, int(max_batches)

    def on_test_begin(self, logs=None):
        recompute_batch_norm(self.model, self.batches(), self.max_batches)
