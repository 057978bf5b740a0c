"""Fine-tuning's frozen warm-up (`train.freeze_base_epochs`): the classifier trains alone first.

A frozen base is `trainable=False` on every layer but the head's; Keras then also runs its batch-norm layers in
inference mode (their pretrained statistics are used and kept), as Keras' transfer-learning guide does.
"""

from __future__ import annotations

HEAD_LAYERS = ("avg_pool", "flatten", "dropout", "predictions")  # what build_xception puts on top


def set_base_trainable(model, trainable: bool) -> None:
    """Freezes (False) or unfreezes (True) every layer of `model` but the classifier head."""
    for layer in model.layers:
        if layer.name not in HEAD_LAYERS:
            layer.trainable = trainable
