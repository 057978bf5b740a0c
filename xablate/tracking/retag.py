"""Repairs the variant tags of a study's runs from their params.

Before a study's axes named its variants, a command that ran one value of an axis (`python run.py -m
experiment=fig10_intermediate_act intermediate_act=elu`) swept nothing, so its runs were tagged
`xablate.variant=baseline`. The analysis reads params and was never misled, but grouping by the tag in the MLflow
UI was. `retag_variants` recomputes `xablate.variant` and `xablate.axes` from each run's params for the study's
axes (`python -m xablate.tracking.retag <tracking uri> <study> <axis> [<axis> ...]`).
"""

from __future__ import annotations

import json
import sys

import yaml
from mlflow import MlflowClient

from xablate.config import variant_label


def retag_variants(uri: str, study: str, axes: list[str], extra: list[str] = ()) -> int:
    """Sets each job run's variant tags from its params of `axes` (then `extra` keys the run's recorded axes
    hold, e.g. a tuned learning rate); returns how many runs changed."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        raise ValueError(f"Received study={study!r}; allowed: an experiment in {uri}.")
    changed = 0
    for run in client.search_runs([experiment.experiment_id], filter_string="tags.`xablate.variant` != ''",
                                  max_results=50_000):
        recorded = json.loads(run.data.tags.get("xablate.axes") or "{}")
        missing = [a for a in axes if a not in run.data.params]
        if missing:
            raise ValueError(f"Received axes {axes}; run {run.info.run_id} has no param {missing[0]!r}.")
        values = {a: yaml.safe_load(run.data.params[a]) for a in axes}
        values |= {k: recorded[k] for k in extra if k in recorded}
        label = variant_label(values)
        if run.data.tags.get("xablate.variant") != label or recorded != values:
            client.set_tag(run.info.run_id, "xablate.variant", label)
            client.set_tag(run.info.run_id, "xablate.axes", json.dumps(values))
            changed += 1
    return changed


if __name__ == "__main__":
    uri, study, *axes = sys.argv[1:]
    print(f"{retag_variants(uri, study, axes)} run(s) retagged")
