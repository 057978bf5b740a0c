"""The `xablate` command: `figures` (results/ from the MLflow store, for any study or sweep), `status` (a study's
grid against the store), `plan` (seeds needed for a target effect), `bench
segments|store|onednn|sequential|pruning|harness|analysis|cluster` (throughput, design and
response-time benchmarks), `ui` (the MLflow UI), `server` (a tracking server on a database, for a study across
machines)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from xablate.paths import project_root

DEFAULT_RESULTS_DIR = project_root() / "results"
DEFAULT_BENCH_DIR = DEFAULT_RESULTS_DIR / "bench"


def _int_list(option: str):
    """A parser of comma-separated integers >= 1 whose error names `option`."""
    def parse(text: str) -> list[int]:
        message = f"Received {option}={text!r}; allowed: comma-separated integers >= 1."
        try:
            values = [int(v) for v in text.split(",") if v]
        except ValueError:
            raise argparse.ArgumentTypeError(message)
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError(message)
        return values
    return parse


def _name_list(option: str, allowed: tuple[str, ...]):
    """A parser of comma-separated names out of `allowed` whose error names `option`."""
    def parse(text: str) -> list[str]:
        values = [v for v in text.split(",") if v]
        if not values or any(v not in allowed for v in values):
            raise argparse.ArgumentTypeError(f"Received {option}={text!r}; allowed: comma-separated names out of "
                                             f"{', '.join(allowed)}.")
        return values
    return parse


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"Received {text!r}; allowed: a number > 0.")
        return value
    return parse


def _int_at_least(option: str, minimum: int, why: str = ""):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"Received {option}={text!r}; allowed: an integer >= {minimum}{why}.")
        return value
    return parse


def _parse_suites(text: str) -> list[str]:
    from xablate.bench import HARNESS_SUITES as SUITES

    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or any(v not in SUITES for v in values):
        raise argparse.ArgumentTypeError(f"Received --only={text!r}; allowed: a comma-separated subset of "
                                         f"{','.join(SUITES)}.")
    return [s for s in SUITES if s in values]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xablate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench", help="throughput benchmarks, written under results/bench/")
    suites = bench.add_subparsers(dest="suite", required=True)
    seg = suites.add_parser("segments", help="train-step cost of the segment conv across the spectrum")
    seg.add_argument("--channels", type=_positive(int), default=128, help="input = output channels (128)")
    seg.add_argument("--size", type=_positive(int), default=32, help="image height = width (32)")
    seg.add_argument("--batch", type=_positive(int), default=32, help="batch size (32)")
    seg.add_argument("--images", type=_positive(int), default=512, help="images per epoch, for s/epoch (512)")
    seg.add_argument("--steps", type=_positive(int), default=10, help="timed steps per cell, at most (10)")
    seg.add_argument("--max-seconds", type=_positive(float), default=20.0,
                     help="stop timing a cell after this long, once 2 steps are in (20)")
    seg.add_argument("--segments", type=_int_list("--segments"), default=None,
                     help="comma-separated k to measure (default: powers of two from 1 to channels)")
    seg.add_argument("--out", type=Path, default=DEFAULT_BENCH_DIR / "segments.csv", help="CSV to write")
    store = suites.add_parser(
        "store", help="parallel writers on one store (SQLite; MLflow server on PostgreSQL): errors and lost points",
        description="WRITERS processes at once each log EPOCHS batches of metrics, a heartbeat tag and a search every "
                    "tenth epoch into one store, for each store kind: a SQLite file, and an MLflow tracking server on "
                    "a PostgreSQL of its own (both started in a temporary folder and stopped afterwards; without "
                    "PostgreSQL installed its rows say so). Writes store.csv: errors, metric points against those "
                    "expected, seconds.")
    store.add_argument("--writers", type=_int_list("--writers"), default=[1, 4, 16],
                       help="comma-separated writer process counts (1,4,16)")
    store.add_argument("--epochs", type=_positive(int), default=200, help="metric batches per writer (200)")
    store.add_argument("--folder", type=Path, default=None, help="where the stores go (a temporary folder)")
    store.add_argument("--stores", type=_name_list("--stores", ("sqlite", "server+postgresql")),
                       default=["sqlite", "server+postgresql"],
                       help="comma-separated store kinds to measure: sqlite, server+postgresql (both)")
    store.add_argument("--out", type=Path, default=DEFAULT_BENCH_DIR / "store.csv", help="CSV to write")
    cluster = suites.add_parser(
        "cluster", help="per-job overhead of the Ray launcher against Hydra's basic launcher, same debug sweep",
        description="Runs the same small debug sweep (python run.py -m debug=default ...) through Hydra's basic "
                    "launcher and through hydra/launcher=ray_cluster on a local Ray head (and WORKERS worker nodes) "
                    "that the benchmark starts and kills inside a network namespace of its own (loopback only; "
                    "needs root, unshare and ip), each into a fresh SQLite store; writes cluster.csv: wall seconds "
                    "of the sweep command, seconds per job and the ratio to the basic launcher.")
    cluster.add_argument("--workers", type=_int_at_least("--workers", 0), default=1,
                         help="worker nodes (one CPU each) of the second Ray configuration, beside a head alone "
                              "(one CPU); 0: the head alone only (1)")
    cluster.add_argument("--folder", type=Path, default=None, help="where the stores go (a temporary folder)")
    cluster.add_argument("--out", type=Path, default=DEFAULT_BENCH_DIR / "cluster.csv", help="CSV to write")
    cluster.add_argument("overrides", nargs="*",
                         help="run.py overrides of the sweep (default: debug=default train.epochs=1 "
                              "train.save_model=false residual=true,false seed=0,1)")
    onednn = suites.add_parser(
        "onednn", help="training throughput under each train.onednn state (on, avx2, off), side by side",
        description="Trains the run's model on its images as arrays under oneDNN on, capped at AVX2, and off, each "
                    "in its own process, alternating rounds; writes onednn.csv with the median images/s per state "
                    "and its ratio to on. Arguments after the options are run.py overrides of the measured run "
                    "(default: model=mini data=digits).")
    onednn.add_argument("--epochs", type=_int_at_least("--epochs", 2, " (the first epoch traces the model)"),
                        default=4, help="epochs per state and round (4)")
    onednn.add_argument("--rounds", type=_int_at_least("--rounds", 1), default=3,
                        help="alternating rounds of the three states (3)")
    onednn.add_argument("--out", type=Path, default=DEFAULT_BENCH_DIR / "onednn.csv", help="CSV to write")
    onednn.add_argument("overrides", nargs="*", help="run.py overrides of the measured run, e.g. model=debug")
    sequential = suites.add_parser(
        "sequential", help="the seeds a group-sequential design would have needed for each study in the store",
        description="Replays seeds-until-decided (looks 3, 5, 10 and the study's own count; O'Brien-Fleming and "
                    "Pocock spending) over each study with claims, against its fixed design: runs needed and "
                    "whether the outcomes agree. Trains nothing.")
    sequential.add_argument("--uri", default=None, help="tracking URI (default: $MLFLOW_TRACKING_URI or the "
                                                        "project's store)")
    sequential.add_argument("--out", type=Path, default=DEFAULT_BENCH_DIR / "sequential.csv", help="CSV to write")
    analysis = suites.add_parser(
        "analysis", help="seconds that status, figures --check and plan take on a store, as whole processes",
        description="Starts each analysis command a researcher types between runs (status of a sequential and a "
                    "plain study, figures --check, plan) ROUNDS times in turn against one store and writes "
                    "analysis.csv: min, median and max seconds from start to exit, imports included; the target "
                    "is a median under 2 s.")
    analysis.add_argument("--uri", default=None,
                          help="tracking URI (default: the committed store, <project>/results/store/mlflow.db)")
    analysis.add_argument("--rounds", type=_int_at_least("--rounds", 1), default=5, help="runs of each command (5)")
    analysis.add_argument("--out", type=Path, default=DEFAULT_BENCH_DIR / "analysis.csv", help="CSV to write")
    pruning = suites.add_parser(
        "pruning", help="tune-stage epochs a pruner saves against the same search unpruned, and its choices",
        description="Runs one random-sampler search (the same trials each time) unpruned and with each pruner, "
                    "each a real staged sweep in its own store; writes pruning.csv: tune-stage runs, pruned runs, "
                    "epochs and training seconds, their ratio to the unpruned search, and whether each variant's "
                    "choice is the same. Arguments after the options are run.py overrides (default: debug=default).")
    pruning.add_argument("--pruners", type=_name_list("--pruners", ("median", "successive_halving", "hyperband")),
                         default=["median", "successive_halving", "hyperband"],
                         help="comma-separated pruners to compare with none (all three)")
    pruning.add_argument("--trials", type=_int_at_least("--trials", 2), default=8, help="trials per variant (8)")
    pruning.add_argument("--seeds", type=_int_at_least("--seeds", 1), default=2, help="seeds per trial (2)")
    pruning.add_argument("--startup", type=_int_at_least("--startup", 1), default=2,
                         help="trials the median pruner waits for (2)")
    pruning.add_argument("--epochs", type=_int_at_least("--epochs", 2), default=4, help="the tune stage's epochs (4)")
    pruning.add_argument("--folder", type=Path, default=None, help="where the stores go (a temporary folder)")
    pruning.add_argument("--out", type=Path, default=DEFAULT_BENCH_DIR / "pruning.csv", help="CSV to write")
    pruning.add_argument("overrides", nargs="*", help="run.py overrides, e.g. debug=default")
    harness = suites.add_parser(
        "harness", help="xablate's cost over plain Keras: run vs bare fit, builder parity, input pipeline, backends",
        description="Measures side by side in one process: a real xablate run vs a bare model.fit of the same "
                    "model and data, build_xception() vs keras.applications.Xception, the augmented tf.data "
                    "pipeline vs in-memory arrays; in subprocesses: the start-up of python run.py and every "
                    "installed Keras backend. Arguments after the options are run.py overrides for the measured "
                    "run (default: model=mini data=digits).")
    harness.add_argument("--epochs", type=_int_at_least("--epochs", 2, " (the first epoch traces the model; steady "
                                                        "state is the epochs after it)"), default=4,
                         help="epochs of each overhead side and of each input pipeline source (4)")
    harness.add_argument("--rounds", type=_int_at_least("--rounds", 1), default=2,
                         help="alternating bare/run rounds of the overhead measurement (2)")
    harness.add_argument("--steps", type=_int_at_least("--steps", 1), default=10,
                         help="timed train steps per model in the builder parity (10)")
    harness.add_argument("--parity-size", type=_int_at_least("--parity-size", 71, " (keras.applications.Xception's "
                                                             "minimum input)"), default=71,
                         help="image height = width of the builder parity (71)")
    harness.add_argument("--parity-batch", type=_int_at_least("--parity-batch", 1), default=8,
                         help="batch size of the builder parity (8)")
    harness.add_argument("--backend-epochs", type=_int_at_least("--backend-epochs", 2), default=2,
                         help="epochs per Keras backend, the first of which compiles (2)")
    harness.add_argument("--reuse-seeds", type=_int_at_least("--reuse-seeds", 2), default=5,
                         help="jobs (seeds) of the one-process sweep measuring per-job overhead (5)")
    harness.add_argument("--only", type=_parse_suites, default=None,
                         help="comma-separated measurements to run: overhead,reuse,parity,pipeline,backends (all)")
    harness.add_argument("--out", type=Path, default=DEFAULT_BENCH_DIR,
                         help="folder for the CSVs and harness.md (<project>/results/bench)")
    harness.add_argument("overrides", nargs="*", help="run.py overrides of the measured run, e.g. model=debug")
    figures = commands.add_parser("figures", help="regenerate figures, tables and the verdict from the store")
    figures.add_argument("--study", action="append", default=None,
                         help="a study to draw (repeatable; default: every study in the store with a finished run)")
    figures.add_argument("--sweep", default=None, help="draw only this sweep (its parent run id) of its study")
    figures.add_argument("--out", type=Path, default=None,
                         help="output folder (<project>/results; another store than the one its outputs record is "
                              "drawn into <project>/outputs/figures/<store> instead)")
    figures.add_argument("--uri", default=None,
                         help="tracking URI (default: the store the output folder's results were drawn from, else "
                              "$MLFLOW_TRACKING_URI or the project's store)")
    figures.add_argument("--check", action="store_true",
                         help="only list the outputs a bare `figures` would redraw; exit 1 if any")
    figures.add_argument("--redraw", action="store_true",
                         help="draw every output again (default: only the stale or missing ones)")
    figures.add_argument("--replace", action="store_true",
                         help="draw over results that record another store (committed results included)")
    plan = commands.add_parser(
        "plan", help="seeds per variant needed to detect a given effect, from a study's runs so far",
        description="Reads a study's runs, estimates the spread of each comparison's paired differences and prints "
                    "the seeds per variant needed for the target minimum detectable effect (80 % power, two-sided "
                    "alpha 0.05), the command that adds them and its estimated time. Arguments after the options "
                    "are the run.py overrides the study was run with (e.g. debug=default).")
    plan.add_argument("--study", required=True, help="the study (an MLflow experiment of the store)")
    plan.add_argument("--mde", type=_positive(float), required=True,
                      help="target minimum detectable effect, in the metric's units (0.01 = one accuracy point)")
    plan.add_argument("--uri", default=None, help="tracking URI (default: $MLFLOW_TRACKING_URI or the project's store)")
    plan.add_argument("overrides", nargs="*", help="run.py overrides of the study's runs")
    status = commands.add_parser(
        "status", help="which cells of a study's grid are done, failed, diverged, running or missing",
        description="Expands a study's grid as `python run.py -m` would and reports every cell from the store. "
                    "Arguments after the options are the run.py overrides of the sweep, e.g. "
                    "`xablate status --study spectrum debug=default seed=0,1`.")
    status.add_argument("--study", action="append", default=None,
                        help="a study of experiments/, or one with a sweep in the store such as default (repeatable; "
                             "default: every study the store has runs of, each other study in one line)")
    status.add_argument("--uri", default=None,
                        help="tracking URI (default: tracking.uri, $MLFLOW_TRACKING_URI or the project's store)")
    status.add_argument("overrides", nargs="*", help="run.py overrides, sweeps included (a=1,2)")
    server = commands.add_parser("server", help="an MLflow tracking server on a database (artifacts proxied): "
                                                "one study across machines")
    server.add_argument("--database", default=None, help="the database URI, e.g. postgresql://user@host:5432/xablate")
    server.add_argument("--postgres", type=Path, default=None,
                        help="instead: a folder for a PostgreSQL of its own (Debian's postgresql), started with it")
    server.add_argument("--artifacts", type=Path, default=None,
                        help="where the server keeps the runs' artifacts (default: <--postgres folder>/artifacts)")
    server.add_argument("--host", default="127.0.0.1", help="the address to serve on (0.0.0.0: every interface)")
    server.add_argument("--port", type=_positive(int), default=5000)
    ui = commands.add_parser("ui", help="the MLflow UI on 127.0.0.1 for the project's store")
    ui.add_argument("--uri", default=None, help="tracking URI (default: $MLFLOW_TRACKING_URI or <project>/mlflow.db)")
    ui.add_argument("--port", type=_positive(int), default=5000)
    ui.add_argument("--study", default=None,
                    help="print (and open, where a browser can) the page of this study's final-stage runs grouped "
                         "by variant, its claimed metrics as columns")
    ui.add_argument("--no-browser", action="store_true", help="with --study: only print the page's address")
    return parser


def run_ui(uri: str | None, port: int, study: str | None = None, open_browser: bool = True) -> int:
    """Serves the MLflow UI for the store runs are logged to (sqlite stores: artifacts beside them; one git
    tracks: a copy, left as it is); the server dies with this command (xablate.tracking.ui_store, ui_server)."""
    from xablate.tracking.ui_store import serve_store

    return serve_store(uri, port, study=study, open_browser=open_browser)


def run_status(args) -> int:
    """Prints each study's matrix; exit 0 when every cell is done or diverged, 1 when some are not. With no study
    named, every study of experiments/ and the latest sweep of each study without a file (the user's own, e.g.
    `default`); with no overrides either, a study the store has no run of is one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from xablate.analysis.status import (TO_RUN, format_status, latest_sweep_arguments, started_studies,
                                         study_status)
    from xablate.studies import declared_store, declared_studies
    from xablate.tracking.store import check_store_to_read, resolve_tracking_uri, store_missing

    experiments = declared_studies()
    parsed = OverridesParser.create().parse_overrides(args.overrides)
    typed = {o.get_key_element().lstrip("+~"): o for o in parsed}
    try:
        uri = resolve_tracking_uri(args.uri or (typed["tracking.uri"].value() if "tracking.uri" in typed else None))
        if not store_missing(uri):  # no store yet: every study not started
            check_store_to_read(uri, "--uri" if args.uri else "tracking.uri")
    except ValueError as error:
        print(f"xablate: {error}", file=sys.stderr)
        return 2
    overrides = [*args.overrides, *([f"tracking.uri={uri}"] if args.uri else [])]
    # a sweep of its own (or an experiment/study named in the overrides) is one grid; nothing: every study
    own_grid = any(o.is_sweep_override() or o.get_key_element() in ("experiment", "study") for o in parsed)
    started = started_studies(uri)
    chosen = bool(args.uri or "tracking.uri" in typed or os.environ.get("MLFLOW_TRACKING_URI"))
    named = {} if chosen else {s: declared_store(s) for s in experiments}  # a study file naming its store
    stores = {s: resolve_tracking_uri(store) for s, store in named.items() if store}  # is read there
    started_in = {u: started_studies(u) for u in set(stores.values())}
    sweeps = {s: latest_sweep_arguments(uri, s) for s in started if s not in experiments}
    undeclared = sorted(s for s, arguments in sweeps.items() if arguments)
    studies = args.study or ([None] if own_grid else [*experiments, *undeclared])
    unknown = [s for s in studies if s is not None and s not in experiments and s not in undeclared]
    if unknown:
        print(f"xablate: Received --study={unknown[0]!r}; allowed: a study of experiments/ "
              f"({', '.join(experiments)}) or one with a sweep in {uri} ({', '.join(undeclared) or 'none'}); for "
              f"another grid type its overrides: xablate status intermediate_act=relu,elu,none", file=sys.stderr)
        return 2
    if not args.study and not own_grid:
        for study in sorted(started - set(experiments) - set(undeclared)):
            print(f"study {study!r}: single runs in {uri}, no sweep to check against", flush=True)
    incomplete, checked, skipped = False, 0, []
    for study in studies:
        where = stores.get(study, uri)
        if study is not None and not args.study and not args.overrides and \
                study not in started_in.get(where, started):  # one line
            print(f"study {study!r}: not started in {where} (python run.py -m experiment={study})", flush=True)
            continue
        if study in undeclared:
            arguments = [*sweeps[study], *overrides]
        else:
            arguments = ([f"experiment={study}"] if study else []) + overrides
        try:
            if study in experiments:  # the composition its runs were made with (e.g. design=cpu_repro)
                arguments = with_recorded_composition(study, arguments, where)
            status = study_status(arguments)
        except Exception as error:  # a bad override: say which, as run.py would
            print(f"xablate: {' '.join(arguments)}: {error}", file=sys.stderr)
            if study is not None and not args.study:  # every study: one that cannot be composed here is skipped
                skipped.append(study)
                continue
            return 2
        checked += 1
        print(format_status(status), flush=True)
        incomplete |= bool(status.cells["state"].isin([*TO_RUN, "running"]).any())
    if skipped and not checked:
        return 2  # the overrides fit no study: bad input
    if skipped:
        print(f"xablate: not checked here (see the reasons above): {', '.join(skipped)}", file=sys.stderr)
    return 1 if incomplete else 0


def with_recorded_composition(study: str, arguments: list[str], uri: str | None = None,
                              replicates: bool = True) -> list[str]:
    """`arguments` (experiment=<study> first) with the overrides every run of the study in the store was made
    with (xablate.analysis.composition) that the user did not set, printed when there are any; `replicates`:
    the seeds of its latest finished sweep too."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from xablate.analysis.composition import recorded_composition
    from xablate.config import REPLICATE_KEYS
    from xablate.analysis.status import study_grid
    from xablate.tracking.store import resolve_tracking_uri, store_missing

    typed = {o.get_key_element().lstrip("+~"): o for o in OverridesParser.create().parse_overrides(arguments)}
    uri = uri or resolve_tracking_uri(typed["tracking.uri"].value() if "tracking.uri" in typed else None)
    if store_missing(uri):
        return arguments  # no store yet (reading would create one)
    _, keys, _, tune = study_grid(arguments)
    composition, runs = recorded_composition(uri, study, [*keys, *(tune.keys if tune else ())])
    added = [o for o in composition if o.split("=", 1)[0].lstrip("+~") not in typed
             and (replicates or o.split("=", 1)[0].lstrip("+~") not in REPLICATE_KEYS)]
    if added:
        print(f"[xablate] {study}: composed as its {runs} runs in the store were: {' '.join(added)}", flush=True)
    return [arguments[0], *added, *arguments[1:]]


def run_bench_harness(args, argv: list[str] | None) -> int:
    from xablate.bench import harness

    try:
        harness.check_overrides(args.overrides)
    except Exception as error:  # a bad override or value: say which, before anything is measured
        print(f"xablate: {' '.join(args.overrides) or '(no overrides)'}: {error}", file=sys.stderr)
        return 2
    command = "xablate " + " ".join(argv if argv is not None else sys.argv[1:])
    return harness.run(out=args.out, epochs=args.epochs, rounds=args.rounds, steps=args.steps,
                       parity_size=args.parity_size, parity_batch=args.parity_batch,
                       backend_epochs=args.backend_epochs, suites=args.only or list(harness.SUITES),
                       overrides=args.overrides, command=command, reuse_seeds=args.reuse_seeds)


def run_bench_onednn(args) -> int:
    import tempfile

    from xablate.backend import start_tensorflow_quietly
    from xablate.bench import harness, onednn, overhead, pipeline, report

    start_tensorflow_quietly()
    from xablate.bench.common import Measured
    from xablate.schema import plain

    try:
        harness.check_overrides(args.overrides)
    except Exception as error:  # a bad override or value: say which, before anything is measured
        print(f"xablate: {' '.join(args.overrides) or '(no overrides)'}: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="xablate-bench-") as scratch:
        run = Measured.compose(overhead.run_overrides(Path(scratch) / "mlflow.db", args.epochs, args.overrides))
        x, y = pipeline.in_memory_arrays(run)
        builder = run.builder(image_shape=tuple(x.shape[1:]), num_classes=int(pipeline.load(run).num_classes))
        rows = onednn.measure(builder={**builder, "input_shape": list(builder["input_shape"])},
                              optim=plain(run.optim), arrays=(x, y), batch_size=int(run.train.batch_size),
                              epochs=args.epochs, rounds=args.rounds, seed=run.seed, folder=Path(scratch) / "onednn")
    report.write_csv(rows, args.out)
    for row in (r for r in rows if r["round"] == "median"):
        print(f"onednn   {row['state']:5s} median {row['steady_images_per_second']:7.1f} images/s "
              f"({row['ratio_vs_on']} x on), {row['images_per_cpu_second']:.1f} per CPU second "
              f"({row['cpu_ratio_vs_on']} x on)  [{row['environment']}]")
    print(f"wrote {args.out}")
    return 1 if any(r["status"] != "ok" for r in rows) else 0


def run_figures(args) -> int:
    """Redraws what is stale or missing in the results folder from the store it records (see
    xablate.analysis.destination: another store's figures go to a scratch folder of their own)."""
    from xablate.analysis.destination import figures_destination
    from xablate.analysis.report import regenerate, stale_outputs, to_redraw, write_study
    from xablate.analysis.store import runs_frame, studies_in_store
    from xablate.studies import STUDY_NAME
    from xablate.tracking.store import check_store_to_read

    try:
        where = figures_destination(args.uri, args.out or DEFAULT_RESULTS_DIR, out_given=args.out is not None,
                                    replace=args.replace)
    except ValueError as error:
        print(f"xablate: {error}", file=sys.stderr)
        return 2
    uri, out = where.uri, where.out
    try:
        check_store_to_read(uri)
    except ValueError as error:
        print(f"xablate: {error}", file=sys.stderr)
        return 2
    if where.note:
        print(where.note, flush=True)
    stale = stale_outputs(uri, out) if out.exists() else []
    for sidecar, reason in stale:
        print(f"stale: {sidecar.with_suffix('')}.* ({reason})")
    if args.check:
        print(f"{len(stale)} stale output(s) in {out} against {uri}")
        return 1 if stale else 0
    if args.sweep:
        runs = runs_frame(uri, sweep=args.sweep)
        if runs.empty:
            print(f"xablate: Received --sweep={args.sweep!r}; allowed: the run id of a sweep's parent run in {uri} "
                  f"(it has no child runs there).", file=sys.stderr)
            return 2
        for path in write_study(uri, str(runs["study"].iloc[0]), out, sweep=args.sweep):
            print(f"wrote {path}")
        return 0
    in_store = studies_in_store(uri)
    unknown = [s for s in args.study or [] if s not in in_store or not STUDY_NAME.fullmatch(s)]
    if unknown:
        print(f"xablate: Received --study={unknown[0]!r}; allowed: a study with finished runs in {uri}: "
              f"{', '.join(in_store) or '(none yet)'}.", file=sys.stderr)
        return 2
    unsafe = [s for s in in_store if not STUDY_NAME.fullmatch(s)]
    if unsafe:  # an experiment made outside xablate (or before its names were checked): not a folder name
        print(f"xablate: not drawn, their names would leave {out}: {', '.join(map(repr, unsafe))}", file=sys.stderr)
        in_store = [s for s in in_store if s not in unsafe]
    if not in_store:
        print(f"xablate: no study in {uri} has a finished run yet; nothing written")
        return 0
    studies, verdict = (args.study or in_store), True
    if not args.redraw:
        studies, verdict = to_redraw(out, studies, stale)
    if not studies and not verdict:
        print(f"xablate: {out} is up to date with {uri}; nothing written (--redraw draws every output again)")
        return 0
    for path in regenerate(uri, out, studies, verdict=verdict):
        print(f"wrote {path}")
    if out.resolve() == DEFAULT_RESULTS_DIR.resolve():  # the docs quoting these outputs, refreshed
        from xablate.analysis.quotes import requote

        for document in sorted((project_root() / "docs").glob("*.md")) + [project_root() / "README.md"]:
            if document.exists() and requote(document, project_root()):
                print(f"requoted {document}")
    return 0


def run_plan(args) -> int:
    from xablate.analysis.plan import format_plan, plan_seeds
    from xablate.analysis.report import selected_runs
    from xablate.analysis.store import HISTORY_MEASURES, history_frame, studies_in_store
    from xablate.studies import declared_studies
    from xablate.tracking.store import check_store_to_read, resolve_tracking_uri

    uri = resolve_tracking_uri(args.uri)
    try:
        check_store_to_read(uri)
    except ValueError as error:
        print(f"xablate: {error}", file=sys.stderr)
        return 2
    in_store = studies_in_store(uri)
    if args.study not in in_store:
        print(f"xablate: Received --study={args.study!r}; allowed: a study with finished runs in {uri}: "
              f"{', '.join(in_store) or '(none yet)'}.", file=sys.stderr)
        return 2
    selection = selected_runs(uri, args.study)
    history = history_frame(uri, selection.runs, metrics=HISTORY_MEASURES, axes=selection.axes)
    if args.study in declared_studies():  # the study with the composition its runs were made with
        arguments = with_recorded_composition(args.study, [f"experiment={args.study}", *args.overrides], uri,
                                              replicates=False)  # the plan adds seeds after those it has
        arguments += [f"tracking.uri={args.uri}"] if args.uri else []  # the new runs join the same store
    else:
        arguments = [f"study={args.study}", *(f"{a}={','.join(map(str, dict.fromkeys(selection.runs[a])))}"
                                              for a in selection.axes), *args.overrides]
    print(format_plan(plan_seeds(selection, history, args.mde, arguments)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ui":
        return run_ui(args.uri, args.port, args.study, not args.no_browser)
    if args.command == "server":
        from xablate.tracking.server import serve

        return serve(args.database, args.artifacts, args.host, args.port, args.postgres)
    if args.command == "figures":
        return run_figures(args)
    if args.command == "status":
        return run_status(args)
    if args.command == "plan":
        return run_plan(args)
    if args.command == "bench" and args.suite == "store":
        import tempfile

        from xablate.bench import store

        with tempfile.TemporaryDirectory() as scratch:
            rows = store.run(folder=args.folder or Path(scratch), writers=args.writers, epochs=args.epochs,
                             out=args.out, stores=args.stores)
        print(f"wrote {args.out}")
        return 1 if any(store.failed(r) for r in rows) else 0
    if args.command == "bench" and args.suite == "cluster":
        from xablate.bench import cluster

        return cluster.main(args)
    if args.command == "bench" and args.suite == "sequential":
        from xablate.analysis.store import studies_in_store
        from xablate.bench import sequential
        from xablate.tracking.store import check_reachable, resolve_tracking_uri

        try:  # a bad --uri: said in one line, before anything is read
            uri = resolve_tracking_uri(args.uri)
            check_reachable(uri)
        except ValueError as error:
            print(f"xablate: {str(error).replace('tracking.uri=', '--uri=')}", file=sys.stderr)
            return 2
        rows = sequential.measure(uri, studies_in_store(uri))
        for row in rows:
            print(f"{row['study']:24s} {row['spending']:15s} fixed {row['fixed_runs']:3d} runs -> "
                  f"{row['sequential_runs']:3d} (x{row['runs_ratio']:.2f}), same outcomes: {row['same_outcomes']}")
        print(f"wrote {sequential.write(rows, args.out)}")
        return 0
    if args.command == "bench" and args.suite == "analysis":
        from xablate.bench import analysis
        from xablate.tracking.store import check_store_to_read, resolve_tracking_uri

        uri = resolve_tracking_uri(args.uri or str(DEFAULT_RESULTS_DIR / "store" / "mlflow.db"))
        try:  # a bad --uri: said in one line, before anything is timed
            check_store_to_read(uri, "--uri")
        except ValueError as error:
            print(f"xablate: {error}", file=sys.stderr)
            return 2
        rows = analysis.measure(analysis.default_commands(uri), args.rounds)
        for row in rows:
            print(f"{row['median_seconds']:6.2f} s median ({row['min_seconds']:.2f}-{row['max_seconds']:.2f}, "
                  f"exit {row['exit_code']})  {row['command']}")
        print(f"wrote {analysis.write(rows, args.out)}")
        return 0 if all(row["exit_code"] in (0, 1) for row in rows) else 1
    if args.command == "bench" and args.suite == "pruning":
        import tempfile

        from xablate.bench import pruning

        with tempfile.TemporaryDirectory() as scratch:
            rows = pruning.measure(args.folder or Path(scratch), args.pruners, trials=args.trials, seeds=args.seeds,
                                   startup=args.startup, epochs=args.epochs, overrides=args.overrides or None)
        for row in rows:
            print(f"{row['pruner']:20s} tune {row['tune_runs']:3d} runs ({row['pruned_runs']:2d} pruned), "
                  f"{row['tune_epochs']:4d} epochs (x{row['epochs_ratio']:.2f}), {row['tune_train_seconds']:7.1f} s "
                  f"training (x{row['seconds_ratio']:.2f}); choices {row['choices']} same: {row['same_choices']}")
        print(f"wrote {pruning.write(rows, args.out)}")
        return 0
    if args.command == "bench" and args.suite == "harness":
        return run_bench_harness(args, argv)
    if args.command == "bench" and args.suite == "onednn":
        return run_bench_onednn(args)
    if args.command == "bench" and args.suite == "segments":
        if args.segments and max(args.segments) > args.channels:
            print(f"xablate: Received --segments={max(args.segments)} > --channels={args.channels}; "
                  f"allowed: 1 .. channels.", file=sys.stderr)
            return 2
        if args.segments and any(args.channels % k for k in args.segments):
            print(f"xablate: Received --segments={args.segments}; each must divide --channels={args.channels}.",
                  file=sys.stderr)
            return 2
        from xablate.bench import segments  # TensorFlow loads here, after the arguments are checked

        segments.run(channels=args.channels, size=args.size, batch=args.batch, images=args.images,
                     steps=args.steps, max_seconds=args.max_seconds, segments=args.segments, out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
