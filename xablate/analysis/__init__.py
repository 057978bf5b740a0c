"""From the MLflow store to tidy DataFrames, statistics, paper-style figures, tables and verdicts.

    runs = runs_frame(uri, study="fig10_intermediate_act")              # one row per run
    selection = select_runs(runs, load_study("fig10_intermediate_act"))  # axes found, one run per variant x seed
    history = history_frame(uri, selection.runs, axes=selection.axes)   # one row per run x epoch x metric
    figures = study_figures(selection, history)                          # chosen by the axes
    table = variant_table(selection)                                     # paired differences from the baseline
"""

from xablate.analysis.figures import capacity_figure, curves_figure, heatmap_figure, trend_figure
from xablate.analysis.report import beside_selection, selected_runs, study_figures
from xablate.analysis.stats import holm, mean_ci, min_detectable_effect, paired_difference, seeds_needed
from xablate.analysis.store import Selection, history_frame, runs_frame, select_runs, studies_in_store
from xablate.analysis.tables import variant_table
from xablate.analysis.verdicts import verdict_table
from xablate.studies import load_study

__all__ = [
    "Selection",
    "beside_selection",
    "capacity_figure",
    "curves_figure",
    "heatmap_figure",
    "history_frame",
    "holm",
    "load_study",
    "mean_ci",
    "min_detectable_effect",
    "paired_difference",
    "runs_frame",
    "seeds_needed",
    "select_runs",
    "selected_runs",
    "studies_in_store",
    "study_figures",
    "trend_figure",
    "variant_table",
    "verdict_table",
]
