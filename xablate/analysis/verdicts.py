"""A study's declared claims against its runs, in the words a reviewer uses.

Claims come from the study's file (xablate/studies.py). For a claim over m comparisons (one variant against
each of m others), differences are paired by replicate (seed, split) and signed so that positive favours the
claim (for a metric where lower is better, other - variant). Diverged runs are scored, not dropped: an
accuracy at chance, a loss at the worst value reached in the study (xablate.analysis.store.scored). p-values
are Holm-adjusted across a family: every comparison of a study's pre-registered claims together (at a sequential
look, of those still undecided), an exploratory claim's comparisons alone; alpha = 0.05.

Outcome of one comparison, by the claim's kind (the test it declares):
- `better` (two-sided paired t-test): `reproduced` when the adjusted p < alpha and the difference favours the
  claim, `contradicted` when it is significant against it; with a declared `margin`, `equivalent` when the test
  found no difference and two one-sided tests (TOST) put it inside ±margin (adjusted p < alpha); else
  `inconclusive`.
- `no_worse` (one-sided test of H0 "worse by at least margin"): `non-inferior` when the adjusted p < alpha / 2
  (the convention: the lower bound of the two-sided 95 % interval above -margin; at a sequential look, half
  its two-sided nominal level); `contradicted` when the 95 % CI lies wholly below -margin; else `inconclusive`.
- `equivalent` (TOST at ±margin): `equivalent` when the adjusted TOST p < alpha; `contradicted` when the 95 % CI
  lies wholly outside ±margin; else `inconclusive`.
- Fewer than two pairs, or zero spread of the differences: `inconclusive` (no noise estimate, so no test).
A claim's outcome is the claim's own when every comparison supports it, `contradicted` when any is significant
against it, `not reproduced (equivalent to X)` when every comparison is decided and one showed no difference
from X within the margin (the claim is decided, against it, without a contradiction), else `inconclusive`: a
claim is decided when each of its comparisons is, in whatever direction, and a sequential study stops there.

Each comparison reports the paired effect size (Cohen's d_z, signed like its difference: variant - baseline in the
metric's units, in verdict.csv, verdict.md and the headline alike) and the power of the test actually done: against
the claim's margin (no_worse, equivalent) or its declared smallest effect (better), labelled *declared effect,
observed spread* — the effect was fixed before the runs, the spread was not, so this is not an a priori power;
a better claim that declares neither gets its minimum detectable effect instead, labelled *post hoc*, with the
95 % interval of the spread it rests on (with 3 seeds the true spread may be half or six times the observed).
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
from scipy import stats

from xablate.analysis.stats import (ALPHA, POWER, cohens_dz, equivalence_p, holm, non_inferiority_p,
                                    paired_difference, power_of_test)
from xablate.analysis.sensitivity import chosen_values, describe_setting
from xablate.analysis.store import Selection, ordered, same_value, typed, with_history_measures
from xablate.analysis.tables import per_replicate
from xablate.studies import METRICS, WITH_PENALTY, Claim

REPRODUCED, NON_INFERIOR, EQUIVALENT = "reproduced", "non-inferior", "equivalent"
CONTRADICTED, INCONCLUSIVE = "contradicted", "inconclusive"
OUTCOMES = (REPRODUCED, NON_INFERIOR, EQUIVALENT, CONTRADICTED, INCONCLUSIVE)
SUPPORTED = {"better": REPRODUCED, "no_worse": NON_INFERIOR, "equivalent": EQUIVALENT}
TEST_OF = {"better": "superiority", "no_worse": "non_inferiority", "equivalent": "equivalence"}
VERDICT_COLUMNS = ["study", "claim", "metric", "verdict", "evidence", "mde", "registration"]
COMPARISON_COLUMNS = ["study", "claim", "metric", "higher_is_better", "kind", "variant", "baseline", "n", "delta",
                      "ci_low", "ci_high", "p", "p_holm", "p_tost", "p_tost_holm", "effect_size", "outcome",
                      "margin", "power", "power_basis", "mde", "look", "look_number", "looks_planned", "next_look_n",
                      "confidence", "registration", "tuned", "holm_family", "boot_low", "boot_high", "p_improvement",
                      "p_improvement_low", "p_improvement_high", "predictions", "at", "interaction_p"]
NOT_RECORDED = "not recorded"
DECLARED_EFFECT = "declared effect, observed spread"  # the power's basis when the claim names the effect


def decide_comparison(kind: str, mean: float, low: float, high: float, p_adjusted: float, margin: float,
                      tost_adjusted: float = math.nan, levels: tuple[float, float] = (ALPHA, ALPHA)) -> str:
    """One comparison's outcome from its signed difference (positive favours the claim): its mean and 95 % CI,
    the Holm-adjusted p of the claim's test and, for a better claim with a margin, the adjusted TOST p;
    `levels`: the nominal level of a two-sided and of a one-sided test (alpha, or a sequential look's)."""
    two_sided, one_sided = levels
    if kind == "equivalent":
        p_adjusted = tost_adjusted
    if math.isnan(p_adjusted):
        return INCONCLUSIVE
    if kind == "better":
        if p_adjusted < two_sided:
            return REPRODUCED if mean > 0 else CONTRADICTED
        return EQUIVALENT if margin > 0 and tost_adjusted < one_sided else INCONCLUSIVE
    if kind == "no_worse" and p_adjusted < two_sided / 2:  # one-sided at alpha/2: the 95 % interval above -margin
        return NON_INFERIOR
    if kind == "equivalent" and p_adjusted < one_sided:  # TOST at alpha: the 90 % interval inside +-margin
        return EQUIVALENT
    if kind == "no_worse":
        return CONTRADICTED if high < -margin else INCONCLUSIVE
    return CONTRADICTED if low > margin or high < -margin else INCONCLUSIVE


NOT_REPRODUCED = "not reproduced"


def combine(decisions: list[str], baselines: list[str] | None = None, kind: str = "better") -> str:
    """A claim's outcome from its comparisons' (in the order of `baselines`): the claim's own when every
    comparison supports it; `contradicted` when any is significant against it; decided the other way when every
    comparison is decided and one went against the claim without contradicting it — `not reproduced (equivalent
    to X)` for a `better` claim whose difference from X was shown to lie inside its margin; `inconclusive` while
    any comparison is undecided. A decided claim stops its sequential seeds, whichever way it went."""
    if decisions and all(outcome == SUPPORTED[kind] for outcome in decisions):
        return SUPPORTED[kind]
    if CONTRADICTED in decisions:
        return CONTRADICTED
    if not decisions or INCONCLUSIVE in decisions:
        return INCONCLUSIVE
    against = [f"{outcome} to {baseline}" for outcome, baseline in zip(decisions, baselines or [""] * len(decisions))
               if outcome != SUPPORTED[kind]]
    return f"{NOT_REPRODUCED} ({'; '.join(against)})"


def spread_range(n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The 95 % interval of the true standard deviation as multiples of one observed from n values (chi-square)."""
    if n < 2:
        return math.nan, math.nan
    df = n - 1
    return (math.sqrt(df / stats.chi2.ppf((1 + confidence) / 2, df)),
            math.sqrt(df / stats.chi2.ppf((1 - confidence) / 2, df)))


def _power(claim: Claim, sd: float, n: int) -> tuple[float, str]:
    """The power of the claim's test and what it is computed against."""
    if claim.kind == "better" and claim.smallest_effect is None:
        return math.nan, "post hoc"
    effect = claim.smallest_effect if claim.kind == "better" else claim.margin
    alpha = ALPHA / 2 if claim.kind == "no_worse" else ALPHA  # the level its test is decided at
    return power_of_test(TEST_OF[claim.kind], effect, sd, n, alpha), DECLARED_EFFECT


def paired_seeds(selection: Selection, claim: Claim) -> list[int]:
    """The seeds every variant of `claim` has a scored run for (finished, or diverged and scored as such): a look
    is reached when this many pairs exist, not when one variant alone has run that far."""
    runs = selection.runs
    scored = runs[(runs["status"] == "FINISHED") | (runs["outcome"] == "diverged")]
    labels = [selection.variant_of(claim.variant), *(selection.variant_of(o) for o in claim.others)]
    common = [set(scored.loc[scored["variant"] == label, "seed"].dropna().astype(int)) for label in labels]
    return sorted(set.intersection(*common)) if common else []


def evaluate_family(selection: Selection, claims: list[Claim],
                    uncertainty: bool = True) -> list[tuple[dict, list[dict]]]:
    """(verdict row, comparison rows) of each claim of one Holm family of a study: every comparison of these
    claims Holm-adjusted together. For a sequential study, look by look (xablate.analysis.sequential): at each look
    the claims still undecided that reached it form the family at that look's nominal level, and a claim stops at
    the first look that decides it, else keeps the last look its seeds reach."""
    spec = selection.study.sequential
    if spec is None:
        decided = _decide_together(selection, [(claim, selection.runs) for claim in claims], (ALPHA, ALPHA), None)
        for claim, (row, compared) in zip(claims, decided):
            if uncertainty:
                add_test_set_variance(row, compared, claim, selection.runs)
        return decided
    seeds = {claim.text: paired_seeds(selection, claim) for claim in claims}
    results: dict[str, tuple] = {}
    for claim in claims:
        if len(seeds[claim.text]) < spec.looks[0]:  # nothing is decided before the first look, either way
            row, compared = _decide_together(selection, [(claim, selection.runs)], (0.0, 0.0),
                                             f"before the first look (n={len(seeds[claim.text])} of "
                                             f"{spec.looks[0]})")[0]
            for c in compared:
                c.update(outcome=INCONCLUSIVE, look_number=0, looks_planned=len(spec.looks),
                         next_look_n=spec.looks[0])
            row["verdict"] = INCONCLUSIVE
            results[claim.text] = (row, compared, None, None, selection.runs)
    open_ = [claim for claim in claims if claim.text not in results]
    for k, n in enumerate(spec.looks):
        at_look = [claim for claim in open_ if len(seeds[claim.text]) >= n]
        if not at_look:
            break
        levels = (spec.nominal(k, 2), spec.nominal(k, 1))
        where = f"look {k + 1} of {len(spec.looks)} (n={n}, {spec.spending} nominal p < {levels[0]:.3g} two-sided)"
        runs = {claim.text: selection.runs[selection.runs["seed"].astype(int).isin(seeds[claim.text][:n])]
                for claim in at_look}
        decided = _decide_together(selection, [(claim, runs[claim.text]) for claim in at_look], levels, where)
        for claim, (row, compared) in zip(at_look, decided):
            results[claim.text] = (row, compared, k, where, runs[claim.text])
        open_ = [claim for claim in open_ if claim not in at_look or results[claim.text][0]["verdict"] == INCONCLUSIVE]
    out = []
    for claim in claims:
        row, compared, k, where, read = results[claim.text]
        if uncertainty:
            add_test_set_variance(row, compared, claim, read)
        if k is not None:
            going_on = row["verdict"] == INCONCLUSIVE and k < len(spec.looks) - 1
            if going_on:
                where += f"; continuing to n={spec.looks[k + 1]}"
            for c in compared:
                c.update(look=where, look_number=k + 1, looks_planned=len(spec.looks),
                         next_look_n=spec.looks[k + 1] if going_on else math.nan)
            row["evidence"] += f" — sequential: {where}; plan: {spec.source}"
        out.append((row, compared))
    return out


def _decide_together(selection: Selection, claims: list[tuple[Claim, pd.DataFrame]], levels: tuple[float, float],
                     look: str | None) -> list[tuple[dict, list[dict]]]:
    """Each claim measured on its runs, every p of the family Holm-adjusted together (the claim's tests and, apart,
    the TOST tests), then each claim decided."""
    measured = [_measure(selection, claim, runs, levels, look) for claim, runs in claims]
    flat = [m for per_claim in measured for m in per_claim]
    adjusted, tost_adjusted = holm([m[3] for m in flat]), holm([m[4] for m in flat])
    out, start = [], 0
    for (claim, runs), per_claim in zip(claims, measured):
        end = start + len(per_claim)
        out.append(_decide(selection, claim, runs, per_claim, adjusted[start:end], tost_adjusted[start:end], levels,
                           look, len(flat)))
        start = end
    return out


def _measure(selection: Selection, claim: Claim, runs, levels: tuple[float, float], look: str | None) -> list[tuple]:
    """(baseline label, paired difference, signed differences, p of the claim's test, TOST p) per comparison."""
    higher = METRICS[claim.metric][1]
    sign = 1.0 if higher else -1.0
    variant = selection.variant_of(claim.variant)
    mine = per_replicate(runs[runs["variant"] == variant], claim.metric)
    measured = []
    for other in claim.others:
        label = selection.variant_of(other)
        theirs = per_replicate(runs[runs["variant"] == label], claim.metric)
        signed_mine = {k: sign * v for k, v in mine.items()}
        signed_theirs = {k: sign * v for k, v in theirs.items()}
        # at a sequential look the interval is at that look's nominal level (a repeated confidence interval), so
        # "contradicted" spends no more error than the boundary allows
        confidence = 1 - levels[0] if look and levels[0] > 0 else 0.95
        diff = paired_difference(signed_mine, signed_theirs, confidence)
        signed = [signed_mine[k] - signed_theirs[k] for k in diff.replicates]
        p = non_inferiority_p(signed, claim.margin) if claim.kind == "no_worse" else diff.p_value
        tost = equivalence_p(signed, claim.margin) if claim.margin > 0 and claim.kind != "no_worse" else math.nan
        measured.append((label, diff, signed, p, tost))
    return measured


def _decide(selection: Selection, claim: Claim, runs, measured: list[tuple], adjusted: list[float],
            tost_adjusted: list[float], levels: tuple[float, float], look: str | None,
            family: int) -> tuple[dict, list[dict]]:
    higher = METRICS[claim.metric][1]
    sign = 1.0 if higher else -1.0
    variant = selection.variant_of(claim.variant)
    confidence = 1 - levels[0] if look and levels[0] > 0 else 0.95
    decisions, parts, comparisons = [], [], []
    for (label, diff, signed, p, tost), p_adj, tost_adj in zip(measured, adjusted, tost_adjusted):
        i, n = diff.interval, len(diff.replicates)
        outcome = decide_comparison(claim.kind, i.mean, i.low, i.high, p_adj, claim.margin, tost_adj, levels)
        decisions.append(outcome)
        power, basis = _power(claim, i.sd, n)
        d = cohens_dz(signed)
        why = ""
        if n < 2:
            why = " (fewer than 2 paired seeds: no test)"
        elif not i.sd > 0:
            why = " (zero spread of the differences: no noise estimate, no test)"
        shown_p = tost if claim.kind == "equivalent" else p
        shown_adj = tost_adj if claim.kind == "equivalent" else p_adj
        # one sign everywhere (verdict.md, verdict.csv, the headline): variant - baseline in the metric's units
        delta, low, high = sign * i.mean, sign * (i.low if higher else i.high), sign * (i.high if higher else i.low)
        text = (f"vs {label}: **{outcome}**, {delta:+.4f} [{low:+.4f}, {high:+.4f}], d={sign * d:.2f}, "
                f"p={shown_p:.3g}, Holm p={shown_adj:.3g}")
        if claim.kind == "better" and claim.margin > 0:
            text += f", TOST p={tost:.3g} (Holm {tost_adj:.3g})"
        text += f", n={n}"
        if basis == DECLARED_EFFECT and not math.isnan(power):
            text += f", power {power:.0%} at {claim.smallest_effect or claim.margin:g} (observed spread)"
        parts.append(text + why)
        comparisons.append({
            "study": selection.study.name, "claim": claim.text, "metric": claim.metric, "higher_is_better": higher,
            "kind": claim.kind, "variant": variant, "baseline": label, "n": n,
            # variant - baseline in the metric's own units (not signed by the claim)
            "delta": delta, "ci_low": low, "ci_high": high, "p": shown_p, "p_holm": shown_adj,
            "p_tost": tost, "p_tost_holm": tost_adj, "effect_size": sign * d, "outcome": outcome,
            "margin": claim.margin if claim.margin > 0 else math.nan, "power": power, "power_basis": basis,
            "mde": diff.mde, "look": look or f"fixed design (n={n})", "look_number": math.nan,
            "looks_planned": math.nan, "next_look_n": math.nan, "confidence": confidence,
            "registration": NOT_RECORDED, "holm_family": family, "boot_low": math.nan, "boot_high": math.nan,
            "p_improvement": math.nan, "p_improvement_low": math.nan, "p_improvement_high": math.nan,
            "predictions": "", "at": "", "interaction_p": math.nan})
    verdict = combine(decisions, [c["baseline"] for c in comparisons], claim.kind)
    mdes = [c["mde"] for c in comparisons if not math.isnan(c["mde"])]
    worst_mde = max(mdes, default=math.nan)
    direction = "" if higher else " (lower is better)"
    margin = f", margin ±{claim.margin:g}" if claim.kind != "no_worse" and claim.margin > 0 else (
        f", margin {claim.margin:g}" if claim.margin > 0 else "")
    evidence = f"{claim.metric}{direction}{margin}; " + "; ".join(parts)
    if verdict == INCONCLUSIVE and not math.isnan(worst_mde) and all(c["power_basis"] == "post hoc"
                                                                     for c in comparisons):
        n = max(c["n"] for c in comparisons)
        low, high = spread_range(n)
        evidence += (f" — post hoc: at the observed spread a true difference of {worst_mde:.4f} would be found "
                     f"{POWER:.0%} of the time; that spread rests on n={n} (the true one may be {low:.2f}x to "
                     f"{high:.2f}x it), so this is a rough scale, not a bound")
    evidence += penalty_note(claim.metric, runs[runs["variant"].isin([variant, *(c["baseline"] for c in comparisons)])])
    row = {"study": selection.study.name, "claim": claim.text, "metric": claim.metric, "verdict": verdict,
           "evidence": evidence, "mde": worst_mde, "registration": NOT_RECORDED}
    return row, comparisons


def add_test_set_variance(row: dict, compared: list[dict], claim: Claim, runs: pd.DataFrame) -> None:
    """Each comparison's probability of improvement over the replicates it pairs, and for test accuracy with
    every paired run's per-image predictions kept, the two-level (seeds x test images) bootstrap interval of its
    difference (xablate.analysis.uncertainty); the claim's evidence says which it has."""
    from xablate.analysis.uncertainty import (correctness, improvement_interval, probability_of_improvement,
                                              two_level_bootstrap)

    higher = METRICS[claim.metric][1]
    sign = 1.0 if higher else -1.0
    parts, missing = [], 0
    for c in compared:
        mine = per_replicate(runs[runs["variant"] == c["variant"]], claim.metric)
        theirs = per_replicate(runs[runs["variant"] == c["baseline"]], claim.metric)
        keys = sorted(set(mine) & set(theirs))
        a, b = [sign * mine[k] for k in keys], [sign * theirs[k] for k in keys]  # higher: better for the variant
        p = probability_of_improvement(a, b)
        low, high = improvement_interval(a, b)
        c.update(p_improvement=p, p_improvement_low=low, p_improvement_high=high)
        text = f"vs {c['baseline']}: P(improvement) {p:.2f} [{low:.2f}, {high:.2f}]" if not math.isnan(low) else \
            f"vs {c['baseline']}: P(improvement) {p:.2f}"
        if claim.metric == "test_accuracy" and keys:
            where = {label: dict(zip(group["replicate"], group["predictions"]))
                     for label, group in runs[runs["variant"].isin([c["variant"], c["baseline"]])].groupby("variant")}
            pairs = [(where[c["variant"]].get(k), where[c["baseline"]].get(k)) for k in keys]
            if all(isinstance(x, str) and isinstance(y, str) for x, y in pairs):
                boot = two_level_bootstrap(correctness([x for x, _ in pairs]).astype(float)
                                           - correctness([y for _, y in pairs]).astype(float), c["confidence"])
                c.update(boot_low=boot.low, boot_high=boot.high,
                         predictions=f"kept: {boot.replicates} seeds x {boot.images} test images")
                text += (f", seeds × test images bootstrap [{boot.low:+.4f}, {boot.high:+.4f}] over "
                         f"{boot.images:,} images")
            else:
                kept = sum(isinstance(x, str) and isinstance(y, str) for x, y in pairs)
                c["predictions"] = f"not kept ({kept} of {len(pairs)} pairs): seed variance only"
                missing += 1
        parts.append(text)
    row["evidence"] += " — " + "; ".join(parts)
    if missing:
        row["evidence"] += (" (per-image test predictions not kept by these runs — from before runs kept them, or "
                            "diverged: the intervals hold the seeds' variance, not the test set's)")


def penalty_note(metric: str, runs: pd.DataFrame) -> str:
    """A caveat for a loss that includes the weight penalty when the runs trained with one: the penalty differs
    between variants of different parameter counts by construction, so the metric measures two things."""
    if metric not in WITH_PENALTY or runs.empty:
        return ""
    values = [typed(p.get("optim.weight_decay")) for p in runs["params"]]  # "None" as MLflow records a null
    decay = {float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0 for v in values}
    if not any(d > 0 for d in decay):
        return ""
    sizes = runs.groupby("variant")["total_params"].first().dropna()
    differ = sizes.nunique() > 1
    counts = ", ".join(f"{v} {int(n):,}" for v, n in sizes.items())
    return (f" — {metric} includes the weight penalty (optim.weight_decay {', '.join(f'{d:g}' for d in sorted(decay))})"
            + (f", which differs between these variants by construction (parameters: {counts})" if differ else "")
            + f"; {WITH_PENALTY[metric]} reads the cross-entropy alone")


def tuning_saturation(selection: Selection, chosen: dict[str, dict]) -> dict[str, list[str]]:
    """Per tuned variant, why its tuning is not saturated (xablate.analysis.tuning_curves; empty lists: it is)."""
    from xablate.analysis.sensitivity import trial_table, tuning_runs
    from xablate.analysis.tuning_curves import finished_scores, saturation_flags

    tune = selection.study.tune
    if tune is None or selection.tuning is None:
        return {}
    from xablate.analysis.sensitivity import own_choices

    trials = trial_table(tuning_runs(selection), tune.keys)
    space = tune.search.space if tune.search is not None else {}
    own = own_choices(selection, chosen)  # as the tuning knew each variant (a crossed study: its own value)
    by_tuning = {variant: saturation_flags(finished_scores(trials, variant), values, space, tune.values)
                 for variant, values in own.items()}
    flags = {variant: list(by_tuning.get(selection.tuning_label(variant), [])) for variant in chosen}
    final, tried = selection.runs["epochs"].dropna(), selection.tuning["epochs"].dropna()
    if len(final) and len(tried) and tried.max() < final.max():  # a shortened budget: not the final recipe
        for variant in flags:
            flags[variant].append(f"its trials trained {int(tried.max())} of the final {int(final.max())} epochs")
    return flags


def shared_seeds(selection: Selection) -> list[int]:
    """The seeds both a tuning run and a final run of the study trained on. Training is deterministic given the
    seed, so a final run on such a seed at its variant's chosen setting repeats the tuning run the choice was
    selected on: a selection effect in that variant's favour at its own tuned value (hydra.sweeper.tune.seeds_from
    keeps the two apart)."""
    if selection.tuning is None or "seed" not in selection.tuning or "seed" not in selection.runs:
        return []
    as_ints = lambda column: {int(float(s)) for s in column.dropna()}  # noqa: E731
    return sorted(as_ints(selection.tuning["seed"]) & as_ints(selection.runs["seed"]))


def shared_seeds_note(seeds: list[int]) -> str:
    """` — tuned on the finals' seeds: …` when the tuning trained on seeds the final runs use (shared_seeds)."""
    if not seeds:
        return ""
    shown = ", ".join(map(str, seeds))
    return (f" — tuned on the finals' seeds: seed{'s' if len(seeds) > 1 else ''} {shown} trained tuning runs too, so "
            f"a final run there at its variant's tuned setting repeats a run the choice was selected on (a "
            f"selection effect; tune.seeds_from keeps them apart)")


def unsaturated_note(saturation: dict[str, list[str]], compared: list[dict]) -> str:
    """` — tuning not saturated: <variant>: <why>` for the compared variants whose tuning was not."""
    variants = dict.fromkeys(v for c in compared for v in (c["variant"], c["baseline"]))
    parts = [f"{v}: {'; '.join(saturation[v])}" for v in variants if saturation.get(v)]
    return f" — tuning not saturated: {' | '.join(parts)}" if parts else ""


def tuned_note(chosen: dict[str, dict], compared: list[dict], repeated: bool = False) -> str:
    """What a tuned comparison rests on: the variants' own tuned values, and whether they differ (then the
    difference depends on them: at a shared setting it could be another, see the study's sensitivity.png)."""
    parts = []
    for c in compared:
        mine, theirs = chosen.get(c["variant"], {}), chosen.get(c["baseline"], {})
        same = ("the same tuned setting" if mine == theirs
                else "different tuned settings: a difference between each at its own best, not at a shared setting")
        parts.append(f"{c['variant']} at {describe_setting(mine)} vs {c['baseline']} at {describe_setting(theirs)} "
                     f"({same})")
    return " — tuned per variant: " + "; ".join(parts) + (
        " — tuning repeated with other sampler seeds (a|b: each repeat's choice): the replicates spread over the "
        "choices, so the interval carries the tuning's own variance" if repeated else "")


def with_tuned_levels(selection: Selection, claim: Claim) -> Claim:
    """A claim of a study crossed at its tuned values, as its runs read it: a claim `at: {key: tuned}` at every
    variant's tuned value (the levels, in order); a claim without `at` between each variant at its own tuned value
    (what an untuned reader of the claim means: each at its best). Other claims and studies: unchanged."""
    key = selection.crossed
    if not key or (claim.at and not claim.crossed):
        return claim
    if claim.crossed:
        levels = ordered(pd.Series(list(dict.fromkeys(selection.own.values())) if selection.own
                                   else list(selection.runs[key].dropna())))
        return dataclasses.replace(claim, at={key: list(levels)})
    own = lambda variant: {**variant, key: selection.own_value(variant)}  # noqa: E731
    return dataclasses.replace(claim, variant=own(claim.variant), others=[own(o) for o in claim.others])


def at_level(claim: Claim, level: dict) -> Claim:
    """The claim read at one matched setting: its variants at that level of the factor (a claim without `at`:
    itself)."""
    if not level:
        return claim
    spelled = ", ".join(f"{k}={v}" for k, v in level.items())
    return dataclasses.replace(claim, text=f"{claim.text} [at {spelled}]", variant={**claim.variant, **level},
                               others=[{**other, **level} for other in claim.others], at={})


DEPENDS_ON = "depends on"


def combine_levels(verdicts: list[str], factor: str, kind: str) -> str:
    """A matched claim's outcome from its levels' outcomes: the claim's own when it holds at every level;
    `depends on <factor>` when it holds at one level and is decided against it at another; decided against when
    every level is (contradicted if any level is); else inconclusive."""
    supported = SUPPORTED[kind]
    if all(v == supported for v in verdicts):
        return supported
    against = [v for v in verdicts if v == CONTRADICTED or v.startswith(NOT_REPRODUCED)]
    if supported in verdicts and against:
        return f"{DEPENDS_ON} {factor}"
    if len(against) == len(verdicts):
        return CONTRADICTED if CONTRADICTED in against else (
            against[0] if len(set(against)) == 1 else f"{NOT_REPRODUCED} (at every level of {factor})")
    return INCONCLUSIVE


def merge_levels(selection: Selection, claim: Claim, results: list[tuple[dict, list[dict]]]) -> tuple[dict, list[dict]]:
    """One verdict row from a matched claim's levels, with the variant x factor interaction test."""
    (factor, values), = claim.at.items()
    verdicts = [row["verdict"] for row, _ in results]
    verdict = combine_levels(verdicts, factor, claim.kind)
    test = interaction_test(selection, claim)
    compared = [c for _, rows in results for c in rows]
    for c in compared:
        c["interaction_p"] = test[1]
    whose = ""
    if factor == selection.crossed and selection.own:  # the levels are the variants' tuned values: whose is which
        chose = {}
        for variant, value in selection.own.items():
            chose.setdefault(next((v for v in values if same_value(v, value)), value), []).append(variant)
        whose = "; tuned by " + ", ".join(f"{' and '.join(chose.get(v, ['?']))} ({v})" for v in values)
    evidence = f"matched at each {factor} ({', '.join(map(str, values))}{whose}): " + " | ".join(
        f"at {factor}={value}: {v}; {row['evidence']}" for value, v, (row, _) in zip(values, verdicts, results))
    if not math.isnan(test[1]):
        evidence += (f" — variant × {factor} interaction (two-way repeated-measures ANOVA, replicate as subject, "
                     f"statsmodels AnovaRM, n={test[2]}): F={test[0]:.3g}, p={test[1]:.3g}")
    else:
        evidence += f" — variant × {factor} interaction not tested (fewer than 2 replicates in every cell)"
    mdes = [row["mde"] for row, _ in results if not math.isnan(row["mde"])]
    row = {**results[0][0], "claim": claim.text, "verdict": verdict, "evidence": evidence,
           "mde": max(mdes, default=math.nan)}
    return row, compared


def interaction_test(selection: Selection, claim: Claim) -> tuple[float, float, int]:
    """(F, p, replicates) of the variant x factor interaction of a matched claim, over the replicates that have a
    value in every cell (its variants at every level): a two-way repeated-measures ANOVA with the replicate as
    subject (statsmodels' AnovaRM); NaN below two complete replicates or without spread."""
    from statsmodels.stats.anova import AnovaRM

    (factor, values), = claim.at.items()
    rows = []
    for i, variant in enumerate([claim.variant, *claim.others]):
        for j, value in enumerate(values):
            label = selection.variant_of({**variant, factor: value})
            for replicate, score in per_replicate(selection.runs[selection.runs["variant"] == label],
                                                  claim.metric).items():
                rows.append({"replicate": str(replicate), "variant": i, "level": j, "value": score})
    data = pd.DataFrame(rows, columns=["replicate", "variant", "level", "value"])
    cells = (len(claim.others) + 1) * len(values)
    complete = data.groupby("replicate")["value"].count()
    data = data[data["replicate"].isin(complete[complete == cells].index)]
    n = data["replicate"].nunique()
    if n < 2 or data["value"].std() == 0:
        return math.nan, math.nan, n
    table = AnovaRM(data, depvar="value", subject="replicate", within=["variant", "level"]).fit().anova_table
    found = table.loc["variant:level"]
    return float(found["F Value"]), float(found["Pr > F"]), n


def holm_families(study: str, claims: list[Claim], labels: dict[str, str]) -> list[tuple[str, list[Claim]]]:
    """(name, claims) of each Holm family of a study: its pre-registered claims together (the comparisons it
    committed to before its runs), each other claim alone (exploratory: computed alike, corrected within itself)."""
    from xablate.analysis.registration import PRE_REGISTERED

    registered = [claim for claim in claims if str(labels.get(claim.text, "")).startswith(PRE_REGISTERED)]
    families = [(f"the pre-registered claims of {study}", registered)] if registered else []
    return families + [(f"this claim of {study} alone", [claim]) for claim in claims if claim not in registered]


def verdict_tables(selections: list[tuple[Selection, pd.DataFrame]],
                   registered: dict[tuple[str, str], str] | None = None,
                   uncertainty: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per declared claim, one row per comparison) of each study, given as (selection, history);
    `registered`: {(study, claim text): registration label} (xablate.analysis.registration); uncertainty=False:
    the decisions only (a sequential look, status), without the bootstraps and the tuning's saturation."""
    rows, comparisons = [], []
    for selection, history in selections:
        if selection.runs.empty or not selection.study.claims:
            continue
        selection.runs = with_history_measures(selection.runs, history)
        chosen = chosen_values(selection)
        saturation = tuning_saturation(selection, chosen) if chosen and uncertainty else {}
        overlap = shared_seeds(selection) if chosen else []
        study_claims = [with_tuned_levels(selection, claim) for claim in selection.study.claims]
        label_of = {claim.text: (registered or {}).get((selection.study.name, claim.text), NOT_RECORDED)
                    for claim in study_claims}
        evaluated = {}
        for family, claims in holm_families(selection.study.name, study_claims, label_of):
            levels = [(claim, level) for claim in claims for level in claim.levels()]  # a matched claim: each level
            results = evaluate_family(selection, [at_level(claim, level) for claim, level in levels], uncertainty)
            for (claim, level), (row, compared) in zip(levels, results):
                for c in compared:
                    size = c["holm_family"]
                    c.update(claim=claim.text, holm_family=f"{family} ({size} comparison{'s' if size != 1 else ''})",
                             at=", ".join(f"{k}={v}" for k, v in level.items()))
                row["claim"] = claim.text
            for claim in claims:
                mine = [result for (owner, _), result in zip(levels, results) if owner is claim]
                evaluated[claim.text] = mine[0] if not claim.at else merge_levels(selection, claim, mine)
        for claim in study_claims:
            row, compared = evaluated[claim.text]
            if chosen:  # a tuned study: the difference is between each variant at its own tuned values
                tune = selection.study.tune
                repeated = tune is not None and tune.search is not None and tune.search.repeats > 1
                row["evidence"] += (tuned_note(chosen, compared, repeated) + unsaturated_note(saturation, compared)
                                    + shared_seeds_note(overlap))
                for c in compared:
                    c["tuned"] = (f"{c['variant']}: {describe_setting(chosen.get(c['variant'], {}))}; "
                                  f"{c['baseline']}: {describe_setting(chosen.get(c['baseline'], {}))}")
            label = label_of[claim.text]
            row["registration"] = label
            for c in compared:
                c["registration"] = label
            rows.append(row)
            comparisons += compared
    every = pd.DataFrame(comparisons, columns=COMPARISON_COLUMNS)
    looks = ["look_number", "looks_planned", "next_look_n"]  # whole numbers, empty where they do not apply
    every[looks] = every[looks].apply(pd.to_numeric).astype("Int64")
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS), every


def verdict_table(selections: list[tuple[Selection, pd.DataFrame]],
                  registered: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """One row per declared claim of each study, given as (selection, history)."""
    return verdict_tables(selections, registered)[0]
