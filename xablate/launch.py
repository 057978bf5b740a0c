"""What a job does about its launcher before Keras starts: one GPU per parallel job where there are several."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# launchers that run several jobs at once on one machine; Ray and Slurm give each job its own GPUs themselves
LOCAL_PARALLEL = ("joblib",)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, without importing a framework: $CUDA_VISIBLE_DEVICES, else nvidia-smi."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def assign_gpu(job_num: int, launcher_target: str) -> str | None:
    """Under a local parallel launcher with several GPUs, pins job n to GPU n mod count (CUDA_VISIBLE_DEVICES).

    Only possible before the framework starts in this process: a reused worker keeps its first GPU. One GPU:
    jobs share it (run.py turns on memory growth). Returns the GPU chosen, or None.
    """
    if not any(name in launcher_target.lower() for name in LOCAL_PARALLEL):
        return None
    gpus = visible_gpus()
    if len(gpus) < 2 or any(m in sys.modules for m in ("tensorflow", "jax", "torch")):
        return None
    chosen = gpus[job_num % len(gpus)]
    os.environ["CUDA_VISIBLE_DEVICES"] = chosen
    return chosen
