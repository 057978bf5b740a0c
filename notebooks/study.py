# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A study's figures, table and verdict from the MLflow store
#
# Analysis only: this notebook reads runs through `xablate.analysis`; it trains nothing. It draws the study
# (or sweep) named below, or every study in the store when none is named — the same figures
# `xablate figures` writes. Set the parameters in the next cell (it is tagged `parameters`, so papermill can
# set them), or through the environment:
#
#     XABLATE_STUDY=fig9_residual MLFLOW_TRACKING_URI=sqlite:///$PWD/results/store/mlflow.db \
#         jupytext --to ipynb --execute notebooks/study.py
#
# Headless, as a script: `MPLBACKEND=Agg python notebooks/study.py`.

# %% tags=["parameters"]
import os

STUDY = os.environ.get("XABLATE_STUDY") or None  # None: every study in the store with a finished run
SWEEP = os.environ.get("XABLATE_SWEEP") or None  # a sweep's parent run id: only that sweep
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or None  # None: the project's store (<project>/mlflow.db)

# %%
# %matplotlib inline
from IPython.display import Markdown, display

from xablate.analysis import (beside_selection, history_frame, selected_runs, study_figures, variant_table,
                              verdict_table)
from xablate.analysis.registration import registrations
from xablate.analysis.store import runs_frame, studies_in_store
from xablate.analysis.tables import to_markdown
from xablate.tracking.store import resolve_tracking_uri

TRACKING_URI = resolve_tracking_uri(TRACKING_URI)  # one store for every read below, never ./mlflow.db

if SWEEP:
    studies = [str(runs_frame(TRACKING_URI, sweep=SWEEP)["study"].iloc[0])]
else:
    studies = [STUDY] if STUDY else studies_in_store(TRACKING_URI)
print(f"studies: {studies}")

# %%
verdict_inputs = []
for study in studies:
    selection = selected_runs(TRACKING_URI, study, SWEEP)
    history = history_frame(TRACKING_URI, selection.runs, axes=selection.axes)
    finished = selection.runs[selection.runs["status"] == "FINISHED"]
    display(Markdown(f"## {selection.study.title}\n\n{len(selection.runs)} runs ({len(finished)} finished); "
                     f"axes: {', '.join(selection.axes) or 'none'}; baseline: {selection.baseline_label}; "
                     f"reported: {selection.metric}"))
    beside = None if SWEEP else beside_selection(TRACKING_URI, selection)  # analysis.beside, if in the store
    for name, figure in study_figures(selection, history, beside).items():
        display(figure)  # each figure once: they are made without pyplot, so nothing else shows them
    display(Markdown(to_markdown(variant_table(selection))))
    verdict_inputs.append((selection, history))

# %% [markdown]
# ## Verdicts on the studies' declared claims

# %%
registered = {(s.study.name, text): label for s, _ in verdict_inputs  # claims recorded before their runs?
              for text, label in registrations(TRACKING_URI, s.study.name, s.study.claims, s.runs).items()}
verdicts = verdict_table(verdict_inputs, registered)
for row in verdicts.itertuples():
    display(Markdown(f"**{row.verdict}** ({row.registration}) — {row.claim} ({row.study})\n\n{row.evidence}"))
if verdicts.empty:
    print("No study drawn here declares claims.")
