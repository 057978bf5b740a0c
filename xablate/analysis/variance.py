"""Each source of variance's share of the spread: a variance decomposition over a crossed design of seeds.

A study declares `analysis.variance: {sources: [init, order, split]}` and crosses the sources' seeds in its sweep
(train.init_seed, data.order_seed, data.split_seed, data.subsample_seed: e.g. three values each, every
combination). Per variant, the metric is modelled as a sum of one random effect per source plus a residual (the
sources' interactions and anything they do not cover), fitted by ordinary least squares with each source a
categorical factor (statsmodels' OLS and anova_lm). For a balanced crossed design the method of moments gives
each source's variance component from its mean square: sigma^2_source = max(0, (MS_source - MS_residual) / r),
r the runs at each of its levels; the residual's is MS_residual. Each share is a component over their sum —
Bouthillier et al. (2021) show which sources dominate a benchmark's spread.
"""

from __future__ import annotations

import math

import pandas as pd

from xablate.analysis.store import Selection, scored

COLUMNS = ["variant", "source", "levels", "component", "share", "runs"]
RESIDUAL = "residual (interactions, the rest)"


def decomposition(values: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Variance components and shares of `value` over the crossed factors `sources` (columns of `values`), one
    row per source and the residual. NaN when the design has too few runs for a residual."""
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    data = values.dropna(subset=["value"]).copy()
    factors = [s for s in sources if data[s].nunique() > 1]
    rows = []
    if len(factors) and len(data) > sum(data[f].nunique() - 1 for f in factors) + 1:
        formula = "value ~ " + " + ".join(f"C({f})" for f in factors)
        table = sm.stats.anova_lm(ols(formula, data=data).fit(), typ=1)
        residual = float(table.loc["Residual", "mean_sq"])
        for source in factors:
            found = table.loc[f"C({source})"]
            per_level = len(data) / data[source].nunique()
            rows.append({"source": source, "levels": int(data[source].nunique()),
                         "component": max(0.0, (float(found["mean_sq"]) - residual) / per_level)})
        rows.append({"source": RESIDUAL, "levels": math.nan, "component": residual})
    else:
        rows = [{"source": s, "levels": int(data[s].nunique()), "component": math.nan} for s in sources]
    frame = pd.DataFrame(rows)
    total = frame["component"].sum(min_count=1)
    frame["share"] = frame["component"] / total if total and not math.isnan(total) and total > 0 else math.nan
    frame["runs"] = len(data)
    return frame


def variance_table(selection: Selection) -> pd.DataFrame:
    """Per variant of a study that declares analysis.variance, each source's component and share of the spread
    of the study's metric, from the seeds each run recorded (params seeds.*)."""
    sources = list(selection.study.variance or ())
    runs = selection.runs
    if not sources or runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    frames = []
    for variant in selection.variants:
        mine = runs[runs["variant"] == variant]
        values = pd.DataFrame({"value": scored(mine, selection.metric).to_numpy(float),
                               **{s: [seeds.get(s) for seeds in mine["seeds"]] for s in sources}})
        frames.append(decomposition(values, sources).assign(variant=variant))
    return pd.concat(frames, ignore_index=True)[COLUMNS]
