"""A study's conclusion on its sweep's parent run, so the MLflow UI shows it beside the runs.

On the study's latest sweep parent (tag xablate.role=sweep), or the one given:
  metrics   `<metric>.<variant>.mean`, `.low`, `.high` for every claimed metric (the study's reported metric when
            it claims nothing): mean and 95 % CI over seeds, exactly variant_table's numbers (the variant label
            with characters MLflow refuses in a metric name as `_`: intermediate_act=elu -> intermediate_act_elu)
  artifacts summary/variants.csv and .md (those rows, exact labels, with seeds, diverged, failed and the paired
            difference from the baseline), summary/verdict.md and .csv (its claims), summary/figures/ (the
            study's figures and table with their provenance sidecars)
  note      the run's description: variants.md and the verdict (only a description this module wrote is
            replaced)

The numbers are the study's as it stands (xablate.analysis.report.selected_runs: every sweep of it, one run per
variant x replicate); the statistics are xablate.analysis' (variant_table), the figures and verdict its
write_study and write_verdict, drawn into a temporary folder, never into results/. The Hydra callback runs it
at the end of each sweep; a sweep without a finished run costs one query.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from pathlib import Path

import pandas as pd

SUMMARY_DIR = "summary"
STATS = ("mean", "low", "high")
ROW_COLUMNS = ["metric", "variant", "seeds", "diverged", "failed", "mean", "low", "high", "diff_mean", "diff_low",
               "diff_high", "p_holm"]
NOTE_TAG = "mlflow.note.content"
NOTE_MARK = "<!-- xablate.tracking.parent_summary -->"
NOTE_LIMIT = 7500  # MLflow keeps tag values up to 8000 characters


def metric_key(metric: str, variant: str, stat: str) -> str:
    """The parent's metric for one statistic of one variant: `test_accuracy.intermediate_act_elu.mean`."""
    return f"{metric}.{re.sub(r'[^A-Za-z0-9_.-]+', '_', variant).strip('_')}.{stat}"


def latest_sweep_parent(client, experiment_id: str):
    """The experiment's newest sweep parent run, or None."""
    found = client.search_runs([experiment_id], "tags.`xablate.role` = 'sweep'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def claimed_metrics(study) -> list[str]:
    """The study's claimed metrics, in claim order (empty: it claims nothing)."""
    return list(dict.fromkeys(c.metric for c in study.claims))


def variant_rows(uri: str, study: str) -> pd.DataFrame:
    """One row per claimed metric x variant: variant_table's numbers (ROW_COLUMNS)."""
    from xablate.analysis.report import selected_runs
    from xablate.analysis.store import HISTORY_MEASURES, history_frame, with_history_measures
    from xablate.analysis.tables import variant_table

    selection = selected_runs(uri, study)
    metrics = claimed_metrics(selection.study) or [selection.metric]
    if any(m not in selection.runs.columns for m in metrics):  # train_loss_auc: from the runs' loss curves
        history = history_frame(uri, selection.runs, metrics=HISTORY_MEASURES, axes=selection.axes)
        selection.runs = with_history_measures(selection.runs, history)
    tables = [variant_table(selection, metric).assign(metric=metric) for metric in metrics]
    return pd.concat(tables, ignore_index=True)[ROW_COLUMNS] if tables else pd.DataFrame(columns=ROW_COLUMNS)


def rows_markdown(rows: pd.DataFrame) -> str:
    from xablate.analysis.tables import markdown_cell

    def number(value) -> str:
        return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"

    lines = ["| metric | variant | seeds | diverged | failed | mean [95 % CI] | Δ vs baseline [95 % CI] | Holm p |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows.itertuples():
        interval = number(r.mean) + ("" if math.isnan(r.low) else f" [{number(r.low)}, {number(r.high)}]")
        diff = number(r.diff_mean) + ("" if math.isnan(r.diff_low) else f" [{number(r.diff_low)}, {number(r.diff_high)}]")
        lines.append(f"| {markdown_cell(r.metric)} | {markdown_cell(r.variant)} | {r.seeds} | {r.diverged} | "
                     f"{r.failed} | {interval} | {diff} | {'–' if math.isnan(r.p_holm) else f'{r.p_holm:.3g}'} |")
    return "\n".join(lines) + "\n"


def _draw(uri: str, study, out: Path) -> None:
    """The study's figures and table (out/<study>/) and, when it claims something, its verdict (out/verdict.*)."""
    import contextlib
    import io

    from xablate.analysis.report import write_study, write_verdict

    with contextlib.redirect_stdout(io.StringIO()):  # their progress lines belong to `xablate figures`
        write_study(uri, study.name, out)
        if study.claims:
            write_verdict(uri, out, [study.name])


def summarize_parent(uri: str, study: str, parent_id: str | None = None, figures: Path | None = None) -> str | None:
    """Logs the study's summary on its sweep parent (`parent_id`, else the latest); the parent's id, or None when
    there is nothing to summarise (no such study or parent, or no finished run under the parent).

    `figures`: a folder laid out as `xablate figures` writes it (<figures>/<study>/…, <figures>/verdict.*) whose
    files are logged; None: they are drawn into a temporary folder."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from xablate.studies import load_study

    client = MlflowClient(uri)
    if parent_id is None:
        experiment = client.get_experiment_by_name(study)
        parent = latest_sweep_parent(client, experiment.experiment_id) if experiment else None
        if parent is None:
            return None
        parent_id = parent.info.run_id
    else:
        parent = client.get_run(parent_id)
    finished = client.search_runs([parent.info.experiment_id], max_results=1, filter_string=(
        f"tags.`mlflow.parentRunId` = '{parent_id}' AND attributes.status = 'FINISHED'"))
    if not finished:
        return None
    spec = load_study(study)
    rows = variant_rows(uri, study)
    now = int(time.time() * 1000)
    metrics = [Metric(metric_key(r.metric, r.variant, stat), float(getattr(r, stat)), now, 0)
               for r in rows.itertuples() for stat in STATS if not math.isnan(getattr(r, stat))]
    for start in range(0, len(metrics), 1000):  # MLflow's batch limit
        client.log_batch(parent_id, metrics=metrics[start:start + 1000])
    with tempfile.TemporaryDirectory(prefix="xablate-summary-") as scratch:
        folder = Path(scratch) / SUMMARY_DIR
        folder.mkdir()
        rows.to_csv(folder / "variants.csv", index=False)
        (folder / "variants.md").write_text(rows_markdown(rows))
        drawn = Path(figures) if figures is not None else Path(scratch) / "drawn"
        if figures is None:
            _draw(uri, spec, drawn)
        if (drawn / study).is_dir():
            client.log_artifacts(parent_id, str(drawn / study), f"{SUMMARY_DIR}/figures")
        for name in ("verdict.md", "verdict.csv"):
            if (drawn / name).is_file():
                client.log_artifact(parent_id, str(drawn / name), SUMMARY_DIR)
        client.log_artifacts(parent_id, str(folder), SUMMARY_DIR)
        verdict = (drawn / "verdict.md").read_text() if (drawn / "verdict.md").is_file() else ""
    note = parent.data.tags.get(NOTE_TAG)
    if note is None or note.startswith(NOTE_MARK):
        text = f"{NOTE_MARK}\n**{spec.title}**: per variant, mean [95 % CI] over seeds\n\n{rows_markdown(rows)}"
        if verdict:
            text += f"\n**Verdict**\n\n{verdict}"
        client.set_tag(parent_id, NOTE_TAG, text if len(text) <= NOTE_LIMIT else
                       text[:NOTE_LIMIT] + f"\n\n… (see {SUMMARY_DIR}/ in the artifacts)")
    return parent_id
