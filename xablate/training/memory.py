"""Recognising an accelerator out-of-memory error, on every backend, for the one retry with half the batch."""

from __future__ import annotations

OOM_MARKERS = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "OOM when allocating")


def is_out_of_memory(error: BaseException) -> bool:
    """TensorFlow's ResourceExhaustedError, JAX/XLA's RESOURCE_EXHAUSTED and torch's OutOfMemoryError."""
    for cls in type(error).__mro__:
        if cls.__name__ in ("ResourceExhaustedError", "OutOfMemoryError"):
            return True
    return any(marker in str(error) for marker in OOM_MARKERS)


def halved_batch(batch_size: int, accumulation: int | None) -> tuple[int, int]:
    """The retry's batch size and gradient-accumulation steps, keeping the effective batch the same."""
    return batch_size // 2, 2 * (accumulation or 1)
