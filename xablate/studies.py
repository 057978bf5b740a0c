"""Studies are data: each experiments/<name>.yaml is a study — its sweep plus an `analysis` block:

    analysis:
      title: Fig. 10 — activation between the depthwise and the pointwise op
      axes: [intermediate_act]          # optional: else the keys its sweep varies (seed is a replicate)
      baseline: {intermediate_act: none}  # optional: else each axis' value in the default config
      metric: test_accuracy             # optional: the reported number (default test_accuracy)
      beside: spectrum                  # optional: another study drawn in this one's trend figure (same axis)
      claims:                           # optional: what the verdict tests
        - claim: no intermediate activation gives higher test accuracy than ELU and than ReLU
          metric: test_accuracy
          better: none                  # a value of the single axis, or {axis: value, ...}
          than: [elu, relu]
        - claim: depthwise is no worse than 4 segments, within 1 point
          no_worse: depthwise
          than: [4]
          margin: 0.01
        - claim: no activation and ELU are equivalent within 1 point
          equivalent: [none, elu]       # or equivalent: none with than: [elu, ...]
          margin: 0.01

A claim's kind is its test: `better` a two-sided paired t-test (with `margin`, also an equivalence test, so that
"no difference that matters" can be said), `no_worse` a one-sided test against `margin`, `equivalent` two
one-sided tests (TOST) at ±`margin`. `smallest_effect` (better) declares the smallest difference that matters:
the verdict then reports the test's power against it (at the observed spread), as `xablate plan` plans seeds for it.

A study without a file (the user's `python run.py -m a=1,2` lands in study `default`) is read the same way with
no declarations: axes from what its sweeps varied, baseline from the default config, no claims.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xablate.config import REPLICATE_KEYS
from xablate.paths import project_root
from xablate.staging import PilotSpec, TuneSpec, parse_pilot, parse_tune
from xablate.sweeps import as_override, swept_keys

METRICS = {
    # name: (label, higher is better, (lowest, highest) possible)
    "test_accuracy": ("test accuracy (final weights)", True, (0.0, 1.0)),
    "final_val_accuracy": ("validation accuracy (final epoch)", True, (0.0, 1.0)),
    "best_val_accuracy": ("validation accuracy (best epoch; optimistic)", True, (0.0, 1.0)),
    "test_loss": ("test loss (cross-entropy + any weight penalty)", False, (0.0, float("inf"))),
    "test_data_loss": ("test data loss (cross-entropy alone)", False, (0.0, float("inf"))),
    "final_loss": ("training loss (final epoch; cross-entropy + any weight penalty)", False, (0.0, float("inf"))),
    "train_loss_auc": ("training-loss area (mean optimised loss over epochs: cross-entropy + any weight penalty)", False,
                       (0.0, float("inf"))),
    "train_data_loss_auc": ("training data-loss area (mean cross-entropy over epochs, no weight penalty)", False,
                            (0.0, float("inf"))),
}
# metrics that include the weight penalty (optim.weight_decay), and the one that reads the same without it
WITH_PENALTY = {"test_loss": "test_data_loss", "final_loss": "train_data_loss_auc",
                "train_loss_auc": "train_data_loss_auc"}
CLAIMS_TAG = "xablate.claims"  # on a sweep's parent run: the claims it started with, each with its hash
SEQUENTIAL_TAG = "xablate.sequential"  # on a sweep's parent run: the sequential plan it started with (JSON)
CLAIM_KINDS = ("better", "no_worse", "equivalent")
NEEDS_MARGIN = ("no_worse", "equivalent")
ANALYSIS_KEYS = ("title", "axes", "baseline", "metric", "beside", "claims", "sequential", "variance", "supersedes")
CLAIM_KEYS = ("claim", *CLAIM_KINDS, "than", "metric", "margin", "smallest_effect", "at")


@dataclass(frozen=True)
class Claim:
    """One claim: `variant` better than (no worse than by `margin`, equivalent within ±`margin` to) each of
    `others` on `metric`."""

    text: str
    kind: str               # better | no_worse | equivalent
    variant: dict
    others: list[dict]
    metric: str
    margin: float = 0.0     # no_worse, equivalent: required; better: optional (an equivalence margin)
    smallest_effect: float | None = None  # better: the smallest difference that matters (the power's effect)
    at: dict = field(default_factory=dict)  # {factor: [levels]}: read at each level of a nuisance factor (matched)

    def as_record(self) -> dict:
        """What a study's sweep records before its runs (xablate.analysis.registration hashes it; `at` only when
        set, so a claim registered before it existed keeps its hash)."""
        record = {"claim": self.text, "kind": self.kind, "variant": self.variant, "than": self.others,
                  "metric": self.metric, "margin": self.margin, "smallest_effect": self.smallest_effect}
        return {**record, "at": self.at} if self.at else record

    def levels(self) -> list[dict]:
        """The matched settings it is read at ({factor: level} each; one empty setting without `at`). A claim at
        `tuned` levels has them once its tuning chose them (xablate.analysis.verdicts.with_tuned_levels)."""
        if not self.at:
            return [{}]
        (factor, values), = self.at.items()
        if values == TUNED_LEVELS:
            raise ValueError(f"the claim {self.text!r} is read at each variant's tuned {factor}: its levels are "
                             f"known once the tuning chose them")
        return [{factor: value} for value in values]

    @property
    def crossed(self) -> str | None:
        """The tuned key it is read at every variant's tuned value of (`at: {key: tuned}`), if any."""
        return next((factor for factor, values in self.at.items() if values == TUNED_LEVELS), None)


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    axes: list[str] | None = None     # None: found from what the runs' sweeps varied
    baseline: dict = field(default_factory=dict)
    metric: str | None = None         # None: test_accuracy where runs have it, else final validation accuracy
    claims: list[Claim] = field(default_factory=list)
    declared: bool = False            # read from experiments/<name>.yaml
    tune: TuneSpec | None = None      # a tuning stage (hydra.sweeper.tune): one value of tune.key per variant
    pilot: PilotSpec | None = None    # a pilot pass (hydra.sweeper.pilot): its ranking is compared with the study's
    beside: str | None = None         # another study drawn in this one's trend figure, e.g. unmatched beside matched
    supersedes: tuple[str, ...] = ()  # earlier studies of the same claims: the headline shows this one instead
    sequential: Any = None            # seeds until decided: xablate.analysis.sequential.SequentialSpec
    variance: tuple[str, ...] | None = None  # sources whose share of the spread it decomposes (xablate.analysis.variance)

    @property
    def crossed(self) -> str | None:
        """The tuned key its final stage crosses with every variant (a claim `at: {key: tuned}`): each variant runs
        at its own tuned value and at every other variant's, a factorial the staged sweeper builds after tuning."""
        return next((claim.crossed for claim in self.claims if claim.crossed), None)


STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_study_name(name: Any, setting: str = "study") -> str:
    """`name` when it is a safe study name (it names an MLflow experiment, a folder of results and a file of
    experiments/); ValueError in one line otherwise."""
    if not isinstance(name, str) or not STUDY_NAME.fullmatch(name):
        raise ValueError(f"Received {setting}={name!r}; allowed: a name of letters, digits, _, . and - (at most "
                         f"100, starting with a letter or digit), so that the folders named after it stay where "
                         f"they belong.")
    return name


def experiments_dir() -> Path:
    return project_root() / "experiments"


def declared_studies() -> list[str]:
    return sorted(p.stem for p in experiments_dir().glob("*.yaml"))


def declared_store(name: str) -> str | None:
    """The store a study file keeps its runs in (its `tracking.uri`, e.g. the committed reproduction's
    results/store/mlflow.db), a relative path read from the project's root; None when the file names none."""
    path = experiments_dir() / f"{name}.yaml"
    configured = ((read_study_file(path).get("tracking") or {}).get("uri")) if path.exists() else None
    if not configured:
        return None
    configured = str(configured)
    if "://" not in configured and not Path(configured).is_absolute():
        return f"sqlite:///{project_root() / configured}"
    return configured


def read_study_file(path: Path) -> dict:
    """A study file's contents; ValueError in one line naming the file and line for a YAML error."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ValueError(f"{where}: not valid YAML ({error.problem or error.context}); fix the file or move it out "
                         f"of {path.parent}.") from None
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot be read as a study file ({error}).") from None
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{path}: holds {type(data).__name__}; allowed: a mapping (a study file's keys).")
    return data or {}


def load_study(name: str) -> Study:
    """The study of experiments/<name>.yaml (file stem or its `study:` name), or an undeclared one. Only the
    study's own file is read when it has one, so a broken file of another study stops nothing about this one."""
    if not STUDY_NAME.fullmatch(name):  # not a study of experiments/ (and no path to build from it)
        return Study(name=name, title=name)
    own = experiments_dir() / f"{name}.yaml"
    if own.is_file():
        data = read_study_file(own)
        return parse_study(data.get("study") or own.stem, data, where=str(own))
    for path in sorted(experiments_dir().glob("*.yaml")):
        try:
            data = read_study_file(path)
        except ValueError:
            continue  # another study's broken file: its own commands say so
        if data.get("study") == name:
            return parse_study(name, data, where=str(path))
    return Study(name=name, title=name)


def refuse_unknown_keys(block: dict, known: tuple[str, ...], what: str, at: str) -> None:
    """ValueError for a key of `block` that is not one of `known`, naming the nearest known key."""
    unknown = [k for k in block if k not in known]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"allowed: {', '.join(known)}."
        raise ValueError(f"Received an unknown key {what}.{unknown[0]}={block[unknown[0]]!r}{at}; {hint}")


def _positive_finite(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and value > 0)


def check_study_block(study: str, analysis: dict | None) -> None:
    """A job config's analysis block (what a study file put there), parsed as the study: ValueError for a bad one.
    A sweep calls it once per distinct block before its parent run; a single run before it trains."""
    if analysis is not None:
        parse_study(str(study), {"analysis": analysis}, where=f"study {study!r}")


def parse_study(name: str, data: dict, where: str = "") -> Study:
    """Reads and checks a study file's contents; errors name the file, the setting and what is allowed."""
    block = data.get("analysis") or {}
    at = f" in {where}" if where else ""
    if not isinstance(block, dict):
        raise ValueError(f"Received analysis={block!r}{at}; allowed: a mapping with title, axes, baseline, claims.")
    refuse_unknown_keys(block, ANALYSIS_KEYS, "analysis", at)
    sweeper = (data.get("hydra") or {}).get("sweeper") or {}
    declared_sweep = sweeper.get("params") or {}
    tune, pilot = parse_tune(sweeper.get("tune")), parse_pilot(sweeper.get("pilot"))
    axes = block.get("axes")
    if axes is None:
        axes = [k for k in swept_keys(declared_sweep, []) if k not in REPLICATE_KEYS] or None
    elif not (isinstance(axes, list) and all(isinstance(a, str) for a in axes)):
        raise ValueError(f"Received analysis.axes={axes!r}{at}; allowed: a list of config keys.")
    if tune is not None and axes and set(tune.keys) & set(axes):
        raise ValueError(f"Received analysis.axes={axes!r}{at} with the tuned key {tune.key!r}; allowed: axes "
                         f"without it (each variant has its own tuned value).")
    baseline = block.get("baseline") or {}
    if not isinstance(baseline, dict):
        raise ValueError(f"Received analysis.baseline={baseline!r}{at}; allowed: a mapping axis: value.")
    metric = block.get("metric")
    if metric is not None and metric not in METRICS:
        raise ValueError(f"Received analysis.metric={metric!r}{at}; allowed: {', '.join(METRICS)}.")
    raw_claims = block.get("claims") or []
    if not isinstance(raw_claims, list):
        raise ValueError(f"Received analysis.claims={raw_claims!r}{at}; allowed: a list of claims.")
    # a tuned claim's key is checked against the tuning stage where the data says what it is (a study file, a
    # sweep's config); a job's analysis block alone (check_study_block) cannot
    claims = [_claim(c, axes or [], metric or "test_accuracy", at, tune, "hydra" in data) for c in raw_claims]
    crossed = sorted({claim.crossed for claim in claims if claim.crossed})
    other = next((claim for claim in claims if claim.at and not claim.crossed), None)
    if crossed and other is not None:
        raise ValueError(f"Received at={other.at!r} for the claim {other.text!r}{at} in a study crossed at its tuned "
                         f"{crossed[0]}; allowed: claims at `tuned` or without `at` there (each variant at its own "
                         f"tuned value), and matched settings of another factor in a study of their own.")
    if len(crossed) > 1:
        raise ValueError(f"Received claims at the tuned values of {' and '.join(crossed)}{at}; allowed: one tuned "
                         f"key crossed with the variants (a factorial over several is a study of its own).")
    beside = block.get("beside")
    if beside is not None and (not isinstance(beside, str) or not beside or beside == name):
        raise ValueError(f"Received analysis.beside={beside!r}{at}; allowed: the name of another study (drawn in "
                         f"this study's trend figure).")
    supersedes = block.get("supersedes") or []
    supersedes = [supersedes] if isinstance(supersedes, str) else supersedes
    if not isinstance(supersedes, list) or not all(isinstance(s, str) and s and s != name for s in supersedes):
        raise ValueError(f"Received analysis.supersedes={block['supersedes']!r}{at}; allowed: the name of an earlier "
                         f"study (or a list of them) whose headline rows this study's replace.")
    from xablate.analysis.sequential import parse_sequential

    sequential = parse_sequential(block.get("sequential"), at)
    if sequential is not None and not claims:
        raise ValueError(f"Received analysis.sequential={block['sequential']!r}{at} without claims; allowed: a "
                         f"sequential design for a study that declares claims (its looks decide them).")
    return Study(name=name, title=str(block.get("title") or name), axes=axes, baseline=baseline, metric=metric,
                 claims=claims, declared=True, tune=tune, pilot=pilot, beside=beside, sequential=sequential,
                 variance=_variance(block.get("variance"), at), supersedes=tuple(supersedes))


def _variance(block: Any, at: str) -> tuple[str, ...] | None:
    """analysis.variance: {sources: [...]}, two or more of the sources of variance a run draws a seed for."""
    from xablate.config import SOURCE_SEED_KEYS

    if block is None:
        return None
    sources = block.get("sources") if isinstance(block, dict) and set(block) == {"sources"} else None
    if (not isinstance(sources, list) or len(sources) < 2 or len(set(sources)) != len(sources)
            or not set(sources) <= set(SOURCE_SEED_KEYS)):
        raise ValueError(f"Received analysis.variance={block!r}{at}; allowed: {{sources: [...]}}, two or more of "
                         f"{', '.join(SOURCE_SEED_KEYS)} (each crossed in the sweep: "
                         f"{', '.join(f'{k} -> {v}' for k, v in SOURCE_SEED_KEYS.items())}).")
    return tuple(sources)


def _variant(value: Any, axes: list[str], what: str, at: str) -> dict:
    if isinstance(value, dict):
        return dict(value)
    if len(axes) != 1:
        raise ValueError(f"Received {what}={value!r}{at}; allowed: a mapping axis: value (the study has "
                         f"{len(axes)} axes, so a bare value is ambiguous).")
    return {axes[0]: value}


def _claim(raw: Any, axes: list[str], metric: str, at: str, tune: TuneSpec | None = None,
           tune_known: bool = True) -> Claim:
    if not isinstance(raw, dict) or "claim" not in raw:
        raise ValueError(f"Received the claim {raw!r}{at}; allowed: a mapping with claim (its text), better, "
                         f"no_worse or equivalent, than, and optionally metric, margin and smallest_effect.")
    refuse_unknown_keys(raw, CLAIM_KEYS, f"the claim {str(raw['claim'])[:60]!r}:", at)
    kinds = [k for k in CLAIM_KINDS if k in raw]
    if len(kinds) != 1:
        raise ValueError(f"Received the claim {raw['claim']!r}{at} with {kinds or 'neither'}; allowed: exactly one "
                         f"of {', '.join(CLAIM_KINDS)}.")
    kind = kinds[0]
    variant, others = raw[kind], raw.get("than")
    if kind == "equivalent" and others is None and isinstance(variant, list) and len(variant) == 2:
        variant, others = variant[0], [variant[1]]  # equivalent: [A, B]
    if not isinstance(others, list) or not others:
        raise ValueError(f"Received than={others!r} for the claim {raw['claim']!r}{at}; allowed: a non-empty list"
                         + (" (or equivalent: [A, B])" if kind == "equivalent" else "") + ".")
    claim_metric = raw.get("metric", metric)
    if claim_metric not in METRICS:
        raise ValueError(f"Received metric={claim_metric!r} for the claim {raw['claim']!r}{at}; allowed: "
                         f"{', '.join(METRICS)}.")
    margin = raw.get("margin")
    if margin is None and kind in NEEDS_MARGIN:
        raise ValueError(f"Received no margin for the {kind} claim {raw['claim']!r}{at}; allowed: margin, a number "
                         f"> 0 in the metric's units (how far apart still counts as "
                         f"{'no worse' if kind == 'no_worse' else 'equivalent'}).")
    if margin is not None and not _positive_finite(margin):
        raise ValueError(f"Received margin={margin!r} for the claim {raw['claim']!r}{at}; allowed: a finite number "
                         f"> 0 (how much worse still counts as no worse, in the metric's units).")
    effect = raw.get("smallest_effect")
    if effect is not None and (kind != "better" or not _positive_finite(effect)):
        raise ValueError(f"Received smallest_effect={effect!r} for the {kind} claim {raw['claim']!r}{at}; allowed: "
                         f"a finite number > 0 on a better claim (a no_worse or equivalent claim's margin plays that "
                         f"role).")
    matched = _matched(raw, axes, at, tune, tune_known)
    named_axes = [a for a in axes if a not in matched]  # a bare value names the axis that is not the factor
    variant = _variant(variant, named_axes, kind, at)
    others = [_variant(o, named_axes, "than", at) for o in others]
    for factor in matched:
        if any(factor in v for v in (variant, *others)):
            raise ValueError(f"Received at={{{factor}: …}} for the claim {raw['claim']!r}{at}: {factor} is one its "
                             f"variants name; allowed: {MATCHED_ALLOWED}.")
    seen = [_spelled(variant)]
    for other in others:
        if _spelled(other) in seen:
            raise ValueError(f"Received the claim {raw['claim']!r}{at} comparing {_label(other)} with itself; "
                             f"allowed: distinct variants (each of than differs from {kind} and from the others).")
        seen.append(_spelled(other))
    return Claim(text=str(raw["claim"]), kind=kind, variant=variant, others=others, metric=claim_metric,
                 margin=float(margin or 0.0), smallest_effect=None if effect is None else float(effect),
                 at=matched)


MATCHED_ALLOWED = ("a mapping of one study axis the claim's variants do not name to a list of two or more of its "
                   "values, e.g. at: {optim.learning_rate: [0.002, 0.008]}, or of a tuned key to `tuned` (every "
                   "variant's tuned value), e.g. at: {optim.learning_rate: tuned}")


TUNED_LEVELS = "tuned"  # at: {key: tuned}: read at every variant's tuned value of the key (a crossed final stage)


def _matched(raw: dict, axes: list[str], at: str, tune: TuneSpec | None = None, tune_known: bool = True) -> dict:
    """The claim's `at` block: one nuisance factor (a study axis) and its levels, or a tuned key at `tuned`."""
    block = raw.get("at")
    if block is None:
        return {}
    if not isinstance(block, dict) or len(block) != 1:
        raise ValueError(f"Received at={block!r} for the claim {raw['claim']!r}{at}; allowed: {MATCHED_ALLOWED}.")
    (factor, levels), = block.items()
    if levels == TUNED_LEVELS:
        if not tune_known:
            return {str(factor): TUNED_LEVELS}
        if tune is None or factor not in tune.keys:
            keys = f"the tuned keys are {', '.join(tune.keys)}" if tune is not None else "the study tunes nothing"
            raise ValueError(f"Received at={{{factor}: tuned}} for the claim {raw['claim']!r}{at}: {factor} is not "
                             f"a key its tuning stage picks ({keys}); allowed: {MATCHED_ALLOWED}.")
        if tune.search is not None and tune.search.repeats > 1:
            raise ValueError(f"Received at={{{factor}: tuned}} for the claim {raw['claim']!r}{at} with "
                             f"hydra.sweeper.tune.repeats={tune.search.repeats}; allowed: repeats: 1 with a claim at "
                             f"the tuned values (each variant must have one tuned value to be crossed at).")
        return {str(factor): TUNED_LEVELS}
    if axes and factor not in axes:
        raise ValueError(f"Received at={{{factor}: …}} for the claim {raw['claim']!r}{at}: {factor} is not a study "
                         f"axis ({', '.join(axes)}); allowed: {MATCHED_ALLOWED}.")
    if not isinstance(levels, list) or len(levels) < 2 or len({_as_override(v) for v in levels}) != len(levels):
        raise ValueError(f"Received at.{factor}={levels!r} for the claim {raw['claim']!r}{at}; allowed: "
                         f"{MATCHED_ALLOWED} (distinct values).")
    return {str(factor): list(levels)}


def _spelled(variant: dict) -> dict:
    return {str(k): _as_override(v) for k, v in variant.items()}


def _label(variant: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in _spelled(variant).items())


_as_override = as_override  # the name the study code has always used


def check_claims_made(study: Study, jobs: list[list[str]], job_config: dict) -> None:
    """ValueError for a claim that names a variant the sweep does not make (a typo in a claim, or in the grid):
    each of its axis values must be one the sweep's jobs take (`jobs`: one override list per job,
    xablate.sweeps.expand; the caller passes the study's declared grid too, so that a command that completes part
    of a study passes), or the configured value of an axis the sweep does not vary (`job_config`, flattened)."""
    made: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            key, _, value = override.lstrip("+~").partition("=")
            made.setdefault(key, set()).add(_as_override(value))
    for claim in study.claims:
        for variant in (claim.variant, *claim.others, *([] if claim.crossed else claim.levels())):
            for axis, value in variant.items():
                values = made.get(axis, {_as_override(job_config[axis])} if axis in job_config else set())
                if _as_override(value) not in values:
                    raise ValueError(
                        f"Received the claim {claim.text!r} naming {axis}={_as_override(value)}, a variant neither this "
                        f"sweep nor the study's grid makes; allowed: {axis} in {', '.join(sorted(values)) or '(not a config key)'} (to run "
                        f"part of a study without its claims: analysis.claims=[]).")


def claim_hash(claim: Claim) -> str:
    """A claim's fingerprint: its text, kind, variants, metric, margin and smallest effect (any edit changes it)."""
    return hashlib.sha256(json.dumps(claim.as_record(), sort_keys=True).encode()).hexdigest()[:16]


def claims_record(study: Study) -> str:
    """The tag a sweep's parent run records before its jobs: every claim with its hash (JSON). Over MLflow's tag
    limit the texts and hashes alone."""
    records = [{**c.as_record(), "hash": claim_hash(c)} for c in study.claims]
    text = json.dumps(records, sort_keys=True)
    return text if len(text) <= 7000 else json.dumps([{"claim": r["claim"][:200], "hash": r["hash"]} for r in records])
