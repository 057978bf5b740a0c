"""`xablate ui --study S`: the MLflow UI's view of a study's conclusion — its final-stage runs, grouped by variant,
its claimed metrics as columns (each group's row shows the variant's mean), sorted by the first.

MLflow 3.17's runs page reads only its search facets from the URL (searchFilter, orderByKey, orderByAsc,
startTime, lifecycleFilter, modelVersionFilter, datasetsFilter); grouping and columns are per-browser state. A
*saved view* carries both: the experiment tag `mlflow.sharedViewState.<key>` holding
{name, createdAt, updatedAt, state: JSON of the facets and the table state}, opened by
`#/experiments/<id>/runs?viewStateShareKey=<key>` (the UI ignores the view when the URL also names a facet) and
listed in the page's saved-views menu. `save_study_view` writes that tag to the store being served (a copy, for
a committed store: xablate.tracking.ui_store) and returns the page's address.

Final stage: runs tagged `xablate.stage` with `final` among its comma-joined stages (`pilot,final`: a run that
served both), but for `tune,final` (a tuning run an earlier version let stand in for a final replicate: tuning
only, xablate.staging.serves); runs from before the tag existed have none and count as final
(xablate.analysis.store.in_stage).
MLflow's filter grammar has AND only, so a study whose runs all lack the tag is filtered on its absence, and a
study with both kinds lists its tagged final runs and says how many untagged ones it leaves out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from xablate.staging import STAGE_TAG
from xablate.studies import METRICS, load_study

VIEW_KEY = "xablate-final-runs"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_NAME = "xablate: final runs by variant"
VARIANT_TAG = "xablate.variant"
JOB_RUNS = f"tags.`{VARIANT_TAG}` != ''"  # a study's job runs (its sweeps' parents carry no variant)
FINAL_TAGGED = f"tags.`{STAGE_TAG}` LIKE '%final%' AND tags.`{STAGE_TAG}` != 'tune,final'"
UNTAGGED = f"tags.`{STAGE_TAG}` IS NULL AND {JOB_RUNS}"
# a claim's metric -> the run metric the table shows (train_loss_auc is computed from the `loss` curve; its
# per-variant value is in the sweep parent's summary: xablate.tracking.parent_summary)
RUN_METRIC = {"test_accuracy": "test_accuracy", "test_loss": "test_loss", "best_val_accuracy": "best_val_accuracy",
              "final_val_accuracy": "val_accuracy", "final_loss": "loss", "train_loss_auc": "loss"}


@dataclass
class StudyView:
    experiment_id: str
    path: str                     # the page, after the server's address: /#/experiments/<id>/runs?…
    search_filter: str
    metrics: list[str]            # run metrics shown as columns, the first sorts
    notes: list[str] = field(default_factory=list)

    def url(self, base: str) -> str:
        return base.rstrip("/") + self.path


def studies_in_store(client) -> list[str]:
    """The experiments of the store that hold job runs (any status), by name."""
    return sorted(e.name for e in client.search_experiments()
                  if client.search_runs([e.experiment_id], JOB_RUNS, max_results=1))


def find_study(client, study: str) -> str:
    """The experiment id of `study`; ValueError in one line naming the studies in the store when it has none."""
    experiment = client.get_experiment_by_name(study)
    if experiment is None or not client.search_runs([experiment.experiment_id], JOB_RUNS, max_results=1):
        known = studies_in_store(client)
        raise ValueError(f"Received --study={study!r}, which has no runs in this store; allowed: "
                         f"{', '.join(known) if known else 'none (the store holds no study yet)'}.")
    return experiment.experiment_id


def final_filter(client, experiment_id: str) -> tuple[str, list[str]]:
    """The search filter of the experiment's final-stage job runs, and what it cannot list."""
    if not client.search_runs([experiment_id], UNTAGGED, max_results=1):
        return FINAL_TAGGED, []
    if not client.search_runs([experiment_id], f"tags.`{STAGE_TAG}` IS NOT NULL AND {JOB_RUNS}", max_results=1):
        return UNTAGGED, []  # from before stages were tagged: every job run is final
    untagged = client.search_runs([experiment_id], UNTAGGED, max_results=50_000)
    return FINAL_TAGGED, [f"{len(untagged)} run(s) without a {STAGE_TAG} tag (final, to the analysis) are not "
                          f"listed: MLflow's filters cannot say `tagged final OR untagged`"]


def claimed_metrics(study: str) -> list[str]:
    """The study's claimed metrics (its reported metric when it claims nothing), as run metrics, first first."""
    spec = load_study(study)
    metrics = [c.metric for c in spec.claims] or [spec.metric or "test_accuracy"]
    return list(dict.fromkeys(RUN_METRIC.get(m, m) for m in metrics))


def view_state(search_filter: str, metrics: list[str], higher_is_better: bool) -> dict:
    """The runs page's state: facets and table (key names of MLflow 3.17's ExperimentPageUIState)."""
    return {
        "searchFilter": search_filter,
        "orderByKey": f"metrics.`{metrics[0]}`",
        "orderByAsc": not higher_is_better,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": [*(f"metrics.`{m}`" for m in metrics), f"tags.`{STAGE_TAG}`", "params.`seed`"],
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": VARIANT_TAG}]},
        "groupsExpanded": {},
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
    }


def save_study_view(uri: str, study: str) -> StudyView:
    """Writes the study's view to `uri` (ValueError for a study without runs there) and returns its page."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment_id = find_study(client, study)
    search_filter, notes = final_filter(client, experiment_id)
    spec = load_study(study)
    metrics = claimed_metrics(study)
    first = ([c.metric for c in spec.claims] or [spec.metric or "test_accuracy"])[0]
    state = view_state(search_filter, metrics, METRICS.get(first, ("", True))[1])
    now = int(time.time() * 1000)
    client.set_experiment_tag(experiment_id, VIEW_TAG, json.dumps(
        {"name": VIEW_NAME, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}))
    path = f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    return StudyView(experiment_id, path, search_filter, metrics, notes)
