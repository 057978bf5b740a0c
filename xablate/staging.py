"""Staged studies: a pilot pass and a tuning stage before the study's own runs (the Hydra sweeper `staged`).

    hydra:
      sweeper:
        params: {intermediate_act: none,elu,relu, seed: range(10)}   # the study: variants x replicates
        tune:                      # per variant: the best value of one key, picked on the validation split
          key: optim.learning_rate
          values: [3.0e-4, 1.0e-3, 3.0e-3]
          seeds: 1                 # replicates per value (the study's first ones, or with seeds_from:)
          seeds_from: 1000         # tune on seeds 1000, 1001, ... that no final run uses (tuning_replicates)
          epochs_fraction: 0.33    # the tuning runs' budget: a share of the study's epochs, and/or
          budget: {data.limit_train: 1000}  # any overrides of their own
          metric: final_val_accuracy   # or best_val_accuracy, final_val_loss (validation only, never test)
        pilot:                     # one cheap pass over every variant before anything else
          epochs_fraction: 0.25    # or budget: {...}
          seeds: 1

Stages run in the order pilot -> tune -> final (the study's grid, each variant at its tuned value). Every job
is an ordinary xablate job, so a killed sweep typed again skips what finished and resumes what did not, in any
stage. Each run carries its stage as the tag xablate.stage; the sweep's parent run records the choices
(tags xablate.tune.key, xablate.tune.choices) and logs tuning.json. This module holds the sweeper's logic;
hydra_plugins/xablate_sweeper registers it with Hydra.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from xablate.config import REPLICATE_KEYS, flatten

STAGE_KEY = "tracking.stage"
STAGE_TAG = "xablate.stage"
TUNED_KEY = "tracking.tuned_key"
TUNED_KEY_TAG = "xablate.tuned_key"
STAGES = ("pilot", "tune", "final")


def trained_by(tags: dict) -> str | None:
    """The stage that trained a run: the first of its `xablate.stage` tag (a run another stage reused has both);
    None for a run from before the tag existed."""
    return tags[STAGE_TAG].split(",")[0] if STAGE_TAG in tags else None


def may_serve(trained: str | None, stage: str) -> bool:
    """Whether a finished run trained by stage `trained` stands in for a job of `stage` with the same config. A
    pilot run may be a tuning trial or a final replicate; a tuning run is never a final replicate, nor a final run
    a tuning trial: a final run keeps its per-image test predictions (the accuracy bootstrap needs every final
    cell's), and the final stage's runs are its own. Training is deterministic given the seed, so a final cell on
    a seed the tuning used repeats that tuning run's score: a selection effect this does not remove (tuning on
    seeds the finals do not use would). A run from before the stage tag (None) serves as it always did."""
    return trained is None or trained == stage or {trained, stage} != {"tune", "final"}


def serves(stages: str | None, stage: str) -> bool:
    """Whether a run whose `xablate.stage` tag is `stages` counts in `stage`: one of its stages, as may_serve
    allows (`tune,final`, a tuning run an earlier version reused as a final replicate, counts as tuning only)."""
    parts = str(stages or "final").split(",")
    return stage in parts and may_serve(parts[0], stage)
# name: (MLflow metric of the run, higher is better) — validation only: tuning never sees the test split
TUNE_METRICS = {
    "final_val_accuracy": ("val_accuracy", True),
    "best_val_accuracy": ("best_val_accuracy", True),
    "final_val_loss": ("val_loss", False),
}
CHOICES_TAG = "xablate.tune.choices"
KEY_TAG = "xablate.tune.key"
TUNING_FILE = "tuning.json"


@dataclass(frozen=True)
class TuneSpec:
    key: str                  # the tuned key; with a search space, its keys joined by commas (the xablate.tuned_key tag)
    values: list              # the grid form's candidate values (empty with a search space)
    seeds: int = 1
    budget: dict = field(default_factory=dict)
    metric: str = "final_val_accuracy"
    epochs_fraction: float | None = None
    search: Any = None        # xablate.tuning.SearchSpec: Optuna over a declared space (the `space` form)
    seeds_from: int | None = None  # the tuning's replicates: seeds from here on (None: the study's first ones)

    @property
    def keys(self) -> tuple[str, ...]:
        """The config keys the stage tunes (one in the grid form)."""
        return tuple(self.search.space) if self.search is not None else (self.key,)


@dataclass(frozen=True)
class PilotSpec:
    seeds: int = 1
    budget: dict = field(default_factory=dict)
    epochs_fraction: float | None = None


def _error(setting: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"Received hydra.sweeper.{setting}={value!r}; allowed: {allowed}.")


def _seeds(block: dict, stage: str) -> int:
    seeds = block.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise _error(f"{stage}.seeds", seeds, "an integer >= 1 (replicates per value, the study's first ones)")
    return seeds


def _seeds_from(block: dict) -> int | None:
    start = block.get("seeds_from")
    if start is not None and (isinstance(start, bool) or not isinstance(start, int) or start < 1):
        raise _error("tune.seeds_from", start, "null, or a whole number >= 1 beyond every seed the study's own "
                                              "runs use, e.g. 1000 (the tuning then trains on seeds no final run "
                                              "repeats)")
    return start


def _budget(block: dict, stage: str) -> dict:
    budget = block.get("budget") or {}
    if not isinstance(budget, dict) or not all(isinstance(k, str) for k in budget):
        raise _error(f"{stage}.budget", budget, "a mapping of config keys to values, e.g. {train.epochs: 5}")
    budget = flatten(budget)  # {train: {epochs: 5}} (as a command line nests it) is {train.epochs: 5}
    if STAGE_KEY in budget or TUNED_KEY in budget:
        raise _error(f"{stage}.budget", budget, f"any key but {STAGE_KEY} and {TUNED_KEY} (the sweeper sets them)")
    return budget


def _fraction(block: dict, stage: str, budget: dict) -> float | None:
    fraction = block.get("epochs_fraction")
    if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                 or not 0 < fraction <= 1):
        raise _error(f"{stage}.epochs_fraction", fraction, "a number in (0, 1]: the share of the study's epochs")
    if fraction is not None and "train.epochs" in budget:
        raise _error(f"{stage}.budget", budget, "no train.epochs beside epochs_fraction (one of the two)")
    return None if fraction is None else float(fraction)


def parse_tune(block: Any) -> TuneSpec | None:
    """The tuning stage declared under hydra.sweeper.tune (None when there is none); errors name the setting."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise _error("tune", block, "a mapping with key, values and optionally seeds, budget, metric")
    common = {"seeds", "seeds_from", "budget", "metric", "epochs_fraction"}
    if "space" in block:
        return _parse_search_form(block, common)
    if "repeats" in block:
        raise _error("tune.repeats", block["repeats"], "repeats with the search form only (a space and a sampler: "
                                                       "each repeat draws with its own sampler seed; a grid of "
                                                       "values has none)")
    unknown = sorted(set(block) - {"key", "values", *common})
    if unknown:
        allowed = "key, values, seeds, seeds_from, budget, epochs_fraction, metric (or the search form: space, " \
                  "sampler, trials, " \
                  "startup, pruner)"
        raise _error(f"tune.{unknown[0]}", block[unknown[0]], allowed)
    key = block.get("key")
    if not isinstance(key, str) or not key or key in REPLICATE_KEYS or key == STAGE_KEY:
        raise _error("tune.key", key, "a config key such as optim.learning_rate (not a replicate key)")
    values = block.get("values")
    if not isinstance(values, list) or len(values) < 2 or len({json.dumps(v) for v in values}) != len(values):
        raise _error("tune.values", values, "a list of at least two distinct values")
    metric = _metric(block)
    budget = _budget(block, "tune")
    return TuneSpec(key=key, values=list(values), seeds=_seeds(block, "tune"), budget=budget, metric=metric,
                    epochs_fraction=_fraction(block, "tune", budget), seeds_from=_seeds_from(block))


def _metric(block: dict) -> str:
    metric = block.get("metric", "final_val_accuracy")
    if metric not in TUNE_METRICS:
        raise _error("tune.metric", metric, f"{', '.join(TUNE_METRICS)} (validation metrics: tuning never reads "
                                            f"the test split)")
    return metric


def _parse_search_form(block: dict, common: set) -> TuneSpec:
    """The Optuna form: a `space` of distributions searched per variant (xablate.tuning)."""
    from xablate.tuning import SEARCH_SETTINGS, parse_search

    unknown = sorted(set(block) - {*SEARCH_SETTINGS, *common})
    if unknown:
        raise _error(f"tune.{unknown[0]}", block[unknown[0]],
                     f"{', '.join(SEARCH_SETTINGS)}, {', '.join(sorted(common))} (key and values belong to the grid "
                     f"form, without space)")
    search = parse_search(block)
    for key in search.space:
        if key in REPLICATE_KEYS or key == STAGE_KEY or not key or "=" in key:
            raise _error(f"tune.space.{key}", block["space"][key], "config keys such as optim.learning_rate (not a "
                                                                   "replicate key)")
    metric = _metric(block)
    budget = _budget(block, "tune")
    return TuneSpec(key=",".join(search.space), values=[], seeds=_seeds(block, "tune"), budget=budget,
                    metric=metric, epochs_fraction=_fraction(block, "tune", budget), search=search,
                    seeds_from=_seeds_from(block))


def parse_pilot(block: Any) -> PilotSpec | None:
    """The pilot pass declared under hydra.sweeper.pilot (None when there is none)."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise _error("pilot", block, "a mapping with epochs_fraction or budget, and optionally seeds")
    unknown = sorted(set(block) - {"seeds", "budget", "epochs_fraction"})
    if unknown:
        raise _error(f"pilot.{unknown[0]}", block[unknown[0]], "seeds, budget, epochs_fraction")
    budget = _budget(block, "pilot")
    fraction = _fraction(block, "pilot", budget)
    if (fraction is None or fraction == 1) and not budget:
        raise _error("pilot", block, "epochs_fraction < 1 or a budget: a pilot at the full budget is the study itself")
    return PilotSpec(seeds=_seeds(block, "pilot"), budget=budget,
                     epochs_fraction=None if fraction is None else float(fraction))


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def variants_of(jobs: list[list[str]], tuned: tuple[str, ...] = ()) -> dict[tuple, list[list[str]]]:
    """The grid's jobs grouped by variant (every override but the replicate keys and the tuned keys), in grid
    order."""
    groups: dict[tuple, list[list[str]]] = {}
    for job in jobs:
        variant = tuple(o for o in job if override_key(o) not in REPLICATE_KEYS and override_key(o) not in tuned)
        groups.setdefault(variant, []).append(job)
    return groups


def variant_name(variant: tuple, swept: set[str]) -> str:
    """The variant as its swept overrides, e.g. `intermediate_act=elu` (what the analysis calls it too);
    `baseline` if the sweep varies nothing but replicates."""
    return ",".join(o for o in variant if override_key(o) in swept) or "baseline"


def with_overrides(job: list[str], extra: dict) -> list[str]:
    """The job with `extra` keys set (replacing the job's own value of those keys)."""
    return [o for o in job if override_key(o) not in extra] + [f"{k}={_value(v)}" for k, v in extra.items()]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, str) and any(c in value for c in ",[]{}()'\" "):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"  # a string Hydra reads as one
    return str(value)


HORIZON_KEY = "optim.schedule.horizon_epochs"


def stage_budget(spec: PilotSpec | TuneSpec, full_epochs: int) -> dict:
    """A stage's overrides: its budget, with epochs_fraction turned into whole epochs (at least one). A stage of
    fewer epochs than the study's keeps the final run's schedule horizon: its runs stop at a rung of the final
    recipe's schedule (as a pruner would stop them), not a schedule compressed into fewer epochs."""
    budget = dict(spec.budget)
    if spec.epochs_fraction is not None:
        budget["train.epochs"] = max(1, int(round(spec.epochs_fraction * full_epochs)))
    if int(budget.get("train.epochs", full_epochs)) < full_epochs and HORIZON_KEY not in budget:
        budget[HORIZON_KEY] = int(full_epochs)
    return budget


def pilot_jobs(grid: list[list[str]], pilot: PilotSpec, full_epochs: int) -> list[list[str]]:
    budget = {**stage_budget(pilot, full_epochs), STAGE_KEY: "pilot"}
    return [with_overrides(job, budget) for jobs in variants_of(grid).values() for job in jobs[:pilot.seeds]]


def tune_jobs(grid: list[list[str]], tune: TuneSpec, full_epochs: int) -> list[tuple[tuple, Any, list[str]]]:
    """(variant, value, job overrides) of the tuning stage: every variant x value x the first `seeds` replicates."""
    out, budget = [], stage_budget(tune, full_epochs)
    for variant, jobs in variants_of(grid, tune.keys).items():
        for value in tune.values:
            for job in tuning_replicates(jobs, tune, 0, tune.seeds):
                out.append((variant, value, with_overrides(job, {**budget, tune.key: value,
                                                                  STAGE_KEY: "tune", TUNED_KEY: tune.key})))
    return out


def replicate_index(job: list[str], position: int) -> int:
    """Which replicate a job is, whatever else the command sweeps: its `seed` (an integer), else its position
    among its variant's jobs."""
    for override in job:
        if override_key(override) == "seed":
            try:
                return int(override.split("=", 1)[1])
            except ValueError:
                break
    return position


def replicate_choice(chosen: dict | list[dict], index: int) -> dict:
    """The tuned values replicate `index` (replicate_index: its seed) runs at: its variant's choice, or with
    repeated tuning (a list, one choice per repeat) repeat (index mod r)'s, so the replicates spread over the
    choices — the same cell whichever command (the whole study, or the seeds status says are missing) runs it."""
    return chosen[index % len(chosen)] if isinstance(chosen, list) else chosen


def crossed_levels(choices: dict[tuple, dict], key: str) -> list:
    """The values of a tuned key that a crossed final stage runs every variant at: each variant's choice, once
    (two variants that chose the same value share a level), in increasing order."""
    values = {_value(chosen[key]): chosen[key] for chosen in choices.values()}
    return sorted(values.values(), key=lambda v: (not isinstance(v, (int, float)), v if isinstance(v, (int, float))
                                                  else str(v)))


def final_jobs(grid: list[list[str]], choices: dict[tuple, dict | list[dict]] | None,
               tune: TuneSpec | None, crossed: str | None = None, levels: list | None = None) -> list[list[str]]:
    """The study's own runs, each variant at its tuned values (`choices`: variant -> {key: value}, or a list of
    them, one per tuning repeat: replicate_choice). `crossed`: a tuned key the study reads its claims at every
    variant's value of (a claim `at: {key: tuned}`): each replicate also runs at every other variant's value of
    that key (its other tuned keys its own), a variant x tuned-value factorial; `levels`: those values (default:
    this sweep's choices; a sweep of some variants passes the whole study's, xablate.analysis.plans)."""
    out = []
    if crossed and tune is not None and choices:
        levels = levels or crossed_levels(choices, crossed)
    else:
        levels = [None]
    for variant, jobs in variants_of(grid, tune.keys if tune is not None else ()).items():
        for position, job in enumerate(jobs):
            index = replicate_index(job, position)
            for level in levels:
                extra = ({**replicate_choice(choices[variant], index), TUNED_KEY: tune.key}
                         if tune is not None and choices else {})
                if level is not None:
                    extra[crossed] = level
                out.append(with_overrides(job, {**extra, STAGE_KEY: "final"}))
    return out


def score(metrics: dict, status: str, metric: str) -> float:
    """A tuning run's score, higher is better; NaN for a run that did not finish (a diverged value never wins)."""
    name, higher = TUNE_METRICS[metric]
    value = metrics.get(name)
    if status != "FINISHED" or value is None or math.isnan(float(value)):
        return math.nan
    return float(value) if higher else -float(value)


def tied_best(means: dict) -> list:
    """The keys of `means` whose (finite) mean equals the best one: more than one is a tie, which the staged
    sweeper breaks with more seeds (`tie_break_seeds`), never by the order values were listed or trials ran."""
    finite = {k: m for k, m in means.items() if not math.isnan(m)}
    if not finite:
        return []
    best = max(finite.values())
    return [k for k, m in finite.items() if m == best]


def tie_break_seeds(jobs: list[list[str]], seeds: int, seeds_from: int | None = None) -> list[list[str]]:
    """A variant's replicates a tie-break trains each tied setting on: the `seeds` after the tuning's own (its
    first `seeds`), so that the tied settings are compared on new draws; none when the study has no more (with
    `seeds_from`, the tuning's band never runs out)."""
    return tuning_replicates(jobs, TuneSpec(key="", values=[], seeds=seeds, seeds_from=seeds_from), seeds, 2 * seeds)


def tuning_replicates(jobs: list[list[str]], tune: TuneSpec, start: int, stop: int) -> list[list[str]]:
    """A variant's replicates start..stop-1 of the tuning stage. Without `tune.seeds_from`, the study's own (its
    jobs[start:stop]): a final run on the same seed then repeats a tuning run exactly (training is deterministic
    given the seed), a selection effect on the variant's tuned cell. With it, replicate i is the variant's job
    with `seed` (and every other replicate key the job sets) at seeds_from + i: seeds no final run uses
    (check_tuning_seeds)."""
    if tune.seeds_from is None:
        return jobs[start:stop]
    out = []
    for i in range(start, stop):
        job = jobs[i] if i < len(jobs) else jobs[0]
        moved = {override_key(o): tune.seeds_from + i for o in job
                 if override_key(o) in REPLICATE_KEYS and _whole(o.split("=", 1)[1])}  # null keeps its meaning
        out.append(with_overrides(job, {**moved, "seed": tune.seeds_from + i}))
    return out


def _whole(value: str) -> bool:
    return value.strip().lstrip("-").isdigit()


def check_tuning_seeds(grid: list[list[str]], tune: TuneSpec | None, default_seed: int | None = None) -> None:
    """Refuses a `tune.seeds_from` whose band (the tuning's replicates and a tie-break's) meets a seed the study's
    own runs use (`grid`: the study's whole grid, not only this command's seeds; `default_seed`: the config's
    `seed`, which a job that sets none runs at): the tuning would no longer be apart from the finals."""
    if tune is None or tune.seeds_from is None:
        return
    used = {int(o.split("=", 1)[1]) for job in grid for o in job
            if override_key(o) in REPLICATE_KEYS and _whole(o.split("=", 1)[1])}
    if default_seed is not None and any(all(override_key(o) != "seed" for o in job) for job in grid):
        used.add(int(default_seed))
    band = range(tune.seeds_from, tune.seeds_from + 2 * tune.seeds)
    clash = sorted(used & set(band))
    if clash:
        raise _error("tune.seeds_from", tune.seeds_from,
                     f"an integer above every seed the study's runs use (they reach {max(used)}; the tuning's "
                     f"seeds {band.start}..{band.stop - 1} would repeat seed {clash[0]})")


def pick(values: list, scores: dict[Any, list[float]]) -> tuple[Any, dict]:
    """The value with the highest mean score over its replicates (NaN scores leave a value out; ties: the value
    listed first). Raises when no value has a finished run."""
    means = {}
    for value in values:
        finite = [s for s in scores.get(_value(value), []) if not math.isnan(s)]
        means[_value(value)] = sum(finite) / len(finite) if finite else math.nan
    ranked = [v for v in values if not math.isnan(means[_value(v)])]
    if not ranked:
        raise RuntimeError(f"no tuning run of the values {values} finished: nothing to choose from")
    best = max(ranked, key=lambda v: (means[_value(v)], -values.index(v)))
    return best, means
