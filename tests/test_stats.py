"""Every interval, test and rule of xablate.analysis.stats against its closed form, scipy as the reference,
edge cases included (one value, zero spread, values at 0 or 1)."""

import math

import numpy as np
import pytest
from scipy import stats

from xablate.analysis.stats import (holm, mean_ci, min_detectable_effect, non_inferiority_p, paired_difference,
                                    rank_agreement,
                                    seeds_needed)


def test_mean_ci_is_scipys_t_interval():
    values = [0.91, 0.93, 0.95, 0.90, 0.94]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    ci = mean_ci(values)
    assert (ci.n, ci.mean) == (5, pytest.approx(np.mean(values)))
    assert (ci.low, ci.high) == (pytest.approx(low), pytest.approx(high))


def test_mean_ci_is_clipped_to_the_metrics_range():
    values = [1.0, 1.0, 0.9]  # the t interval reaches above 1
    unclipped = mean_ci(values)
    clipped = mean_ci(values, bounds=(0.0, 1.0))
    assert unclipped.high > 1.0
    assert clipped.high == 1.0 and clipped.low == pytest.approx(unclipped.low)
    assert mean_ci([0.0, 0.0, 0.1], bounds=(0.0, 1.0)).low == 0.0


@pytest.mark.parametrize("values", [[0.5], [1.0, 1.0, 1.0], [0.0, 0.0], []])
def test_one_value_or_zero_spread_has_no_interval(values):
    ci = mean_ci(values, bounds=(0.0, 1.0))
    assert math.isnan(ci.low) and math.isnan(ci.high)
    assert ci.n == len(values)


def test_paired_difference_is_scipys_paired_t_test():
    variant = {0: 0.91, 1: 0.95, 2: 0.93, 3: 0.96}
    baseline = {0: 0.90, 1: 0.92, 2: 0.93, 3: 0.92, 9: 0.5}  # seed 9 has no partner: left out
    diff = paired_difference(variant, baseline)
    keys = [0, 1, 2, 3]
    expected = stats.ttest_rel([variant[k] for k in keys], [baseline[k] for k in keys])
    assert diff.replicates == (0, 1, 2, 3)
    assert diff.p_value == pytest.approx(expected.pvalue)
    ci = expected.confidence_interval(0.95)
    assert (diff.interval.low, diff.interval.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_a_one_image_gain_in_every_seed_is_not_certainty():
    """Zero spread: the same +1/359 in each of three seeds has no noise estimate, so no p and no MDE."""
    gain = 1 / 359
    diff = paired_difference({s: 0.95 + gain for s in range(3)}, {s: 0.95 for s in range(3)})
    assert diff.interval.mean == pytest.approx(gain)
    assert math.isnan(diff.p_value) and math.isnan(diff.interval.low) and math.isnan(diff.mde)


def _power(effect, sd, n, alpha=0.05):
    """Two-sided one-sample t-test power, straight from the noncentral t distribution."""
    df, shift = n - 1, effect / sd * math.sqrt(n)
    critical = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)


@pytest.mark.parametrize("n", [3, 10, 20])
def test_minimum_detectable_effect_has_80_percent_power(n):
    sd = 0.02
    mde = min_detectable_effect(sd, n)
    assert _power(mde, sd, n) == pytest.approx(0.8, abs=1e-6)
    assert _power(mde * 0.98, sd, n) < 0.8


def test_minimum_detectable_effect_known_multiples_and_normal_limit():
    # about 3.3x the spread at n=3, 1.0x at n=10, 0.66x at n=20 (REFERENCE's noncentral-t figures)
    assert min_detectable_effect(1.0, 3) == pytest.approx(3.3, abs=0.1)
    assert min_detectable_effect(1.0, 10) == pytest.approx(1.0, abs=0.03)
    assert min_detectable_effect(1.0, 20) == pytest.approx(0.66, abs=0.02)
    n = 2000  # large n: (z_0.975 + z_0.8) sd / sqrt(n)
    assert min_detectable_effect(1.0, n) == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / math.sqrt(n),
                                                          rel=2e-3)
    assert math.isnan(min_detectable_effect(0.0, 5)) and math.isnan(min_detectable_effect(1.0, 1))


def test_seeds_needed_is_the_fewest_that_reach_the_target():
    sd, target = 0.03, 0.02
    n = seeds_needed(sd, target)
    assert min_detectable_effect(sd, n) <= target < min_detectable_effect(sd, n - 1)
    with pytest.raises(ValueError, match="Received effect=0"):
        seeds_needed(sd, 0)


def test_non_inferiority_is_a_one_sided_test_against_the_margin():
    diffs = [-0.004, 0.002, -0.001, 0.003, -0.002]
    expected = stats.ttest_1samp(diffs, -0.01, alternative="greater").pvalue
    assert non_inferiority_p(diffs, 0.01) == pytest.approx(expected)
    assert math.isnan(non_inferiority_p([0.001, 0.001, 0.001], 0.01))  # zero spread


def test_holm_step_down():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    adjusted = holm([0.02, math.nan])  # the untestable comparison still counts in the family
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1])
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # 2 x 0.8 capped at 1; then monotone


def test_rank_agreement_in_closed_form_and_against_scipy():
    # four variants, one adjacent pair swapped: 5 concordant and 1 discordant pair -> tau = (5 - 1) / 6;
    # of the 24 orders of four, 1 + 3 have at most one inversion and 3 + 1 at least five: two-sided p = 8/24
    pilot = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}
    full = {"a": 0.5, "b": 0.6, "c": 0.8, "d": 0.7}
    agreement = rank_agreement(pilot, full)
    assert agreement.n == 4
    assert agreement.tau == pytest.approx(2 / 3)
    assert agreement.p_value == pytest.approx(1 / 3)
    reference = stats.kendalltau([0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.8, 0.7])
    assert (agreement.tau, agreement.p_value) == pytest.approx((reference.statistic, reference.pvalue))
    # a reversed order is perfect disagreement; the exact p of a full reversal of 4 is 2/24
    reversed_ = rank_agreement(pilot, {"a": 4, "b": 3, "c": 2, "d": 1})
    assert reversed_.tau == pytest.approx(-1) and reversed_.p_value == pytest.approx(2 / 24)


@pytest.mark.parametrize("pilot, full, n", [
    ({"a": 0.5}, {"a": 0.9}, 1),                                          # one variant orders nothing
    ({"a": 0.5, "b": 0.5, "c": 0.5}, {"a": 0.1, "b": 0.2, "c": 0.3}, 3),  # a pilot with zero spread
    ({"a": 0.1, "b": float("nan")}, {"a": 0.2, "b": 0.3}, 1),             # a diverged variant drops out
    ({"a": 0.1, "b": 0.2}, {"c": 0.2, "d": 0.3}, 0),                      # no variant in common
])
def test_rank_agreement_of_nothing_to_order_is_nan(pilot, full, n):
    agreement = rank_agreement(pilot, full)
    assert math.isnan(agreement.tau) and math.isnan(agreement.p_value) and agreement.n == n


def test_rank_agreement_with_ties_and_accuracies_at_0_and_1_matches_scipy():
    pilot = {"a": 0.0, "b": 0.0, "c": 1.0, "d": 1.0, "e": 0.5}
    full = {"a": 0.1, "b": 0.3, "c": 0.9, "d": 1.0, "e": 0.2}
    reference = stats.kendalltau([0.0, 0.0, 1.0, 1.0, 0.5], [0.1, 0.3, 0.9, 1.0, 0.2])
    agreement = rank_agreement(pilot, full)
    assert (agreement.tau, agreement.p_value) == pytest.approx((reference.statistic, reference.pvalue))


def test_the_power_of_each_test_matches_statsmodels_and_the_noncentral_t():
    from statsmodels.stats.power import TTestPower

    from xablate.analysis.stats import power_of_test

    # superiority: two-sided paired t, straight from the noncentral t
    sd, n, effect = 0.01, 8, 0.008
    shift, critical = effect / sd * math.sqrt(n), stats.t.ppf(0.975, n - 1)
    closed = stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift)
    assert power_of_test("superiority", effect, sd, n) == pytest.approx(closed)
    # non-inferiority: one-sided against the margin, true difference 0
    one = stats.nct.sf(stats.t.ppf(0.95, n - 1), n - 1, effect / sd * math.sqrt(n))
    assert power_of_test("non_inferiority", effect, sd, n) == pytest.approx(one)
    assert power_of_test("equivalence", effect, sd, n) == pytest.approx(max(0.0, 2 * one - 1))
    assert power_of_test("equivalence", effect, sd, n) == pytest.approx(
        2 * TTestPower().power(effect / sd, n, 0.05, alternative="larger") - 1)
    # far out statsmodels' two-sided form is NaN; ours is the (whole) upper tail
    assert power_of_test("superiority", 0.05, 0.01, 10) == pytest.approx(1.0)
    for no_test in [(0.01, 0.0, 5), (0.01, 0.01, 1), (0.0, 0.01, 5), (0.01, math.nan, 5)]:
        assert math.isnan(power_of_test("superiority", *no_test))
    with pytest.raises(ValueError, match="allowed: superiority, non_inferiority, equivalence"):
        power_of_test("bayesian", 0.01, 0.01, 5)


def test_tost_and_the_paired_effect_size_in_closed_form():
    from xablate.analysis.stats import cohens_dz, equivalence_p

    diffs = [0.002, 0.003, 0.001, 0.0025, 0.0015]
    m, s, n = np.mean(diffs), np.std(diffs, ddof=1), len(diffs)
    lower = stats.t.sf((m + 0.01) / (s / math.sqrt(n)), n - 1)
    upper = stats.t.cdf((m - 0.01) / (s / math.sqrt(n)), n - 1)
    assert equivalence_p(diffs, 0.01) == pytest.approx(max(lower, upper))
    assert cohens_dz(diffs) == pytest.approx(m / s)
    assert math.isnan(equivalence_p([0.01, 0.01, 0.01], 0.05)) and math.isnan(cohens_dz([0.3]))
    assert equivalence_p([1.0, 0.0, 1.0, 0.0], 0.01) > 0.5  # values at 0 or 1: a wide spread, nothing equivalent
