"""How much a tuned study's choice mattered: every tuning trial's validation score against each tuned key, how
flat each variant's optimum is, and what each stage cost.

A trial is one setting of the tuned keys for one variant; its score is the mean over its seeds of the tuning
metric (validation only). `flat_range` names the settings whose mean lies within one standard error of the
best trial's (the best's seeds give the error; with one seed there is none, and the range says so): a wide
range means the variant barely cares, a single point that the choice was sharp. `stage_costs` sums epochs and
training time per stage (pilot, tune with its pruned trials, final), a run counted once, in the stage that
trained it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from xablate.analysis.store import Selection, typed
from xablate.staging import STAGES, TUNE_METRICS

TRIAL_COLUMNS = ["variant", "setting", "n", "mean", "sd", "low", "high", "pruned", "diverged"]


def tuning_runs(selection: Selection) -> pd.DataFrame:
    """The study's tune-stage runs, one row each: variant, each tuned key's value, seed, outcome and score (the
    tuning metric, higher is better as staging.score reads it: NaN for a pruned or diverged run)."""
    tune = selection.study.tune
    runs = selection.tuning
    columns = ["variant", *(tune.keys if tune else ()), "seed", "outcome", "value", "score", "epochs"]
    if tune is None or runs is None or runs.empty:
        return pd.DataFrame(columns=columns)
    name = tune.metric
    higher = TUNE_METRICS[name][1]
    rows = []
    for _, run in runs.iterrows():
        value = run.get(name)
        finished = run["status"] == "FINISHED" and value is not None and not math.isnan(float(value))
        rows.append({"variant": run["variant"], **{k: typed(run["params"].get(k)) for k in tune.keys},
                     "seed": run["seed"], "outcome": run["outcome"],
                     "value": float(value) if value is not None else math.nan,
                     "score": (float(value) if higher else -float(value)) if finished else math.nan,
                     "epochs": run["epochs"]})
    return pd.DataFrame(rows, columns=columns)


def chosen_values(selection: Selection) -> dict[str, dict]:
    """Each variant's tuned values, as its final runs were configured ({} for an untuned study): a value per key,
    or the list of the distinct values its replicates ran at (repeated tuning: one choice per repeat)."""
    tune = selection.study.tune
    if tune is None or selection.runs.empty or "params" not in selection.runs:
        return {}
    out = {}
    for variant, params in selection.runs.groupby("variant")["params"]:
        values = {}
        for k in tune.keys:
            seen = list(dict.fromkeys(typed(p.get(k)) for p in params if p.get(k) is not None))
            if seen:
                values[k] = seen[0] if len(seen) == 1 else seen
        out[variant] = values
    return out


def own_choices(selection: Selection, chosen: dict[str, dict] | None = None) -> dict[str, dict]:
    """Each variant's tuned values as its tuning chose them, keyed as its tuning runs are labelled: chosen_values,
    except in a study crossed at its tuned values, where a variant's runs span every level of the crossed key and
    its own value is the one its tuning chose (selection.own)."""
    chosen = chosen_values(selection) if chosen is None else chosen
    if not selection.crossed:
        return chosen
    out: dict[str, dict] = {}
    for label, values in chosen.items():
        mine = selection.tuning_label(label)
        setting = dict(values)
        if mine in selection.own:
            setting[selection.crossed] = selection.own[mine]
        out.setdefault(mine, setting)
    return out


def describe_setting(values: dict) -> str:
    """Tuned values as `lr 0.003` / `lr 0.003, weight_decay 1e-05`; a variant tuned r times `lr 0.003|0.004`."""
    from xablate.config import short_name

    one = lambda v: f"{v:.3g}" if isinstance(v, float) else f"{v}"  # noqa: E731
    return ", ".join(f"{short_name(k)} {'|'.join(map(one, v)) if isinstance(v, list) else one(v)}"
                     for k, v in values.items()) or "–"


def trial_table(runs: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """One row per variant and setting of the tuned keys: seeds (n), mean and SD of the score, its range over the
    seeds (the band the figure draws), and how many seeds were pruned or diverged."""
    rows = []
    if runs.empty:
        return pd.DataFrame(columns=[*TRIAL_COLUMNS, *keys])
    for (variant, *setting), group in runs.groupby(["variant", *keys], sort=False, dropna=False):
        scores = group["score"].dropna().to_numpy(dtype=float)
        rows.append({"variant": variant, "setting": dict(zip(keys, setting)), **dict(zip(keys, setting)),
                     "n": len(scores), "mean": scores.mean() if len(scores) else math.nan,
                     "sd": scores.std(ddof=1) if len(scores) > 1 else math.nan,
                     "low": scores.min() if len(scores) else math.nan,
                     "high": scores.max() if len(scores) else math.nan,
                     "pruned": int((group["outcome"] == "pruned").sum()),
                     "diverged": int((group["outcome"] == "diverged").sum())})
    return pd.DataFrame(rows, columns=[*TRIAL_COLUMNS, *keys])


def flat_range(trials: pd.DataFrame, keys: tuple[str, ...]) -> dict[str, dict]:
    """Per variant: the best setting, the standard error of its mean, and each key's range over the settings whose
    mean is within one SE of the best (`within` of `of` settings). No SE (the best has one seed): `se` NaN and the
    range is the best setting alone."""
    out = {}
    for variant, group in trials.dropna(subset=["mean"]).groupby("variant", sort=False):
        best = group.loc[group["mean"].idxmax()]
        se = best["sd"] / math.sqrt(best["n"]) if best["n"] > 1 and not math.isnan(best["sd"]) else math.nan
        near = group[group["mean"] >= best["mean"] - (0.0 if math.isnan(se) else se)]
        out[variant] = {"best": best["setting"], "best_mean": float(best["mean"]), "se": float(se),
                        "range": {k: (near[k].min(), near[k].max()) for k in keys},
                        "within": len(near), "of": len(group)}
    return out


def describe_flatness(entry: dict) -> str:
    """A flat_range entry as a table cell, e.g. `1e-3–3e-3 (3 of 12 within 1 SE)`."""
    if math.isnan(entry["se"]):
        return "one seed: no SE"
    ranges = []
    for key, (low, high) in entry["range"].items():
        short = key.rsplit(".", 1)[-1]
        shown = f"{low:.3g}" if low == high else f"{low:.3g}–{high:.3g}"
        ranges.append(shown if len(entry["range"]) == 1 else f"{short} {shown}")
    return f"{', '.join(ranges)} ({entry['within']} of {entry['of']} finished trials within 1 SE)"


def stage_costs(selection: Selection) -> pd.DataFrame:
    """Runs, pruned runs, epochs, training hours (epochs' time) and wall hours (each run's start to end over its
    attempts: building, evaluating and logging too) per stage; a run serving two stages counts in the first."""
    frames = [f for f in (selection.pilot, selection.tuning, selection.runs) if f is not None and len(f)]
    rows = []
    if frames:
        runs = pd.concat(frames).drop_duplicates("run_id")
        first = runs["stage"].fillna("final").map(lambda s: next((x for x in STAGES if x in str(s).split(",")),
                                                                 "final"))
        for stage in STAGES:
            group = runs[first == stage]
            if group.empty:
                continue
            wall = group["wall_seconds"] if "wall_seconds" in group else None  # over each run's attempts
            rows.append({"stage": stage, "runs": len(group), "pruned": int((group["outcome"] == "pruned").sum()),
                         "epochs": int(np.nansum(group["epochs"].astype(float))),
                         "hours": float(np.nansum(group["train_seconds"].astype(float))) / 3600,
                         "wall_hours": float(np.nansum(wall)) / 3600 if wall is not None else math.nan})
    return pd.DataFrame(rows, columns=["stage", "runs", "pruned", "epochs", "hours", "wall_hours"])


def before_final_share(costs: pd.DataFrame) -> float:
    """The share of a study's epochs spent before its final stage (pilot and tuning); 0 when none."""
    total = costs["epochs"].sum()
    return float(costs.loc[costs["stage"] != "final", "epochs"].sum() / total) if total else 0.0


def describe_costs(costs: pd.DataFrame) -> str:
    """One line: each stage's runs, epochs and training time, and the tuning's share of the whole."""
    if costs.empty:
        return ""
    parts = []
    for row in costs.itertuples():
        pruned = f", {row.pruned} pruned" if row.pruned else ""
        wall = "" if math.isnan(row.wall_hours) else f" ({row.wall_hours * 60:.1f} min wall)"
        parts.append(f"{row.stage} {row.runs} runs{pruned}, {row.epochs} epochs, {row.hours * 60:.1f} min training"
                     f"{wall}")
    before = before_final_share(costs)
    share = f"; pilot and tuning {before:.0%} of all epochs" if before else ""
    return "; ".join(parts) + share
