"""`xablate bench harness`: what xablate costs on top of plain Keras, measured side by side in one process.

    overhead  a real run (trainer.train: MLflow, checkpoints, guard) vs bare `model.fit` of the same model on the
              same data, alternating rounds; fixed per-run costs (start-up of `python run.py`, MLflow calls)
    parity    build_xception() defaults vs keras.applications.Xception(weights=None)
    pipeline  the augmented tf.data pipeline vs the same images as in-memory arrays; each layer's cost alone
    reuse     a seed sweep of the run in one process (Hydra's basic launcher): per-job overhead of the first job
              (builds and traces) and of later ones (train the kept, traced model)
    backends  the run's model under every installed Keras backend (one subprocess each)

Each writes a CSV under the output folder (report.FILES); harness.md summarises every CSV there.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import time
from pathlib import Path

from xablate.bench import HARNESS_SUITES as SUITES
from xablate.bench import backends, overhead, parity, pipeline, report, reuse
from xablate.bench.common import Measured
from xablate.schema import plain
from xablate.config import compose_job


def run(*, out: Path, epochs: int, rounds: int, steps: int, parity_size: int, parity_batch: int,
        backend_epochs: int, suites: list[str], overrides: list[str], command: str, reuse_seeds: int = 5,
        echo=print) -> int:
    """Measures `suites`, writes their CSVs and harness.md into `out`, prints the summary; 1 if a backend
    failed, else 0 (a missed target is a finding, not a failure)."""
    failed, load_before, start = False, _load(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xablate-bench-") as scratch:
        folder = Path(scratch)
        measured = Measured.compose(overhead.run_overrides(folder / "mlflow.db", epochs, overrides))
        if "overhead" in suites:
            rows, last = overhead.throughput(measured, rounds=rounds, folder=folder, echo=echo)
            report.write_csv(rows, out / report.FILES["overhead"])
            costs = overhead.fixed_costs(overrides, last, folder)
            for row in costs:
                echo(f"cost     {row['measurement']:26s} {row['seconds']:8.3f} s")
            report.write_csv(costs, out / report.FILES["fixed"])
        if "reuse" in suites:
            report.write_csv(reuse.measure(overrides, seeds=reuse_seeds, epochs=epochs, folder=folder, echo=echo),
                             out / report.FILES["reuse"])
        if "parity" in suites:
            report.write_csv(parity.measure(size=parity_size, batch=parity_batch, steps=steps, echo=echo),
                             out / report.FILES["parity"])
        if "pipeline" in suites:
            report.write_csv(pipeline.measure(measured, epochs=epochs, echo=echo), out / report.FILES["pipeline"])
        if "backends" in suites:
            rows = _backends(measured, backend_epochs, folder / "backends", echo)
            failed = any(r["status"].startswith("failed") for r in rows)
            report.write_csv(rows, out / report.FILES["backends"])
    header = _header(command, suites, load_before, _load(), time.perf_counter() - start, out)
    text = report.markdown(out, header=header, cpus=os.cpu_count() or 1)
    (out / report.SUMMARY).write_text(text)
    echo("")
    echo("\n".join(report.summary_table(report.read_all(out))))
    echo(f"\nwrote {', '.join(report.FILES[k] for k in _written(suites))} and {report.SUMMARY} in {out} "
         f"({time.perf_counter() - start:.0f} s)")
    return 1 if failed else 0


def check_overrides(overrides: list[str]) -> None:
    """Raises, naming the problem, when the overrides do not compose into a valid job config."""
    from xablate.gate import parse_job

    parse_job(compose_job(overhead.run_overrides(Path("/nonexistent/mlflow.db"), 2, overrides)))


def _backends(run: Measured, epochs: int, folder: Path, echo) -> list[dict]:
    x, y = pipeline.in_memory_arrays(run)
    builder = run.builder(image_shape=tuple(x.shape[1:]), num_classes=int(pipeline.load(run).num_classes))
    return backends.measure(builder={**builder, "input_shape": list(builder["input_shape"])},
                            optim=plain(run.optim), jit_compile=run.train.jit_compile, arrays=(x, y),
                            batch_size=int(run.train.batch_size), epochs=epochs, seed=run.seed, folder=folder,
                            echo=echo)


def _written(suites: list[str]) -> list[str]:
    return [k for k in report.FILES if k in suites or (k == "fixed" and "overhead" in suites)]


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _header(command: str, suites: list[str], load_before: float | None, load_after: float | None,
            seconds: float, out: Path | None = None) -> str:
    import keras

    versions = f"Keras {keras.__version__} ({keras.backend.backend()} backend"
    try:
        import tensorflow as tf

        versions += f", TensorFlow {tf.__version__})"
    except ImportError:
        versions += ")"
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    # suites not run this time whose CSVs are in the folder (the summary shows them)
    others = [s for s in SUITES if s not in suites and out is not None and (out / report.FILES[s]).exists()]
    note = (f" This run measured {', '.join(suites)}; {', '.join(others)}, where shown, come from an earlier "
            f"run's CSVs in this folder." if others else "")
    load = (f" (load average {load_before:.1f} at the start, {load_after:.1f} at the end)"
            if load_before is not None and load_after is not None else "")
    return (f"`{command}` on {os.cpu_count()} CPU core(s){load}, {versions}, {when}; it took {seconds / 60:.1f} "
            f"minutes. Ratios compare measurements "
            f"taken in the same run; on a shared machine compare ratios, not absolute speeds.{note}")
