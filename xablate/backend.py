"""Choosing the Keras backend for a job (`backend=tensorflow|jax|torch`): fixed when Keras is first imported."""

from __future__ import annotations

import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def select_backend(name: str) -> None:
    """Sets KERAS_BACKEND before Keras is imported; refuses a change once this process has loaded Keras."""
    if name not in BACKENDS:
        raise ValueError(f"Received backend={name!r}; allowed: {', '.join(BACKENDS)}.")
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if current != name:
            raise ValueError(
                f"Received backend={name!r}, but Keras in this process already runs on {current!r} (a backend is "
                f"fixed when Keras is imported). Sweep backends in separate processes: "
                f"hydra/launcher=joblib, or one command per backend."
            )
        return
    os.environ["KERAS_BACKEND"] = name
