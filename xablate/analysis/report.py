"""Writes a study's figures and tables, and the verdict, with provenance sidecars; finds stale outputs.

Every output file `<name>.<ext>` gets `<name>.json` beside it: the tracking URI (relative to the project
when the store lives in it), the query, and the runs it was drawn from with their status. An output is stale
when the same query now selects other runs, or the same runs with another status (a RUNNING run finished).
"""

from __future__ import annotations

import xablate.schema  # noqa: F401  (registers model/_builder with Hydra's ConfigStore before any compose)

import dataclasses
import json
import sys
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import pandas as pd


from xablate.analysis.store import (HISTORY_MEASURES, Selection, history_frame, ordered, runs_frame, select_runs,
                                    studies_in_store)
from xablate.config import short_name
from xablate.analysis.destination import local_uri
from xablate.paths import portable_uri
from xablate.studies import METRICS, load_study
from xablate.tracking.store import resolve_tracking_uri, store_missing


VERDICT = "verdict"
HEADLINE = "headline"
SENSITIVITY = "sensitivity"


@lru_cache(maxsize=1)
def config_defaults() -> dict:
    """The default config's flattened values (`python run.py` with no arguments): the baseline of an axis a
    study does not declare one for."""
    from xablate.config import compose_job, flatten

    return flatten(compose_job(resolve=False))


def selected_runs(uri: str, study: str, sweep: str | None = None) -> Selection:
    """The runs a study's outputs are drawn from (its main configuration, one run per variant and replicate),
    and how to read them; `sweep`: only that sweep's runs."""
    from xablate.analysis.plans import crossed_choices, with_recorded_plan

    declared = with_recorded_plan(uri, load_study(study))
    return select_runs(runs_frame(uri, study=study, sweep=sweep), declared, config_defaults,
                       crossed_choices(uri, declared))


def beside_selection(uri: str, selection: Selection) -> Selection | None:
    """The study drawn beside this one in its trend figure (`analysis.beside`), when it has finished runs in the
    store and varies the same axes; else None (the figure shows this study alone)."""
    name = selection.study.beside
    if not name:
        return None
    other = selected_runs(uri, name)
    if other.axes != selection.axes or not (other.runs["status"] == "FINISHED").any():
        return None
    return other


def _sidecar(path: Path, uri: str, query: dict, runs: pd.DataFrame) -> None:
    path.with_suffix(".json").write_text(json.dumps({
        "output": path.name, "tracking_uri": portable_uri(uri), "query": query,
        "runs": dict(sorted(zip(runs["run_id"], runs["status"]))),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }, indent=2))


def _save_figure(fig, path: Path, uri, query, runs) -> list[Path]:
    paths = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for p in paths:  # no creation date: a figure redrawn from the same runs is the same file
        fig.savefig(p, dpi=150, bbox_inches="tight", metadata={"CreationDate": None} if p.suffix == ".pdf" else None)
    _sidecar(path, uri, query, runs)
    return paths


def _save_table(table: pd.DataFrame, path: Path, uri, query, runs) -> list[Path]:
    from xablate.analysis.tables import to_latex, to_markdown

    table.to_csv(path.with_suffix(".csv"), index=False)
    path.with_suffix(".md").write_text(to_markdown(table))
    path.with_suffix(".tex").write_text(to_latex(table))
    _sidecar(path, uri, query, runs)
    return [path.with_suffix(s) for s in (".csv", ".md", ".tex")]


def study_figures(selection: Selection, history: pd.DataFrame, beside: Selection | None = None,
                  registered: dict | None = None) -> dict:
    """A study's figures by output name, chosen by its axes: one categorical axis (or none) -> Fig. 9/10-style
    curves; one ordered numeric axis (segments, a width, a learning rate) -> the metric against it with
    parameters and FLOPs below (and the `beside` study's, see beside_selection), plus the curves; two or more
    axes -> a heatmap of the metric, plus the curves; always the capacity figure. Used by `xablate figures` and
    the notebook alike."""
    from xablate.analysis.figures import (capacity_figure, claims_figure, curves_figure, heatmap_figure,  # matplotlib:
                                          is_ordered_axis, metric_label, sensitivity_figure, trend_figure)  # drawing only
    from xablate.analysis.sensitivity import own_choices
    from xablate.analysis.verdicts import verdict_tables

    study, metric = selection.study, selection.metric
    finished = selection.runs[selection.runs["status"] == "FINISHED"]
    seeds = finished.groupby("variant").size()
    n = f"n={seeds.min()}–{seeds.max()}" if len(seeds) and seeds.min() != seeds.max() else f"n={seeds.max() if len(seeds) else 0}"
    title = f"{study.title} ({n} seeds per variant)"
    curves = curves_figure(history[history["run_id"].isin(finished["run_id"])],
                           [v for v in selection.variants if v in set(finished["variant"])], title=title,
                           labels=tuned_labels(selection), final=selection)
    values = ordered(selection.runs[selection.axes[0]]) if selection.axes else []
    if len(selection.axes) >= 2:
        main = {study.name: heatmap_figure(selection, metric, title=f"{study.title}: {metric_label(metric)}, {n}"),
                "curves": curves}
    elif selection.axes and is_ordered_axis(values, selection.axes[0]):
        # with a study beside it, each series' legend says its own n
        main = {study.name: trend_figure(selection, metric, title=title if beside is None else study.title,
                                         beside=beside), "curves": curves}
    else:
        main = {study.name: curves}
    main["capacity"] = capacity_figure(selection, metric,
                                       title=f"{title}: {metric_label(metric)} vs capacity, mean ± 95 % CI")
    if study.claims and not finished.empty:  # each comparison's difference, its CI and the claim's margin
        # a copy; read in the verdict's Holm families when `registered` is given (registration.registered_labels)
        _, rows = verdict_tables([(dataclasses.replace(selection), history)], registered, uncertainty=False)
        if not rows.empty:
            main["claims"] = claims_figure(rows, title=f"{study.title}: the claims' comparisons")
    if study.variance:  # each source of variance's share of the spread (xablate.analysis.variance)
        from xablate.analysis.figures import variance_figure
        from xablate.analysis.variance import variance_table

        table = variance_table(selection)
        if len(table) and table["share"].notna().any():
            main["variance"] = variance_figure(table, metric, title=f"{study.title}: where the spread comes from")
    if selection.tuning is not None and study.tune is not None:  # every tuning trial against each tuned key
        main[SENSITIVITY] = sensitivity_figure(*sensitivity_data(selection), study.tune.keys, study.tune.metric,
                                               own_choices(selection),
                                               title=f"{study.name}: tuning sensitivity, up to "
                                                     f"{study.tune.search.trials if study.tune.search else len(study.tune.values)}"
                                                     f" settings per variant at the tune stage's budget")
    return main


def sensitivity_data(selection: Selection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per tuning run, one row per variant and tuned setting) of a tuned study."""
    from xablate.analysis.sensitivity import trial_table, tuning_runs

    seeds = tuning_runs(selection)
    return seeds, trial_table(seeds, selection.study.tune.keys)


def tuned_labels(selection: Selection) -> dict[str, str]:
    """A tuned study's legend names: each variant with the value its tuning chose (e.g. `… · lr 0.003`)."""
    tune = selection.study.tune
    if tune is None or "params" not in selection.runs:
        return {}
    labels = {}
    for variant, params in selection.runs.groupby("variant")["params"]:
        for key in tune.keys:
            values = sorted({str(p.get(key)) for p in params if isinstance(p, dict) and p.get(key) is not None})
            if values:
                labels[variant] = f"{labels.get(variant, variant)} · {short_name(key)} {'/'.join(values)}"
    return labels


def write_study(uri: str | None, study: str, out: Path, sweep: str | None = None) -> list[Path]:
    """Figures and table of one study (or one sweep of it) into `out/<study>/` (`out/<study>/sweep-<id>/`);
    returns the files written."""
    from xablate.analysis.tables import variant_table

    uri = resolve_tracking_uri(uri)
    selection = selected_runs(uri, study, sweep)
    runs = selection.runs
    if (runs["status"] == "FINISHED").sum() == 0:
        print(f"xablate: study {study!r} has no finished runs in {uri}; nothing written for it")
        return []
    # the curves' metrics, and the data loss a convergence claim reads (with_history_measures)
    history = history_frame(uri, runs, metrics=["loss", "accuracy", "val_loss", "val_accuracy", "data_loss"],
                            axes=selection.axes)
    query = {"study": study, **({"sweep": sweep} if sweep else {})}
    folder = Path(out) / study / (f"sweep-{sweep[:8]}" if sweep else "")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    beside = None if sweep else beside_selection(uri, selection)
    # a staged study's table reads its pilot (rank agreement) and its tuning runs (flatness, costs) too
    extra = {**({"pilot": True} if selection.pilot is not None else {}),
             **({"tuning": True} if selection.tuning is not None else {})}
    read = pd.concat([runs, *(f for f in (selection.pilot, selection.tuning) if f is not None)])
    from xablate.analysis.registration import registered_labels

    for name, fig in study_figures(selection, history, beside, registered_labels(uri, selection)).items():
        if beside is not None and name == study:  # the trend figure draws the other study's runs too
            written += _save_figure(fig, folder / name, uri, {**query, "beside": beside.study.name},
                                    pd.concat([runs, beside.runs]))
        elif name == SENSITIVITY:  # drawn from the tuning runs; its data beside it, one row per trial
            written += _save_figure(fig, folder / name, uri, {**query, **extra}, read)
            sensitivity_data(selection)[1].drop(columns="setting").to_csv(folder / f"{name}.csv", index=False)
            written.append(folder / f"{name}.csv")
        else:
            written += _save_figure(fig, folder / name, uri, query, runs)
    written += _save_table(variant_table(selection), folder / "table", uri, {**query, **extra}, read)
    if selection.study.variance:  # the decomposition's numbers beside its figure
        from xablate.analysis.variance import variance_table

        variance_table(selection).to_csv(folder / "variance.csv", index=False)
        written.append(folder / "variance.csv")
    return written


def write_verdict(uri: str | None, out: Path, studies: list[str]) -> list[Path]:
    """The declared claims of `studies` against their runs: verdict.md (one row per claim: its outcome and
    evidence) and verdict.csv (one row per comparison, every number it rests on)."""
    from xablate.analysis.registration import registered_labels
    from xablate.analysis.verdicts import verdict_tables

    uri = resolve_tracking_uri(uri)
    pairs, used = [], []
    for study in studies:
        try:
            selection = selected_runs(uri, study)
        except ValueError as error:  # its study file is broken: the verdict of the others still stands
            print(f"xablate: {study} left out of the verdict: {error}", file=sys.stderr)
            continue
        if not selection.runs.empty and selection.study.claims:
            history = history_frame(uri, selection.runs, metrics=HISTORY_MEASURES, axes=selection.axes)
            pairs.append((selection, history))
            used.append(selection.runs)
    registered = {key: label for selection, _ in pairs for key, label in registered_labels(uri, selection).items()}
    table, comparisons = verdict_tables(pairs, registered)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / VERDICT
    comparisons.to_csv(path.with_suffix(".csv"), index=False)  # tidy: one row per comparison
    lines = ["| study | claim | outcome | registration | evidence |", "|---|---|---|---|---|"]
    lines += [_verdict_line(r) for r in table.itertuples()]
    lines += ["", "Outcomes: reproduced (superiority, two-sided at α = 0.05), non-inferior (one-sided at α/2 = "
              "0.025), equivalent (TOST at ±margin, α = 0.05), contradicted, not reproduced (every comparison "
              "decided, one within the margin of the variant named), inconclusive (some comparison undecided); in bold on pre-registered rows only (an exploratory row is computed alike, not "
              "emphasised). Every Δ and d is variant − baseline in the metric's units (for a loss, lower is "
              "better). Paired by replicate (seed, split); Holm across a family (below: a study's pre-registered "
              "comparisons together, an exploratory claim's alone; at a sequential look, those still undecided); diverged "
              "runs scored (accuracy at chance, loss at the worst reached); d: paired Cohen's d_z; power: of the "
              "test done, against the claim's margin or declared smallest effect, at the observed spread; P(improvement): "
              "the chance that a run of the variant beats a run of the baseline, ties half (rliable's probability of "
              "improvement), with its bootstrap 95 % interval; seeds × test images bootstrap: the interval of Δ with "
              "both the seeds and the test images resampled, where the runs kept per-image predictions. "
              "verdict.csv holds every comparison (Δ = variant − baseline in the metric's units, its CI at the level in "
              "the confidence column (95 %, or a sequential look's nominal level), p, "
              "Holm p, TOST p, d, power, the sequential look it was read at (look_number: 0 before the first look; "
              "looks_planned; next_look_n while more seeds follow; empty in a fixed design), registration); the "
              "rules: xablate/analysis/verdicts.py."]
    families = comparisons.groupby("study", sort=False)["holm_family"].unique() if len(comparisons) else {}
    if len(families):
        lines += ["", "Holm families: " + "; ".join(f"{study}: {', '.join(sorted(names))}"
                                                    for study, names in families.items()) + "."]
    measured = sorted(set(table["metric"])) if len(table) else []  # each metric the rows read, defined
    if measured:
        lines += ["", "Metrics: " + "; ".join(f"{m}: {METRICS[m][0]}" for m in measured if m in METRICS) + "."]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    _sidecar(path, uri, {"studies": [p[0].study.name for p in pairs]},
             pd.concat(used) if used else runs_frame(uri, study="-"))
    return [path.with_suffix(".csv"), path.with_suffix(".md"), *write_headline(uri, out, pairs, table, comparisons)]


def _verdict_line(row) -> str:
    """A claim's row of verdict.md: its outcomes in bold only when the claim was pre-registered."""
    from xablate.analysis.registration import PRE_REGISTERED

    emphasis = str(row.registration).startswith(PRE_REGISTERED)
    verdict = f"**{row.verdict}**" if emphasis else row.verdict
    evidence = row.evidence if emphasis else row.evidence.replace("**", "")
    return f"| {row.study} | {row.claim} | {verdict} | {row.registration} | {evidence} |"


def data_description(runs: pd.DataFrame) -> str:
    """What a study's runs trained on, from their params: the source, the training subset and the epochs (when
    the runs share one value each), e.g. `fashion_mnist, 10,000 images × 5 epochs`."""
    params = [p for p in runs.get("params", pd.Series(dtype=object)) if isinstance(p, dict)]

    def one(key):
        values = {str(p.get(key)) for p in params} - {"None"}
        return values.pop() if len(values) == 1 else None

    source, limit, epochs = one("data.source"), one("data.limit_train"), one("train.epochs")
    parts = [part for part in (source, f"{int(limit):,} images" if limit and limit.isdigit() else None,
                               f"{epochs} epochs" if epochs else None) if part]
    return ", ".join(parts)


def write_headline(uri: str, out: Path, pairs: list, table: pd.DataFrame, comparisons: pd.DataFrame) -> list[Path]:
    """headline.md: the pre-registered claims of the verdict (xablate.analysis.headline), each study's cost."""
    from xablate.analysis.headline import headline_markdown
    from xablate.analysis.sensitivity import stage_costs

    selections = [selection for selection, _ in pairs]
    costs = {s.study.name: stage_costs(s) for s in selections}
    data = {s.study.name: data_description(s.runs) for s in selections}
    path = Path(out) / HEADLINE
    supersedes = {s.study.name: s.study.supersedes for s in selections if s.study.supersedes}
    path.with_suffix(".md").write_text(headline_markdown(table, comparisons, costs, data, supersedes))
    read = [f for s in selections for f in (s.runs, s.pilot, s.tuning) if f is not None and len(f)]
    _sidecar(path, uri, {"studies": [s.study.name for s in selections], "pilot": True, "tuning": True},
             pd.concat(read) if read else runs_frame(uri, study="-"))
    return [path.with_suffix(".md")]


def stale_outputs(uri: str | None, out: Path) -> list[tuple[Path, str]]:
    """Outputs under `out` whose query now selects other runs, or the same runs in another status:
    (sidecar, reason)."""
    stale, selections_of = [], {}  # a study's selection read once, however many of its outputs record it

    def selection_of(store: str, study: str, sweep: str | None) -> Selection:
        if (store, study, sweep) not in selections_of:
            selections_of[store, study, sweep] = selected_runs(store, study, sweep)
        return selections_of[store, study, sweep]

    for sidecar in sorted(Path(out).rglob("*.json")):
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "runs" not in meta or "query" not in meta:
            continue
        store = resolve_tracking_uri(uri) if uri else local_uri(meta["tracking_uri"])
        if store_missing(store):
            stale.append((sidecar, f"its store {store} is not on this machine"))
            continue
        query = meta["query"]
        studies = query["studies"] if "studies" in query else [query.get("study"), *filter(None, [query.get("beside")])]
        current = {}
        try:
            selections = [selection_of(store, study, query.get("sweep")) for study in studies]
        except ValueError as error:  # a broken study file: its outputs cannot be checked, the others can
            stale.append((sidecar, f"not checked: {error}"))
            continue
        for selection in selections:
            runs = selection.runs
            if query.get("pilot") and selection.pilot is not None:
                runs = pd.concat([runs, selection.pilot])
            if query.get("tuning") and selection.tuning is not None:
                runs = pd.concat([runs, selection.tuning])
            current.update(zip(runs["run_id"], runs["status"]))
        recorded = meta["runs"]
        added = set(current) - set(recorded)
        changed = {r for r in set(current) & set(recorded) if current[r] != recorded[r]}
        gone = set(recorded) - set(current)
        if added or changed or gone:
            stale.append((sidecar, f"{len(added)} new, {len(changed)} changed status, {len(gone)} no longer "
                                   f"selected run(s)"))
    return stale


def regenerate(uri: str | None, out: Path, studies: list[str] | None = None, verdict: bool = True) -> list[Path]:
    """The figures and tables of `studies` (default: every study in the store with a finished run), and (with
    `verdict`) the verdict over the studies that declare claims."""
    studies = studies if studies is not None else studies_in_store(uri)
    written = []
    for study in studies:
        try:
            written += write_study(uri, study, out)
        except ValueError as error:  # its study file is broken: said, and the other studies drawn
            print(f"xablate: {study} not drawn: {error}", file=sys.stderr)
    return written + (write_verdict(uri, out, studies_in_store(uri)) if verdict else [])  # it covers every study


def to_redraw(out: Path, studies: list[str], stale: list[tuple[Path, str]]) -> tuple[list[str], bool]:
    """(the studies whose outputs under `out` are missing or stale, whether the verdict is): what a `figures`
    that redraws only what changed writes."""
    out = Path(out)
    stale_parts = {sidecar.relative_to(out).parts for sidecar, _ in stale}
    studies = [s for s in studies if not (out / s / "table.json").exists() or any(p[0] == s for p in stale_parts)]
    verdict = (bool(studies) or any(len(p) == 1 for p in stale_parts)
               or not all((out / f"{name}.json").exists() for name in (VERDICT, HEADLINE)))
    return studies, verdict
