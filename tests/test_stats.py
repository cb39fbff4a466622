"""bench/stats.py on synthetic data with known answers."""
import math
from itertools import combinations

import numpy as np
import pytest

from bench import stats


def test_wilson_interval_of_known_counts():
    half = stats.wilson_interval(5, 10)  # textbook value: [0.2366, 0.7634]
    assert (round(half.low, 4), round(half.high, 4)) == (0.2366, 0.7634)
    assert half.kind == "95% Wilson score"
    none = stats.wilson_interval(0, 10)
    assert none.low == 0.0 and round(none.high, 4) == 0.2775
    everything = stats.wilson_interval(200, 200)
    assert everything.high == 1.0 and round(everything.low, 4) == 0.9812
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)


def test_clopper_pearson_is_exact_and_wider_than_wilson():
    zero = stats.clopper_pearson_interval(0, 10)  # upper end solves (1 - p)^10 = 0.025
    assert zero.low == 0.0 and zero.high == pytest.approx(1 - 0.025 ** (1 / 10))
    for k in (1, 5, 9):
        exact, wilson = stats.clopper_pearson_interval(k, 10), stats.wilson_interval(k, 10)
        assert exact.low < wilson.low and exact.high > wilson.high


def test_iqm_of_a_known_array():
    assert stats.iqm(np.arange(1, 9)) == 4.5  # cuts 1, 2 and 7, 8
    assert stats.iqm([0, 0, 5, 5, 100, -100, 5, 5]) == 3.75  # outliers cut: mean of 0, 5, 5, 5
    rows = stats.iqm(np.array([[1, 2, 3, 4], [10, 20, 30, 40]]), axis=-1)
    assert rows.tolist() == [2.5, 25.0]


def test_bootstrap_is_deterministic_with_a_seed_and_refused_with_few_seeds():
    values = np.array([0.1, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.85, 0.9, 1.0, 0.95, 0.3])
    first = stats.percentile_bootstrap(values, seed=3)
    assert first == stats.percentile_bootstrap(values, seed=3)
    assert first != stats.percentile_bootstrap(values, seed=4)
    assert first.low < values.mean() < first.high and "percentile bootstrap over 12 seeds" in first.kind
    assert stats.percentile_bootstrap(values[:5]) is None, "5 seeds: no bootstrap claimed"
    fallback = stats.seed_interval(values[:5])
    assert (fallback.low, fallback.high) == (0.1, 0.6) and fallback.kind == "min-max of 5 seeds"


def test_stratified_bootstrap_resamples_within_tasks_only():
    # Each task's runs are identical, so any within-task resample reproduces them: the interval is a point.
    point, interval = stats.stratified_bootstrap({"a": [0.2] * 10, "b": [0.9] * 10, "c": [0.5] * 10})
    assert point == pytest.approx(stats.iqm([0.2] * 10 + [0.9] * 10 + [0.5] * 10))
    assert interval.low == pytest.approx(point) and interval.high == pytest.approx(point)
    assert interval.kind == "95% stratified bootstrap (3 tasks, 30 runs)"
    spread = {"a": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0], "b": np.linspace(0.5, 0.9, 10)}
    assert stats.stratified_bootstrap(spread, seed=1) == stats.stratified_bootstrap(spread, seed=1)
    _, wide = stats.stratified_bootstrap(spread)
    assert wide.low < wide.high


def test_stratified_bootstrap_needs_the_bootstrap_minimum_in_every_task():
    """Each task is resampled on its own, so each is held to MIN_BOOTSTRAP_SEEDS, like one cell: 4 tasks of 5
    runs (20 in all) give the IQM and no interval; one task short of the minimum is enough to refuse."""
    five = {task: [0.1, 0.5, 0.6, 0.9, 1.0] for task in "abcd"}
    point, interval = stats.stratified_bootstrap(five)
    assert point == pytest.approx(stats.iqm(np.concatenate(list(five.values())))) and interval is None
    enough = {task: np.linspace(0, 1, stats.MIN_BOOTSTRAP_SEEDS) for task in "abcd"}
    assert stats.stratified_bootstrap(enough)[1] is not None
    enough["d"] = enough["d"][1:]
    assert stats.stratified_bootstrap(enough)[1] is None
    assert stats.stratified_bootstrap(five, min_samples=5)[1] is not None


def test_mann_whitney_on_clearly_separated_samples():
    high, low = [6, 7, 8, 9, 10], [1, 2, 3, 4, 5]
    result = stats.mann_whitney(high, low, "greater")
    assert result.statistic == 25 and result.p_value == pytest.approx(1 / math.comb(10, 5))
    assert stats.mann_whitney(low, high, "greater").p_value == pytest.approx(1.0)
    assert stats.mann_whitney([1, 1, 1], [1, 1, 1]).p_value == 1.0
    assert result.name == "Mann-Whitney U (exact)"


def test_mann_whitney_stays_exact_with_ties_and_matches_scipy_without():
    from scipy.stats import mannwhitneyu
    # Three runs censored at one budget against three that reached: 1 split of 20 is as extreme.
    censored = stats.mann_whitney([100, 100, 100], [8, 8, 10], "greater")
    assert censored.p_value == pytest.approx(1 / 20), "not the normal approximation's 0.023"
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 6), rng.normal(0, 1, 5)
    for alternative in ("greater", "less", "two-sided"):
        ours = stats.mann_whitney(a, b, alternative)
        theirs = mannwhitneyu(a, b, alternative=alternative, method="exact")
        assert ours.p_value == pytest.approx(theirs.pvalue) and ours.statistic == theirs.statistic
    big = stats.mann_whitney(np.arange(20.0) + 5, np.arange(20.0))
    assert big.name == "Mann-Whitney U (normal approximation)" and big.p_value < 0.05


def test_u_null_distribution_matches_enumeration():
    m, n = 3, 4
    counts = np.zeros(m * n + 1)
    for positions in combinations(range(m + n), m):  # where the m values of a sit in the joint order
        u = sum(p - i for i, p in enumerate(positions))  # values of b below each value of a
        counts[u] += 1
    assert np.allclose(stats.u_null_distribution(m, n), counts / counts.sum())
    assert stats.u_null_distribution(5, 5)[:3] * 252 == pytest.approx([1, 1, 2])


def test_shift_interval_known_answer_and_ratio():
    estimate, interval = stats.shift_interval([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])
    # 25 pairwise differences 1..9; with 5 and 5 seeds C = 3: the 3rd smallest and 3rd largest.
    assert estimate == 5 and (interval.low, interval.high) == (2, 8)
    assert "coverage 96.8% for untied values, approximate with ties or censored runs" in interval.kind
    ratio, ratio_interval = stats.shift_interval([60, 70, 80, 90, 100], [10, 20, 30, 40, 50], log=True)
    assert ratio_interval.low < ratio < ratio_interval.high and "of the ratio" in ratio_interval.kind
    _, unbounded = stats.shift_interval([1, 2], [3, 4])
    assert unbounded.low == -math.inf and "unbounded with 2 and 2 seeds" in unbounded.kind


def test_holm_adjustment():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_signed_rank_is_exact_drops_zeros_and_matches_scipy():
    from scipy.stats import wilcoxon
    assert stats.signed_rank([0.4, 0.41, 0.42, 0.39, 0.43]).p_value == pytest.approx(1 / 32)
    assert stats.signed_rank([0.4, 0.41, 0.42, 0.39, 0.43], "less").p_value == pytest.approx(1.0)
    values = [0.4, -0.1, 0.42, 0.39, 0.43, -0.2, 0.05]
    for alternative in ("greater", "less", "two-sided"):
        ours = stats.signed_rank(values, alternative).p_value
        assert ours == pytest.approx(wilcoxon(values, alternative=alternative, method="exact").pvalue)
    assert stats.signed_rank([0.0, 0.3, 0.2]).p_value == pytest.approx(1 / 4), "the zero is dropped"
    assert stats.signed_rank([0.0, 0.0]).p_value == 1.0
    with pytest.raises(ValueError, match="alternative"):
        stats.signed_rank([1.0], "bigger")


def test_fisher_combination():
    from scipy.stats import chi2
    assert stats.fisher_combination([1.0, 1.0]).p_value == pytest.approx(1.0)
    combined = stats.fisher_combination([0.03, 0.04, 0.2])
    assert combined.p_value == pytest.approx(chi2.sf(-2 * np.log([0.03, 0.04, 0.2]).sum(), 6))
    assert combined.p_value < 0.03
    with pytest.raises(ValueError):
        stats.fisher_combination([])


def test_censoring_marks_say_which_numbers_censored_values_bound():
    """A censored value is known only from below; raising it moves the numbers it enters. An order statistic
    above every censored value stays exact; one a censored value can reach is a lower bound; a difference's
    end that censored values on both sides can move either way is no bound."""
    values, never = np.array([10.0, 20.0, 30.0, 100.0, 100.0]), [False, False, False, True, True]
    assert stats.censoring_marks(lambda v: [np.median(v), v.min(), v.max()], values, never) == ["", "", ">="]
    never = [False, False, True, True, True]
    assert stats.censoring_marks(lambda v: [np.median(v), v.min()], values, never) == [">=", ""]
    assert stats.censoring_marks(lambda v: [v.min()], values, [True] * 5) == [">="], "all censored: the min too"
    slow, fast = np.array([100.0] * 5), np.array([10.0, 12.0, 11.0, 13.0, 100.0])

    def ends(a, b):
        interval = stats.shift_interval(a, b, log=True)[1]
        return [interval.low, interval.high]
    assert stats.censoring_marks(ends, slow, [True] * 5, fast, [False] * 5) == [">=", ">="]
    assert stats.censoring_marks(ends, slow, [False] * 5, fast, [False] * 4 + [True]) == ["<=", ""]
    assert stats.censoring_marks(ends, slow, [True] * 5, fast, [False] * 4 + [True]) == ["?", ">="]
    ratio = stats.censoring_marks(lambda a, b: [np.median(a) / np.median(b)], slow, [True] * 5, fast,
                                  [False] * 4 + [True])
    assert ratio == [">="], "the fast side's one censored run sorts above its median, which stays exact"
