"""Choosing the Keras backend for a job (`backend=tensorflow|jax|torch`): fixed when Keras is first imported."""

from __future__ import annotations

import os
import re
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


# TensorFlow's native start-up lines on a machine without a usable GPU: written by C++ to file descriptor 2
# before TF_CPP_MIN_LOG_LEVEL applies, and read like failures (`failed call to cuInit: UNKNOWN ERROR (303)`).
STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|failed call to cuInit|"
    r"cuda_(dnn|fft|blas)\.cc|Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
    r"oneDNN custom operations are on|TF-TRT Warning|This TensorFlow binary is optimized to use available CPU|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags")


def start_tensorflow_quietly() -> None:
    """Imports TensorFlow and lets it look for GPUs with its native start-up lines filtered out of stderr;
    anything else it writes meanwhile is passed on. To debug TensorFlow's start-up, `XABLATE_TF_LOGS=1` (or
    TF_CPP_MIN_LOG_LEVEL=0) keeps every line."""
    if os.environ.get("XABLATE_TF_LOGS", "0") != "0" or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" \
            or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not STARTUP_NOISE.search(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def start_like_a_job(backend: str, onednn: str = "auto", precision: str = "fp32") -> None:
    """What a process does before Keras loads, as run.py's job does it: the backend, TensorFlow's oneDNN state
    (xablate/onednn.py: a native crash on some CPUs) and TensorFlow's start-up without its native noise."""
    from xablate.onednn import apply as apply_onednn

    select_backend(backend)
    apply_onednn(onednn, precision)
    if backend == "tensorflow":
        start_tensorflow_quietly()
