"""From the MLflow store to tidy DataFrames, statistics, paper-style figures, tables and verdicts.

    runs = runs_frame(uri, study="fig10_intermediate_act")      # one row per run
    history = history_frame(uri, runs)                          # one row per run x epoch x metric
    fig = curves_figure(history, axis="intermediate_act")       # Fig. 10: mean over seeds, 95 % CI band
    table = variant_table(runs, axis="intermediate_act", baseline="none")
"""

from xablate.analysis.figures import capacity_figure, curves_figure, spectrum_figure
from xablate.analysis.stats import mean_ci, paired_difference
from xablate.analysis.store import comparable_runs, history_frame, runs_frame
from xablate.analysis.tables import variant_table
from xablate.analysis.verdicts import verdict_table

__all__ = [
    "capacity_figure",
    "comparable_runs",
    "curves_figure",
    "history_frame",
    "mean_ci",
    "paired_difference",
    "runs_frame",
    "spectrum_figure",
    "variant_table",
    "verdict_table",
]
