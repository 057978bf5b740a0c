"""`train.onednn`: which oneDNN kernels TensorFlow may use on the CPU, decided before its first convolution.

TensorFlow 2.20/2.21 on x86 run convolutions through oneDNN. On processors with AVX-512 (Intel Xeon since
Skylake-SP, AMD EPYC since Zen 4) oneDNN's AVX-512 kernel for the filter gradient of a small 1x1 stride-2
convolution - Xception's projection shortcut - corrupts the heap when the batch has an odd size: the process
aborts (SIGABRT) or segfaults (SIGSEGV), e.g. on the last, partial batch of a 51-image training set.
tests/onednn_crash_repro.py holds the smallest reproducer and its measured boundary; capping oneDNN at AVX2
avoids the fault, as does turning oneDNN off.

    auto  (default) on a CPU with AVX-512, oneDNN is capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2) for fp32 and
          turned off for bf16/fp16 (the cap has no reduced-precision convolutions); elsewhere, or when the user
          set ONEDNN_MAX_CPU_ISA or TF_ENABLE_ONEDNN_OPTS themselves, nothing changes
    on    oneDNN with every instruction set the CPU has (TensorFlow's default; crashes as above)
    avx2  oneDNN capped at AVX2
    off   no oneDNN (TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's Eigen kernels)

The cap is the fix `auto` picks because it costs least (`xablate bench onednn` measures on / avx2 / off side by
side; README quotes it). oneDNN reads ONEDNN_MAX_CPU_ISA at its first primitive, so the cap still applies in a
process that imported TensorFlow but has not run a convolution yet; TF_ENABLE_ONEDNN_OPTS is read when
TensorFlow loads, so `off` must be chosen before that (run.py does). Every run records the state in effect
(tag `xablate.onednn`) and the processor (tag `xablate.cpu`). This module imports nothing heavy.
"""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache

MODES = ("auto", "on", "avx2", "off")
ISA_VAR, OPTS_VAR = "ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS"
SAFE_ISA = "AVX2"

_applied: str | None = None  # the state this process settled on (first apply wins: oneDNN reads it once)


def check_mode(mode) -> str:
    """The mode, or ValueError naming the setting, the value and what is allowed."""
    if mode not in MODES:
        raise ValueError(f"Received train.onednn={mode!r}; allowed: {', '.join(MODES)} (auto caps oneDNN at AVX2 "
                         f"on AVX-512 CPUs, where its odd-batch filter gradient crashes).")
    return mode


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), else what the platform reports."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def affected_cpu(flags: frozenset[str] | None = None) -> bool:
    """Whether oneDNN would run its AVX-512 kernels here (the ones with the odd-batch fault)."""
    return "avx512f" in (cpu_flags() if flags is None else flags)


def wanted_env(mode: str, *, environ=None, flags: frozenset[str] | None = None,
               precision: str = "fp32") -> tuple[dict[str, str], str]:
    """The environment variables `mode` sets (none for `on` or when `auto` leaves things alone) and the state
    they give, as recorded on the run: `on`, `avx2` or `off`, with why for `auto`. Under the AVX2 cap oneDNN
    has no bfloat16/float16 convolution ("could not create a primitive descriptor"), so `auto` turns oneDNN off
    for `train.precision` bf16 or fp16 on AVX-512 CPUs instead."""
    environ = os.environ if environ is None else environ
    check_mode(mode)
    if mode == "off":
        return {OPTS_VAR: "0"}, "off"
    if mode == "avx2":
        return {ISA_VAR: SAFE_ISA}, "avx2"
    if mode == "on":
        return {}, "on"
    if environ.get(OPTS_VAR) == "0":
        return {}, "off (TF_ENABLE_ONEDNN_OPTS=0 in the environment)"
    if environ.get(ISA_VAR, SAFE_ISA) != SAFE_ISA:  # the user's own cap (a cap at AVX2 is what auto sets anyway)
        return {}, f"{environ[ISA_VAR].lower()} ({ISA_VAR} in the environment)"
    if affected_cpu(flags) and precision != "fp32":
        return {OPTS_VAR: "0"}, f"off (auto: AVX-512 CPU, {precision})"
    if affected_cpu(flags):
        return {ISA_VAR: SAFE_ISA}, "avx2 (auto: AVX-512 CPU)"
    if environ.get(ISA_VAR):
        return {}, f"avx2 ({ISA_VAR} in the environment)"
    return {}, "on (auto: no AVX-512)"


def apply(mode: str, precision: str = "fp32") -> str:
    """Sets the environment for `mode` before oneDNN reads it; returns the state in effect for the run's tag.

    A process settles once: a later job whose state differs from the first one's gets ValueError (sweep it in
    separate processes), except `auto` for fp32, which runs under either safe state (oneDNN capped or off).
    """
    global _applied
    env, state = wanted_env(mode, precision=precision)
    if _applied is not None:
        wanted, current = state.split(" ")[0], _applied.split(" ")[0]
        if wanted != current and not (mode == "auto" and wanted == "avx2" and current == "off"):
            raise ValueError(f"Received train.onednn={mode!r} with train.precision={precision!r}, which needs oneDNN "
                             f"{wanted}, but this process already runs TensorFlow with oneDNN {_applied!r} (oneDNN "
                             f"reads its settings once per process). Sweep these in separate processes "
                             f"(hydra/launcher=parallel, or one command each), or set train.onednn=off for all.")
        return _applied
    loaded_off = os.environ.get(OPTS_VAR) == "0"
    if "tensorflow" in sys.modules and (OPTS_VAR in env) != loaded_off and (mode != "auto" or OPTS_VAR in env):
        raise ValueError(f"Received train.onednn={mode!r}, but TensorFlow is already imported in this process and "
                         f"reads {OPTS_VAR} only when it loads ({OPTS_VAR}={os.environ.get(OPTS_VAR)!r} then): "
                         f"start the job through run.py, which sets it first.")
    if mode != "auto":  # an explicit mode wins over the user's own variables
        for name in (ISA_VAR, OPTS_VAR):
            if name not in env:
                os.environ.pop(name, None)
    os.environ.update(env)
    _applied = state
    return state
