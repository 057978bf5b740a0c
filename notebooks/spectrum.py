# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # spectrum: figures, table and verdict from the MLflow store
#
# Analysis only: this notebook reads runs through `xablate.analysis`; it trains nothing.
# The store is `$MLFLOW_TRACKING_URI` (default: the project's `mlflow.db`); the committed CPU
# reproduction is `sqlite:///results/store/mlflow.db`. Run it with
# `MLFLOW_TRACKING_URI=sqlite:///$PWD/results/store/mlflow.db python notebooks/spectrum.py`, or open it
# in Jupyter through jupytext.

# %%
import os

from xablate.analysis import history_frame, variant_table, verdict_table
from xablate.analysis.report import STUDIES, selected_runs, study_figures
from xablate.analysis.tables import to_markdown

STUDY = "spectrum"
spec = STUDIES[STUDY]
uri = os.environ.get("MLFLOW_TRACKING_URI")
runs = selected_runs(uri, STUDY)  # the study's main configuration, one run per variant and seed
history = history_frame(uri, runs)
print(f"{len(runs)} runs, {runs['status'].value_counts().to_dict()}")
runs[["variant", "seed", "status", "final_val_accuracy", "best_val_accuracy", "total_params", "flops"]]

# %% [markdown]
# ## Figure

# %%
figures = study_figures(STUDY, runs, history)  # the same figures `xablate figures` writes
figures[STUDY]

# %%
figures["capacity"]

# %% [markdown]
# ## Table: mean ± 95 % CI over seeds, paired difference from the baseline

# %%
table = variant_table(runs, spec.axis, spec.baseline)
print(to_markdown(table))

# %% [markdown]
# ## Verdict

# %%
verdicts = verdict_table({STUDY: (runs, history)})
for row in verdicts.itertuples():
    print(f"{row.verdict:>13}  {row.claim}\n               {row.evidence}")
