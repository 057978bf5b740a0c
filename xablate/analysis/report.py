"""Writes a study's figures and tables, and the verdict, with provenance sidecars; finds stale outputs.

Every output file `<name>.<ext>` gets `<name>.json` beside it: the tracking URI, the query and the run ids it
was drawn from. An output is stale when the store now holds runs its sidecar does not list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from xablate.analysis.figures import capacity_figure, curves_figure, spectrum_figure
from xablate.analysis.store import history_frame, runs_frame
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


def _sidecar(path: Path, uri: str, query: dict, run_ids: list[str]) -> None:
    path.with_suffix(".json").write_text(json.dumps({
        "output": path.name, "tracking_uri": uri, "query": query, "run_ids": sorted(run_ids),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }, indent=2))


def _save_figure(fig, path: Path, uri, query, run_ids) -> list[Path]:
    paths = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    _sidecar(path, uri, query, run_ids)
    return paths


def _save_table(table: pd.DataFrame, path: Path, uri, query, run_ids) -> list[Path]:
    table.to_csv(path.with_suffix(".csv"), index=False)
    path.with_suffix(".md").write_text(to_markdown(table))
    path.with_suffix(".tex").write_text(to_latex(table))
    _sidecar(path, uri, query, run_ids)
    return [path.with_suffix(s) for s in (".csv", ".md", ".tex")]


def write_study(uri: str | None, study: str, out: Path) -> list[Path]:
    """Figures and table of one study into `out/<study>/`; returns the files written."""
    uri = resolve_tracking_uri(uri)
    spec = STUDIES[study]
    runs = runs_frame(uri, study=study)
    if runs.empty:
        return []
    history = history_frame(uri, runs)
    run_ids = runs["run_id"].tolist()
    query = {"study": study}
    folder = Path(out) / study
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    finished = runs[runs["status"] == "FINISHED"]
    if spec.figure == "curves":
        order = [spec.baseline] + [v for v in dict.fromkeys(runs[spec.axis]) if v != spec.baseline]
        fig = curves_figure(history[history["run_id"].isin(finished["run_id"])], spec.axis, title=spec.title,
                            order=[v for v in order if v in set(finished[spec.axis])])
        written += _save_figure(fig, folder / study, uri, query, run_ids)
    else:
        written += _save_figure(spectrum_figure(runs, title=spec.title), folder / study, uri, query, run_ids)
    written += _save_figure(capacity_figure(runs, title=f"{spec.title}: accuracy vs capacity"),
                            folder / "capacity", uri, query, run_ids)
    table = variant_table(runs, spec.axis, spec.baseline)
    written += _save_table(table, folder / "table", uri, query, run_ids)
    return written


def write_verdict(uri: str | None, out: Path, studies=tuple(STUDIES)) -> list[Path]:
    uri = resolve_tracking_uri(uri)
    frames, run_ids = {}, []
    for study in studies:
        runs = runs_frame(uri, study=study)
        if not runs.empty:
            frames[study] = (runs, history_frame(uri, runs, metrics=["val_accuracy"]))
            run_ids += runs["run_id"].tolist()
    table = verdict_table(frames)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / VERDICT
    table.to_csv(path.with_suffix(".csv"), index=False)
    lines = ["| study | claim | verdict | evidence |", "|---|---|---|---|"]
    lines += [f"| {r.study} | {r.claim} | **{r.verdict}** | {r.evidence} |" for r in table.itertuples()]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    _sidecar(path, uri, {"studies": list(frames)}, run_ids)
    return [path.with_suffix(".csv"), path.with_suffix(".md")]


def stale_outputs(uri: str | None, out: Path) -> list[tuple[Path, int]]:
    """Sidecars under `out` whose query now matches runs they do not include: (sidecar, missing run count)."""
    stale = []
    for sidecar in sorted(Path(out).rglob("*.json")):
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "run_ids" not in meta or "query" not in meta:
            continue
        store = uri or meta["tracking_uri"]
        studies = meta["query"].get("studies") or [meta["query"].get("study")]
        current = set()
        for study in studies:
            current |= set(runs_frame(store, study=study)["run_id"])
        missing = current - set(meta["run_ids"])
        if missing:
            stale.append((sidecar, len(missing)))
    return stale


def regenerate(uri: str | None, out: Path, studies=tuple(STUDIES)) -> list[Path]:
    """The figures and tables of `studies`, and the verdict over every study in the store."""
    written = []
    for study in studies:
        written += write_study(uri, study, out)
    return written + write_verdict(uri, out)
