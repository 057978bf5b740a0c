"""Which claims were fixed before their runs.

A study's sweep records its claims, each with a hash, on its parent run before any job starts
(xablate.tracking.hydra_callback, tag xablate.claims). A claim as it stands today is *pre-registered* when the
earliest parent that recorded exactly it (same hash) started before every run the verdict draws on; otherwise it
is computed all the same but labelled *exploratory*: first recorded after N runs, changed after N runs (a claim
with the same text was recorded earlier in another form), or never recorded (runs made before claims were
recorded, or outside a sweep). A pre-registered claim whose runs recorded an edited checkout (changes beyond their
commit: xablate.tracking.provenance) says how many.
"""

from __future__ import annotations

import json

import pandas as pd

from xablate.studies import CLAIMS_TAG, Claim, claim_hash
from xablate.tracking.reader import StoreReader
from xablate.tracking.store import resolve_tracking_uri

PRE_REGISTERED = "pre-registered"


def edited_note(runs: pd.DataFrame) -> str:
    """`; N of M runs from an edited checkout` when some of the runs recorded a checkout with changes beyond its
    commit (xablate.tracking.provenance); runs from before that was recorded count as unknown, and say so."""
    if not len(runs) or "source_clean" not in runs:
        return ""
    edited = int((runs["source_clean"] == False).sum())  # noqa: E712  (None: not recorded)
    unknown = int(runs["source_clean"].isna().sum())
    note = f"; {edited} of {len(runs)} runs from an edited checkout" if edited else ""
    return note + (f"; {unknown} of {len(runs)} runs from before checkouts were recorded" if unknown and edited
                   else "")


def registrations(uri: str, study: str, claims: list[Claim], runs: pd.DataFrame) -> dict[str, str]:
    """{claim text: its registration label} for `claims` of `study`, against the runs the verdict uses."""
    reader = StoreReader(resolve_tracking_uri(uri))  # None: the project's store (MLflow's own default is ./mlflow.db)
    parents = reader.runs([reader.experiment_id(study)], tag_equals=("xablate.role", "sweep"))
    first: dict[str, tuple[int, str]] = {}  # hash -> (start ms, commit) of the earliest parent recording it
    texts: dict[str, int] = {}  # claim text -> earliest start of any record of it
    for parent in parents:
        raw = parent.data.tags.get(CLAIMS_TAG)
        if not raw:
            continue
        for record in json.loads(raw):
            first.setdefault(record["hash"], (parent.info.start_time, parent.data.tags.get("mlflow.source.git.commit")))
            texts.setdefault(record["claim"], parent.info.start_time)
    starts = pd.to_datetime(runs["start_time"]) if len(runs) else pd.Series([], dtype="datetime64[ns]")
    labels = {}
    for claim in claims:
        found = first.get(claim_hash(claim))
        if found is None:
            labels[claim.text] = "exploratory (claim not recorded before its runs)"
            continue
        at, commit = found
        before = int((starts < pd.Timestamp(at, unit="ms")).sum())
        if before == 0:
            when = pd.Timestamp(at, unit="ms").strftime("%Y-%m-%d %H:%M")
            labels[claim.text] = f"{PRE_REGISTERED} ({when} UTC" + (f", commit {commit[:10]}" if commit else "") + \
                edited_note(runs) + ")"
        elif texts.get(claim.text, at) < at:
            labels[claim.text] = f"exploratory (changed after {before} runs)"
        else:
            labels[claim.text] = f"exploratory (first recorded after {before} runs)"
    return labels


def registered_labels(uri: str, selection) -> dict[tuple[str, str], str]:
    """verdict_tables' `registered` for one study's selection. Every reader of a claim's decision passes it (the
    verdict, the staged sweeper's sequential stop, status), so each reads the claim in the same Holm family: the
    study's pre-registered claims together. Without it each claim is its own family, laxer, and a sweep could stop
    at a look the verdict does not decide at."""
    study = selection.study
    return {(study.name, text): label
            for text, label in registrations(uri, study.name, study.claims, selection.runs).items()}
