"""CSV files of `xablate bench harness` and the Markdown summary built from them (results/bench/harness.md)."""

from __future__ import annotations

import csv
from pathlib import Path

FILES = {
    "overhead": "harness_overhead.csv",
    "fixed": "harness_fixed_costs.csv",
    "reuse": "harness_reuse.csv",
    "parity": "builder_parity.csv",
    "pipeline": "input_pipeline.csv",
    "backends": "backends.csv",
}
SUMMARY = "harness.md"
STALL_SECONDS = 0.5  # an epoch whose first batch starts later than this stalled in Keras' fit loop


def write_csv(rows: list[dict], path: Path, columns: list[str] | None = None) -> Path:
    """Every bench CSV: `columns` (default: the first row's keys) in that order; other keys are left out, a
    missing one is an error."""
    columns = columns or list(rows[0])
    for i, row in enumerate(rows):
        if missing := [c for c in columns if c not in row]:
            raise KeyError(f"row {i} of {path} lacks the columns {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_all(folder: Path) -> dict[str, list[dict]]:
    """Every harness CSV present in `folder`, as lists of string dicts."""
    tables = {}
    for kind, name in FILES.items():
        if (folder / name).exists():
            with (folder / name).open() as f:
                tables[kind] = list(csv.DictReader(f))
    return tables


def _met(row: dict) -> str:
    return {"True": "met", "False": "**missed**"}.get(row.get("meets_target", ""), "–")


def _num(value, digits: int = 1) -> str:
    return f"{float(value):,.{digits}f}" if value not in ("", None) else "–"



def _target(row: dict) -> str:
    return f"≥ {float(row['target']):g}" if row.get("target") else "–"


def _line(label: str, ours: dict, base: dict, ips_key: str, ratio_key: str, digits: int = 1,
          fastest: str = "", cpu: str = "") -> str:
    return (f"| {label} | {_num(ours[ips_key], digits)} | {_num(base[ips_key], digits)} | "
            f"{_num(ours[ratio_key], 3)} | {_target(ours)} | {_met(ours)} | {_num(fastest, 3)} | {_num(cpu, 3)} |")


def summary_table(tables: dict[str, list[dict]]) -> list[str]:
    """The ratio table: one line per comparison, measured vs its baseline (images/s), against its target; the
    ratio of the fastest epochs/steps and of images per CPU-second beside it, where measured."""
    lines = ["| comparison | measured | baseline | ratio | target | | ratio, fastest | ratio, CPU |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    if "overhead" in tables:
        rows = tables["overhead"]
        for round_ in dict.fromkeys(r["round"] for r in rows):
            at = {r["side"]: r for r in rows if r["round"] == round_}
            bare, ours = at["bare"], at["harness"]
            if round_ == "all":
                label = (f"harness overhead: training images/s of a real run vs bare `model.fit`, same model and "
                         f"data (median of {ours['steady_epochs']} steady epochs per side, rounds pooled)")
            else:
                label = f"… round {round_} ({'bare' if bare['order'] == '1' else 'run'} first)"
            lines.append(_line(label, ours, bare, "steady_images_per_second", "ratio", fastest=ours["ratio_fastest"],
                               cpu=ours["ratio_cpu"]))
        pooled = {r["side"]: r for r in rows if r["round"] == "all"}
        bare_s, ours_s = float(pooled["bare"]["steady_epoch_seconds"]), float(pooled["harness"]["steady_epoch_seconds"])
        lines.append(f"| … whole epoch in seconds (training + validation + the run's checkpoint and MLflow log) | "
                     f"{ours_s:.2f} s | {bare_s:.2f} s | {bare_s / ours_s:.3f} | – | – | – | – |")
    if "reuse" in tables:
        from xablate.bench.reuse import START_TARGET, summary

        got = summary([_floats(r) for r in tables["reuse"]])
        met = "met" if got["later_to_epoch"] <= START_TARGET else "missed"
        lines.append(f"| one compile per architecture, one-process seed sweep ({got['later_jobs']} later jobs, "
                     f"{got['reused']} reused the traced model; medians): seconds from a later job's start (the "
                     f"previous job's end) to its first epoch, vs the first job's from its run's creation | "
                     f"{got['later_to_epoch']:.2f} s | {got['first_to_epoch']:.2f} s | "
                     f"{got['first_to_epoch'] / got['later_to_epoch']:.2f} | ≤ {START_TARGET:.0f} s | {met} | – | – |")
        extra_ratio = f"{got['first_extra'] / got['later_extra']:.1f}" if got["later_extra"] > 0 else "–"
        lines.append(f"| … first epoch's extra time over the next (the first job: tracing; below 0: the next epoch was "
                     f"the slower) | {got['later_extra']:.2f} s | {got['first_extra']:.2f} s | {extra_ratio} | – | – | – | – |")
        lines.append(f"| … per-job overhead: wall time minus the epochs at steady speed | {got['later_job']:.2f} s | "
                     f"{got['first_job']:.2f} s | {got['first_job'] / got['later_job']:.1f} | – | – | – | – |")
    if "parity" in tables:
        base, ours = tables["parity"]
        label = (f"builder parity: `build_xception()` vs `keras.applications.Xception(weights=None)`, train "
                 f"images/s at {ours['input_size']}×{ours['input_size']}×3, {ours['classes']} classes, batch "
                 f"{ours['batch']} (median of {ours['steps_timed']} alternating steps)")
        lines.append(_line(label, ours, base, "images_per_second", "ratio", digits=2, fastest=ours["ratio_fastest"],
                           cpu=ours["ratio_cpu"]))
    if "pipeline" in tables:
        train = {r["source"]: r for r in tables["pipeline"] if r["mode"] == "train"}
        base = train["in_memory"]
        for source, label in [("tf_data_augmented", "input pipeline: augmented tf.data vs the same images as "
                                                     "in-memory arrays, training images/s"),
                              ("tf_data", "… tf.data without augmentation vs in-memory arrays")]:
            row = train[source]
            lines.append(_line(label, row, base, "steady_images_per_second", "ratio_vs_in_memory",
                               cpu=row["ratio_cpu_vs_in_memory"]))
    if "backends" in tables:
        rows = {r["backend"]: r for r in tables["backends"]}
        base = rows.get("tensorflow")
        for name, row in rows.items():
            if name == "tensorflow" or row["status"] != "ok" or base is None or base["status"] != "ok":
                continue
            cpu = float(row["images_per_cpu_second"]) / float(base["images_per_cpu_second"])
            lines.append(_line(f"backend {name} vs tensorflow: training images/s from in-memory arrays", row, base,
                               "steady_images_per_second", "ratio_vs_tensorflow", cpu=cpu))
    return lines


def fixed_table(rows: list[dict]) -> list[str]:
    lines = ["| cost | seconds | what |", "|---|---:|---|"]
    lines += [f"| `{r['measurement']}` | {float(r['seconds']):.3f} | {r['detail']} |" for r in rows]
    return lines


def reuse_table(rows: list[dict]) -> list[str]:
    lines = ["| job | seed | model | to first epoch (s) | start overhead (s) | first epoch extra (s) | steady epoch (s) | "
             "end of job (s) | job overhead (s) |", "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['job']} | {r['seed']} | {r['compiled']} | {float(r['to_first_epoch_seconds']):.2f} | "
                     f"{float(r['start_overhead_seconds']):.2f} | "
                     f"{float(r['first_epoch_extra_seconds']):.2f} | {float(r['steady_epoch_seconds']):.2f} | "
                     f"{float(r['end_seconds']):.2f} | {float(r['job_overhead_seconds']):.2f} |")
    return lines


def reuse_explanation(rows: list[dict]) -> str:
    from xablate.bench.reuse import summary

    got = summary([_floats(r) for r in rows])
    return (f"`python run.py -m seed=0,…,{len(rows) - 1}` with Hydra's basic launcher (one process), traced steps. "
            f"To first epoch: from the previous job's end (the first job: the process launch, imports included; "
            f"in the summary from its run's creation) to its first epoch's start. Start overhead: to where its first epoch would have begun at steady "
            f"speed (adds the first epoch's extra time). The first job pays "
            f"{got['first_extra']:.1f} s of tracing in its first epoch; later jobs train the kept model "
            f"(xablate/training/reuse.py), and their first epoch differs from the next by {got['later_extra']:+.1f} s "
            f"(median; no trace: the data pipeline's first pass, and noise). Job overhead: the job's wall time "
            f"minus its epochs at steady speed (start, test evaluation, artifacts): first {got['first_job']:.1f} s, "
            f"later {got['later_job']:.1f} s (median).")


def _floats(row: dict) -> dict:
    return {k: (v if k == "compiled" else float(v)) for k, v in row.items()}


def backends_table(rows: list[dict]) -> list[str]:
    lines = ["| backend | status | version | steady images/s | images per CPU-second | first epoch images/s | "
             "vs tensorflow |", "|---|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['backend']} | {r['status']} | {r['version'] or '–'} | {_num(r['steady_images_per_second'])} | "
              f"{_num(r['images_per_cpu_second'])} | {_num(r['first_epoch_images_per_second'])} | "
              f"{_num(r['ratio_vs_tensorflow'], 3)} |" for r in rows]
    return lines


def pipeline_table(rows: list[dict]) -> list[str]:
    lines = ["| pipeline iterated alone (no model) | steady images/s | images per CPU-second | per pass |",
             "|---|---:|---:|---|"]
    lines += [f"| `{r['source']}` | {_num(r['steady_images_per_second'])} | {_num(r['images_per_cpu_second'])} | "
              f"{r['epoch_images_per_second']} |" for r in rows if r["mode"] == "iterate_only"]
    return lines


def pipeline_explanation(rows: list[dict], cpus: int) -> str:
    """Where the augmented pipeline's time goes, from the rows' own numbers."""
    train = {r["source"]: r for r in rows if r["mode"] == "train"}
    alone = {r["source"]: r for r in rows if r["mode"] == "iterate_only"}

    def ips(row):
        return float(row["steady_images_per_second"])

    def cpu_ms(row):  # CPU milliseconds per image
        return 1000 / float(row["images_per_cpu_second"])

    model, augmented, aug_alone = train["in_memory"], train["tf_data_augmented"], alone["tf_data_augmented"]
    serial = 1 / (1 / ips(model) + 1 / ips(aug_alone))
    layers = {k[len("augment_"):]: ips(v) for k, v in alone.items() if k.startswith("augment_")}
    slowest = sorted(layers.items(), key=lambda kv: kv[1])[:2]
    extra = cpu_ms(augmented) - cpu_ms(model)
    plain_extra = cpu_ms(train["tf_data"]) - cpu_ms(model)
    rest = extra - cpu_ms(aug_alone) - plain_extra
    text = (f"Iterated alone, the augmented pipeline delivers {ips(aug_alone):,.0f} images/s and the plain one "
            f"{ips(alone['tf_data']):,.0f}; the model trains at {ips(model):,.0f} images/s from memory. Done one "
            f"after the other, augmentation and training would give "
            f"1 / (1/{ips(model):,.0f} + 1/{ips(aug_alone):,.0f}) = {serial:,.0f} images/s; prefetch runs them at once, which helps only as far as one of the {cpus} "
            f"core(s) would otherwise idle; measured {ips(augmented):,.0f}. In CPU time per image, training from "
            f"the augmented pipeline costs {cpu_ms(augmented):.2f} ms against {cpu_ms(model):.2f} ms from memory "
            f"({extra:+.2f} ms): the augmentation itself {cpu_ms(aug_alone):.2f} ms (iterated alone), the cached "
            f"tf.data path {plain_extra:+.2f} ms (plain tf.data vs memory), and {rest:+.2f} ms that neither part shows "
            f"alone: the price of running both at once on the same cores, as far as this measures.")
    if slowest:
        text += " Slowest augmentation layers alone: " + ", ".join(f"`{k}` {v:,.0f} images/s" for k, v in slowest) + "."
    return text


def noise_floor(rows: list[dict]) -> str:
    """How far apart repeated measurements of the same thing lie in this run: the bare `model.fit` across
    rounds, and per steady epoch the cores the process kept busy (images/s / images per CPU-second)."""
    per_round = [r for r in rows if r["round"] != "all"]
    bare = [float(r["steady_images_per_second"]) for r in per_round if r["side"] == "bare"]
    cores, cpu = [], []
    for r in per_round:
        wall, work = r["epoch_images_per_second"].split(";")[1:], r["epoch_images_per_cpu_second"].split(";")[1:]
        cores += [float(w) / float(c) for w, c in zip(wall, work)]
        cpu += [float(c) for c in work]
    text = ""
    if len(bare) > 1:
        text = (f"Noise floor: the same bare `model.fit` measured {len(bare)} times in this run gave "
                f"{min(bare):,.0f}–{max(bare):,.0f} images/s ({max(bare) / min(bare) - 1:.0%} apart). ")
    delays = [float(v) for r in per_round for v in r["epoch_first_batch_delay_seconds"].split(";")[1:]]
    stalled = [d for d in delays if d > STALL_SECONDS]
    if delays:
        text += (f"{len(stalled)} of {len(delays)} steady epochs waited more than {STALL_SECONDS:g} s between the "
                 f"epoch's start and its first batch" + (f" (up to {max(stalled):.1f} s, the process idle)"
                                                          if stalled else "") + ". ")
    if cores:
        text += (f"Over the steady epochs of both sides the process kept {min(cores):.2f}–{max(cores):.2f} cores "
                 f"busy (images/s ÷ images per CPU-second) while the work per image moved less "
                 f"({min(cpu):,.0f}–{max(cpu):,.0f} images per CPU-second): wall-clock images/s follow how many "
                 f"cores the process gets, so the CPU-time ratio is the steadier measure of the harness's own cost.")
    return text


def overhead_explanation(tables: dict[str, list[dict]]) -> str:
    fixed = {r["measurement"]: float(r["seconds"]) for r in tables.get("fixed", [])}
    parts = [noise_floor(tables["overhead"])] if "overhead" in tables else []
    if "run_end_of_epoch" in fixed and "mlflow_log_epoch" in fixed:
        parts.append(f"Outside the timed training part, each epoch of a run ends with its checkpoint and MLflow "
                     f"log: {fixed['run_end_of_epoch']:.3f} s per epoch in the measured run, of which one epoch's "
                     f"MLflow `log_batch` is {fixed['mlflow_log_epoch']:.3f} s.")
    if "run_py_to_first_epoch" in fixed and "imports" in fixed:
        parts.append(f"A `python run.py` process reaches its first epoch {fixed['run_py_to_first_epoch']:.1f} s "
                     f"after it starts ({fixed['imports']:.1f} s of it importing TensorFlow/Keras and MLflow), and its "
                     f"first epoch is {fixed.get('run_py_first_epoch_extra', float('nan')):.1f} s longer than the "
                     f"next ones (tracing and compiling the steps); MLflow calls cost "
                     f"{fixed.get('mlflow_per_run', float('nan')):.2f} s per run.")
    return " ".join(p for p in parts if p)


def markdown(folder: Path, *, header: str, cpus: int) -> str:
    tables = read_all(folder)
    out = ["# `xablate bench harness`", "", header, "", *summary_table(tables), ""]
    if "overhead" in tables and "fixed" in tables:
        out += [overhead_explanation(tables), ""]
    if "fixed" in tables:
        out += ["## Fixed per-run costs", "", *fixed_table(tables["fixed"]), ""]
    if "reuse" in tables:
        out += ["## One compile per architecture", "", *reuse_table(tables["reuse"]), "", reuse_explanation(tables["reuse"]), ""]
    if "pipeline" in tables:
        out += ["## Input pipeline", "", *pipeline_table(tables["pipeline"]), "",
                pipeline_explanation(tables["pipeline"], cpus), ""]
    if "backends" in tables:
        out += ["## Keras backends", "", *backends_table(tables["backends"]), ""]
    if "parity" in tables:
        base, ours = tables["parity"]
        out += ["## Builder parity", "",
                f"Parameters: `build_xception()` {int(ours['parameters']):,}, keras.applications.Xception "
                f"{int(base['parameters']):,}. Fastest step instead of median: ratio {_num(ours['ratio_fastest'], 3)}.",
                ""]
    out += ["## Segment convolution", "",
            "The train-step cost of the segment convolution across the spectrum has its own benchmark, "
            "[`xablate bench segments`](segments.md); it is not rerun here.", ""]
    return "\n".join(out)
