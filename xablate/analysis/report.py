"""Writes a study's figures and tables, and the verdict, with provenance sidecars; finds stale outputs.

Every output file `<name>.<ext>` gets `<name>.json` beside it: the tracking URI (relative to the project
when the store lives in it), the query, and the runs it was drawn from with their status. An output is stale
when the same query now selects other runs, or the same runs with another status (a RUNNING run finished).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from xablate.analysis.figures import capacity_figure, curves_figure, spectrum_figure
from xablate.analysis.store import comparable_runs, history_frame, runs_frame
from xablate.paths import project_root
from xablate.analysis.tables import to_latex, to_markdown, variant_table
from xablate.analysis.verdicts import verdict_table
from xablate.tracking.store import resolve_tracking_uri


@dataclass(frozen=True)
class StudySpec:
    """How a study is read: the axis it sweeps, its baseline value, and its main figure."""

    axis: str
    baseline: object
    figure: str  # "curves" (Fig. 9/10 style) or "spectrum"
    title: str


STUDIES = {
    "fig9_residual": StudySpec("residual", True, "curves", "Fig. 9 — residual connections"),
    "fig10_intermediate_act": StudySpec("intermediate_act", "none", "curves",
                                        "Fig. 10 — activation between depthwise and pointwise op"),
    "spectrum": StudySpec("segments", "depthwise", "spectrum", "The segment spectrum"),
}
VERDICT = "verdict"


def portable_uri(uri: str) -> str:
    """A SQLite store inside the project is recorded relative to it, so a clone elsewhere finds it."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if path.is_relative_to(project_root()):
            return f"sqlite:///{path.relative_to(project_root()).as_posix()}"
    return uri


def local_uri(recorded: str) -> str:
    """The inverse of portable_uri on this machine."""
    if recorded.startswith("sqlite:///") and not recorded.startswith("sqlite:////"):
        return f"sqlite:///{project_root() / recorded[len('sqlite:///'):]}"
    return recorded


def selected_runs(uri: str, study: str) -> pd.DataFrame:
    """The runs a study's outputs are drawn from (comparable_runs of the study's experiment)."""
    return comparable_runs(runs_frame(uri, study=study))


def _sidecar(path: Path, uri: str, query: dict, runs: pd.DataFrame) -> None:
    path.with_suffix(".json").write_text(json.dumps({
        "output": path.name, "tracking_uri": portable_uri(uri), "query": query,
        "runs": dict(sorted(zip(runs["run_id"], runs["status"]))),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }, indent=2))


def _save_figure(fig, path: Path, uri, query, runs) -> list[Path]:
    paths = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    _sidecar(path, uri, query, runs)
    return paths


def _save_table(table: pd.DataFrame, path: Path, uri, query, runs) -> list[Path]:
    table.to_csv(path.with_suffix(".csv"), index=False)
    path.with_suffix(".md").write_text(to_markdown(table))
    path.with_suffix(".tex").write_text(to_latex(table))
    _sidecar(path, uri, query, runs)
    return [path.with_suffix(s) for s in (".csv", ".md", ".tex")]


def study_figures(study: str, runs: pd.DataFrame, history: pd.DataFrame) -> dict:
    """A study's figures by output name: its main figure (Fig. 9/10 curves over FINISHED runs, baseline
    first, or the spectrum) and the capacity figure. Used by `xablate figures` and the notebooks alike."""
    spec = STUDIES[study]
    finished = runs[runs["status"] == "FINISHED"]
    if spec.figure == "curves":
        order = [spec.baseline] + [v for v in dict.fromkeys(runs[spec.axis]) if v != spec.baseline]
        main = curves_figure(history[history["run_id"].isin(finished["run_id"])], spec.axis, title=spec.title,
                             order=[v for v in order if v in set(finished[spec.axis])])
    else:
        main = spectrum_figure(runs, title=spec.title)
    return {study: main, "capacity": capacity_figure(runs, title=f"{spec.title}: accuracy vs capacity")}


def write_study(uri: str | None, study: str, out: Path) -> list[Path]:
    """Figures and table of one study into `out/<study>/`; returns the files written."""
    uri = resolve_tracking_uri(uri)
    spec = STUDIES[study]
    runs = selected_runs(uri, study)
    finished = runs[runs["status"] == "FINISHED"]
    if finished.empty:
        print(f"xablate: study {study!r} has no finished runs in {uri}; nothing written for it")
        return []
    history = history_frame(uri, runs)
    query = {"study": study}
    folder = Path(out) / study
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in study_figures(study, runs, history).items():
        written += _save_figure(fig, folder / name, uri, query, runs)
    table = variant_table(runs, spec.axis, spec.baseline)
    written += _save_table(table, folder / "table", uri, query, runs)
    return written


def write_verdict(uri: str | None, out: Path, studies=tuple(STUDIES)) -> list[Path]:
    uri = resolve_tracking_uri(uri)
    frames, used = {}, []
    for study in studies:
        runs = selected_runs(uri, study)
        if not runs.empty:
            frames[study] = (runs, history_frame(uri, runs, metrics=["val_accuracy"]))
            used.append(runs)
    table = verdict_table(frames)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / VERDICT
    table.to_csv(path.with_suffix(".csv"), index=False)
    lines = ["| study | claim | verdict | evidence |", "|---|---|---|---|"]
    lines += [f"| {r.study} | {r.claim} | **{r.verdict}** | {r.evidence} |" for r in table.itertuples()]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    _sidecar(path, uri, {"studies": list(frames)}, pd.concat(used) if used else runs_frame(uri, study="-"))
    return [path.with_suffix(".csv"), path.with_suffix(".md")]


def stale_outputs(uri: str | None, out: Path) -> list[tuple[Path, str]]:
    """Outputs under `out` whose query now selects other runs, or the same runs in another status:
    (sidecar, reason)."""
    stale = []
    for sidecar in sorted(Path(out).rglob("*.json")):
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "runs" not in meta or "query" not in meta:
            continue
        store = resolve_tracking_uri(uri) if uri else local_uri(meta["tracking_uri"])
        if store.startswith("sqlite:///") and not Path(store[len("sqlite:///"):]).exists():
            stale.append((sidecar, f"its store {store} is not on this machine"))
            continue
        studies = meta["query"].get("studies") or [meta["query"].get("study")]
        current = {}
        for study in studies:
            runs = selected_runs(store, study)
            current.update(zip(runs["run_id"], runs["status"]))
        recorded = meta["runs"]
        added = set(current) - set(recorded)
        changed = {r for r in set(current) & set(recorded) if current[r] != recorded[r]}
        gone = set(recorded) - set(current)
        if added or changed or gone:
            stale.append((sidecar, f"{len(added)} new, {len(changed)} changed status, {len(gone)} no longer "
                                   f"selected run(s)"))
    return stale


def regenerate(uri: str | None, out: Path, studies=tuple(STUDIES)) -> list[Path]:
    """The figures and tables of `studies`, and the verdict over every study in the store."""
    written = []
    for study in studies:
        written += write_study(uri, study, out)
    return written + write_verdict(uri, out)
