"""The smallest program that shows the oneDNN crash xablate works around (train.onednn), and its boundary.

    python tests/onednn_crash_repro.py case --batch 51          one filter gradient; crashes or prints "ok"
    python tests/onednn_crash_repro.py boundary                 every case below in its own process, as a table

What crashes: the *filter gradient* (Conv2DBackpropFilter) of a 1x1, stride-2 convolution - the projection
shortcut of Xception's entry/exit blocks - on a batch of odd size, run by oneDNN's AVX-512 kernels. glibc then
aborts ("malloc(): corrupted top size", "munmap_chunk(): invalid pointer", exit 134) or the process segfaults
(exit 139): a heap overrun inside the kernel. Once (on CI) the process hung instead, deadlocked on the
corrupted heap: `run_case` reports that as "hung". Measured on TensorFlow 2.21.0 and 2.20.0 (oneDNN on by default
on x86), Intel Xeon (Sapphire Rapids, AVX-512 + AMX) and reported on AMD EPYC (AVX-512 + BF16):

    batch 51, 16x16x4 -> 8 channels, stride 2        crash       batch 50, 52 or 2                   ok
    batch 1, 3, 53                                    crash       stride 1, or a 3x3 kernel           ok
    1 or 2 input channels, 1 output channel           crash       64 -> 128 channels                  ok
    16x16 input                                       crash       15x15, 8x8 or 4x4 input             ok
    TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels)           ok          ONEDNN_MAX_CPU_ISA=AVX2 (or SSE41)   ok
    ONEDNN_MAX_CPU_ISA=AVX512_CORE / AVX512_CORE_BF16 crash

So the fault lies in oneDNN's AVX-512 backward-weights path for small strided 1x1 problems with an odd
minibatch; a machine without AVX-512 never runs it. Reports of the same family of corner-case faults in oneDNN
convolutions on AVX-512/AVX2: https://github.com/uxlfoundation/oneDNN/issues/5942 (forward, fixed in oneDNN 3.x),
https://github.com/uxlfoundation/oneDNN/issues/542 (backward-by-data of a strided conv). No report of this exact
case was found in the TensorFlow or oneDNN trackers.

`boundary` reprints the table above for the machine it runs on (each case in a fresh interpreter, since the
oneDNN settings are read when TensorFlow loads and a crash ends the process).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CASES = [  # (label, arguments, environment)
    ("batch 51, 16x16x4 -> 8, 1x1 stride 2", ["--batch", "51"], {}),
    ("batch 50", ["--batch", "50"], {}),
    ("batch 52", ["--batch", "52"], {}),
    ("batch 53", ["--batch", "53"], {}),
    ("batch 3", ["--batch", "3"], {}),
    ("batch 2", ["--batch", "2"], {}),
    ("batch 51, stride 1", ["--batch", "51", "--stride", "1"], {}),
    ("batch 51, 3x3 kernel", ["--batch", "51", "--kernel", "3"], {}),
    ("batch 51, 2 input channels", ["--batch", "51", "--cin", "2"], {}),
    ("batch 51, 64 -> 128 channels", ["--batch", "51", "--cin", "64", "--cout", "128"], {}),
    ("batch 51, 15x15 input", ["--batch", "51", "--size", "15"], {}),
    ("batch 51, 8x8 input", ["--batch", "51", "--size", "8"], {}),
    ("batch 51, oneDNN off", ["--batch", "51"], {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    ("batch 51, oneDNN ISA capped at AVX2", ["--batch", "51"], {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
    ("batch 51, oneDNN ISA capped at AVX512_CORE", ["--batch", "51"], {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}),
]


def case(batch: int, cin: int, cout: int, size: int, stride: int, kernel: int, reps: int) -> float:
    """The filter gradient of one convolution, `reps` times (heap corruption is noticed on a later malloc)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch, size, size, cin), dtype=np.float32))
    w = tf.Variable(rng.random((kernel, kernel, cin, cout), dtype=np.float32))
    total = 0.0
    for _ in range(reps):
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, w, stride, "SAME")
            loss = tf.reduce_sum(y * y)
        total += float(tf.reduce_sum(tape.gradient(loss, w)))
    return total


HUNG = "hung"  # a corrupted heap may also deadlock glibc's allocator instead of aborting (seen on CI)
FAULTS = (-6, -7, -11, 134, 135, 139, HUNG)  # a corrupted heap: SIGABRT, SIGSEGV, or SIGBUS (seen once here)


def outcome(returncode: int | str) -> str:
    return {0: "ok", 134: "crash (SIGABRT)", -6: "crash (SIGABRT)", -7: "crash (SIGBUS)", 135: "crash (SIGBUS)",
            139: "crash (SIGSEGV)",
            -11: "crash (SIGSEGV)", HUNG: "hung (killed)"}.get(returncode, f"exit {returncode}")


def run_case(arguments: list[str], env: dict[str, str], timeout: float = 120) -> int | str:
    """Exit status of `case` with these arguments in a fresh interpreter (oneDNN's settings fresh too), or HUNG
    when it has not ended after `timeout` seconds (a case that works takes about 10 s)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")}
    try:
        proc = subprocess.run([sys.executable, __file__, "case", *arguments], capture_output=True, text=True,
                              env={**clean, "TF_CPP_MIN_LOG_LEVEL": "2", **env}, timeout=timeout)
    except subprocess.TimeoutExpired:
        return HUNG
    return proc.returncode


def boundary() -> None:
    import platform

    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, {_cpu()} ({platform.machine()})\n")
    print("| case | outcome |\n|---|---|")
    for label, arguments, env in CASES:
        print(f"| {label} | {outcome(run_case(arguments, env))} |", flush=True)


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("case", help="one filter gradient in this process")
    one.add_argument("--batch", type=int, default=51)
    one.add_argument("--cin", type=int, default=4)
    one.add_argument("--cout", type=int, default=8)
    one.add_argument("--size", type=int, default=16)
    one.add_argument("--stride", type=int, default=2)
    one.add_argument("--kernel", type=int, default=1)
    one.add_argument("--reps", type=int, default=20)
    sub.add_parser("boundary", help="every case in its own process, as a Markdown table")
    args = parser.parse_args()
    if args.command == "boundary":
        boundary()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    total = case(args.batch, args.cin, args.cout, args.size, args.stride, args.kernel, args.reps)
    print(f"ok {total:.6g}")


if __name__ == "__main__":
    main()
