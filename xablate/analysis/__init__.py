"""From the MLflow store to tidy DataFrames, statistics, paper-style figures, tables and verdicts.

    runs = runs_frame(uri, study="fig10_intermediate_act")              # one row per run
    selection = select_runs(runs, load_study("fig10_intermediate_act"))  # axes found, one run per variant x seed
    history = history_frame(uri, selection.runs, axes=selection.axes)   # one row per run x epoch x metric
    figures = study_figures(selection, history)                          # chosen by the axes
    table = variant_table(selection)                                     # paired differences from the baseline

The names below load their module when first used: `xablate status` reads the store without importing
matplotlib and seaborn.
"""

from importlib import import_module

_HOMES = {
    "capacity_figure": "figures", "curves_figure": "figures", "heatmap_figure": "figures", "trend_figure": "figures",
    "beside_selection": "report", "selected_runs": "report", "study_figures": "report",
    "holm": "stats", "mean_ci": "stats", "min_detectable_effect": "stats", "paired_difference": "stats",
    "seeds_needed": "stats",
    "Selection": "store", "history_frame": "store", "runs_frame": "store", "select_runs": "store",
    "studies_in_store": "store",
    "variant_table": "tables", "verdict_table": "verdicts",
}

__all__ = sorted([*_HOMES, "load_study"])


def __getattr__(name: str):
    if name == "load_study":
        from xablate.studies import load_study

        return load_study
    if name not in _HOMES:
        raise AttributeError(f"module 'xablate.analysis' has no attribute {name!r}")
    value = getattr(import_module(f"xablate.analysis.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
