"""What a study's sweep parents recorded for its analysis, read from the store: the sequential plan, and a tuned
study's choices.

A sequential study's plan as its store recorded it before its runs, read from there.

The sweep's parent run records the study's looks, spending and alpha (tag xablate.sequential) before any job
starts, beside its claims (xablate.tracking.hydra_callback). The plan in force is the one the study's earliest
recording parent wrote: looks and spending edited in the study file after its runs began do not move the
boundaries its verdicts are read at (the same rule as a claim's pre-registration). Runs made before plans were
recorded read the study file's plan, and say so.
"""

from __future__ import annotations

import dataclasses
import json

from xablate.analysis.sequential import SequentialSpec, parse_sequential
from xablate.staging import CHOICES_TAG
from xablate.studies import SEQUENTIAL_TAG
from xablate.tracking.reader import StoreReader
from xablate.tracking.store import resolve_tracking_uri, store_missing

NOT_RECORDED = "the study file (no sweep of this study recorded a plan before its runs)"


def with_recorded_plan(uri: str, study):
    """`study` with its sequential plan as the store recorded it first (`source` says where it was read; a
    study file that now says otherwise is named); unchanged for a study without a sequential design."""
    if study.sequential is None:
        return study
    return dataclasses.replace(study, sequential=recorded_plan(uri, study.name, study.sequential))


def recorded_plan(uri: str, name: str, declared: SequentialSpec) -> SequentialSpec:
    uri = resolve_tracking_uri(uri)
    parents = []
    if not store_missing(uri):  # (reading a missing store would create it)
        reader = StoreReader(uri)
        parents = reader.runs([reader.experiment_id(name)], tag=SEQUENTIAL_TAG)
    if not parents:
        return dataclasses.replace(declared, source=NOT_RECORDED)
    first = min(parents, key=lambda run: (run.info.start_time, run.info.run_id))
    plan = parse_sequential(json.loads(first.data.tags[SEQUENTIAL_TAG]), f" (recorded by sweep {first.info.run_id})")
    source = f"recorded by the study's first sweep (parent run {first.info.run_id[:12]})"
    if plan != declared:
        source += (f"; the study file now says looks {list(declared.looks)}, {declared.spending}, alpha "
                   f"{declared.alpha:g}: a plan edited after the runs began is not the plan")
    return dataclasses.replace(plan, source=source)


def recorded_choices(uri: str, experiment: str) -> dict[str, dict | list[dict]]:
    """A tuned study's values per variant name, as its sweep parents recorded them: each variant's from the
    newest parent that tuned it (a sweep of some variants records only theirs); {} before any tuning finished.
    With repeated tuning, a list of them (one per repeat: staging.replicate_choice)."""
    if store_missing(uri):
        return {}
    reader = StoreReader(uri)
    chosen: dict = {}
    for parent in reader.runs([reader.experiment_id(experiment)], tag=CHOICES_TAG, newest_first=True):
        key = parent.data.tags.get("xablate.tune.key", "")
        as_values = lambda value: value if isinstance(value, dict) else {key: value}  # noqa: E731
        for variant, value in json.loads(parent.data.tags[CHOICES_TAG]).items():
            chosen.setdefault(variant, [as_values(v) for v in value] if isinstance(value, list) else as_values(value))
    return chosen


def crossed_choices(uri: str, study) -> dict[str, dict] | None:
    """The tuned choices a study crossed at its tuned values (a claim `at: {key: tuned}`) reads its runs with:
    which value of the key is each variant's own (None for any other study)."""
    return recorded_choices(resolve_tracking_uri(uri), study.name) if study.crossed else None
