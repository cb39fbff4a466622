"""Statistics for sweep results, each interval named by what it is (numpy and scipy only).

* Binomial intervals for one run's success count: :func:`wilson_interval` (the one we report) and
  :func:`clopper_pearson_interval` (exact, conservative), from :mod:`utils.intervals` (the trainer's
  held-out evaluation uses them too).
* Over seeds: the per-seed values themselves, their :func:`min_max` range, and a percentile bootstrap only
  with at least :data:`MIN_BOOTSTRAP_SEEDS` values (:func:`seed_interval` picks and names which): with fewer
  seeds a percentile bootstrap interval is little more than the range of the values, and is not claimed.
* Across tasks, in the style of rliable (Agarwal et al., NeurIPS 2021): the interquartile mean
  (:func:`iqm`) with a stratified bootstrap interval (:func:`stratified_bootstrap`): seeds are resampled
  within each task, never across tasks, so each task is a sample of its own and the same minimum holds for
  it: with fewer than :data:`MIN_BOOTSTRAP_SEEDS` runs in any task no interval is claimed.
* Comparisons over seeds: :func:`mann_whitney` (one-sided p-value, exact for up to 10 seeds a side) and :func:`shift_interval`, the
  distribution-free interval for the difference (or ratio) of two samples' locations that inverts the
  Mann-Whitney test (Hodges-Lehmann), valid with 5 seeds per side. Its coverage (96.8% for 5 and 5 seeds at
  95%) is exact only for untied, uncensored values; with ties or censored runs it is approximate.
* Censored values (a run that never reached the threshold, counted at its budget): :func:`censoring_marks`
  says which reported numbers they make lower bounds, upper bounds or neither.
* Paired comparisons (a student and its teacher on the same seed and layouts): :func:`signed_rank`, the
  exact Wilcoxon signed-rank test.
* One claim over several tasks: :func:`fisher_combination` of the per-task p-values (independent tasks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from utils.intervals import CONFIDENCE, Interval, clopper_pearson_interval, wilson_interval

__all__ = ["CONFIDENCE", "Interval", "TestResult", "censoring_marks", "clopper_pearson_interval", "ends",
           "fisher_combination", "holm", "iqm", "mann_whitney", "min_max", "percentile_bootstrap", "seed_interval",
           "shift_interval", "signed_rank", "stratified_bootstrap", "u_null_distribution", "wilson_interval"]
MIN_BOOTSTRAP_SEEDS = 10  # fewer values per cell: per-seed values and min-max, no bootstrap
N_RESAMPLES = 2000


@dataclass(frozen=True)
class TestResult:
    """A hypothesis test's statistic and p-value, and what was tested."""

    name: str
    statistic: float
    p_value: float
    alternative: str


def iqm(values, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean after cutting 25% of the values from each end (scipy's trim_mean)."""
    from scipy.stats import trim_mean
    result = trim_mean(np.asarray(values, dtype=float), 0.25, axis=axis)
    return float(result) if np.ndim(result) == 0 else result


def min_max(values) -> Interval:
    values = np.asarray(values, dtype=float)
    return Interval(float(values.min()), float(values.max()), f"min-max of {len(values)} seeds")


def percentile_bootstrap(values, statistic=np.mean, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                         seed: int = 0, min_samples: int = MIN_BOOTSTRAP_SEEDS) -> Interval | None:
    """Percentile-bootstrap interval of ``statistic(values)``; None with fewer than ``min_samples`` values.

    ``statistic`` must accept ``axis=-1``. The same ``seed`` gives the same interval.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < min_samples:
        return None
    rng = np.random.default_rng(seed)
    resamples = values[rng.integers(0, len(values), size=(n_resamples, len(values)))]
    estimates = statistic(resamples, axis=-1)
    low, high = np.quantile(estimates, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(low), float(high), f"{confidence:.0%} percentile bootstrap over {len(values)} seeds")


def seed_interval(values, statistic=np.mean, seed: int = 0, min_bootstrap: int = MIN_BOOTSTRAP_SEEDS) -> Interval:
    """A percentile bootstrap with enough seeds, else the min-max range; the kind says which it is."""
    return percentile_bootstrap(values, statistic, seed=seed, min_samples=min_bootstrap) or min_max(values)


def stratified_bootstrap(scores_by_task: dict, statistic=iqm, confidence: float = CONFIDENCE,
                         n_resamples: int = N_RESAMPLES, seed: int = 0,
                         min_samples: int = MIN_BOOTSTRAP_SEEDS) -> tuple[float, Interval | None]:
    """Aggregate ``statistic`` over all runs of all tasks, with a stratified percentile-bootstrap interval.

    ``scores_by_task`` maps each task to its runs' scores. Each resample draws, for every task, as many runs
    as it has with replacement from that task's runs only, then applies ``statistic`` (which must accept
    ``axis=-1``) to all drawn runs together. Returns (point estimate, interval). Every task is resampled on
    its own, so each needs ``min_samples`` runs, as a cell does for :func:`percentile_bootstrap` (pooling
    the tasks' runs would reach the count but mix the tasks); with fewer in any task the interval is None.
    """
    tasks = [np.asarray(v, dtype=float) for v in scores_by_task.values()]
    if not tasks or any(len(v) == 0 for v in tasks):
        raise ValueError("every task needs at least one run")
    point = float(statistic(np.concatenate(tasks), axis=-1))
    if min(len(v) for v in tasks) < min_samples:
        return point, None
    rng = np.random.default_rng(seed)
    drawn = np.concatenate([v[rng.integers(0, len(v), size=(n_resamples, len(v)))] for v in tasks], axis=1)
    low, high = np.quantile(statistic(drawn, axis=-1), [(1 - confidence) / 2, (1 + confidence) / 2])
    runs = sum(len(v) for v in tasks)
    return point, Interval(float(low), float(high),
                           f"{confidence:.0%} stratified bootstrap ({len(tasks)} tasks, {runs} runs)")


EXACT_LIMIT = 200_000  # most splits of the pooled values enumerated for an exact p-value


def mann_whitney(a, b, alternative: str = "greater") -> TestResult:
    """Mann-Whitney U test over seeds of "``a`` tends to be greater than ``b``" (or ``less``/``two-sided``).

    Exact whenever the pooled values have at most :data:`EXACT_LIMIT` splits into the two groups (5 vs 5:
    252; 10 vs 10: 184,756): the p-value counts the splits whose U (ties as midranks) is at least as extreme,
    so it stays exact with ties (runs censored at the same budget), where the normal approximation is too
    small for few seeds. Larger samples use scipy's normal approximation with tie correction. Two samples of
    one identical value give p = 1 (no evidence either way). The name says which p-value it is.
    """
    from math import comb

    from scipy.stats import mannwhitneyu, rankdata
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("Mann-Whitney needs at least one value on each side")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be greater, less or two-sided, got '{alternative}'")
    m, n = len(a), len(b)
    if np.ptp(np.concatenate([a, b])) == 0:
        return TestResult("Mann-Whitney U (exact)", m * n / 2, 1.0, alternative)
    if comb(m + n, m) > EXACT_LIMIT:
        result = mannwhitneyu(a, b, alternative=alternative, method="asymptotic")
        return TestResult("Mann-Whitney U (normal approximation)", float(result.statistic), float(result.pvalue),
                          alternative)
    from itertools import combinations
    ranks = rankdata(np.concatenate([a, b]))
    splits = np.array(list(combinations(range(m + n), m)))
    u_all = ranks[splits].sum(axis=1) - m * (m + 1) / 2
    u = ranks[:m].sum() - m * (m + 1) / 2
    tolerance = 1e-9
    if alternative == "greater":
        p = np.mean(u_all >= u - tolerance)
    elif alternative == "less":
        p = np.mean(u_all <= u + tolerance)
    else:
        p = np.mean(np.abs(u_all - m * n / 2) >= abs(u - m * n / 2) - tolerance)
    return TestResult("Mann-Whitney U (exact)", float(u), float(p), alternative)


def u_null_distribution(m: int, n: int) -> np.ndarray:
    """P(U = u), u = 0..m*n, of the Mann-Whitney U statistic for samples of sizes m and n without ties.

    The counts of orderings are the coefficients of the Gaussian binomial [m+n choose m]_q, built as
    prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i); truncating above degree m*n does not change lower terms.
    """
    size = m * n + 1
    counts = np.zeros(size)
    counts[0] = 1.0
    for i in range(1, m + 1):
        shift = n + i
        if shift < size:
            counts[shift:] = counts[shift:] - counts[:size - shift]
        for k in range(i, size):  # divide by (1 - q^i)
            counts[k] += counts[k - i]
    return counts / counts.sum()


def shift_interval(a, b, confidence: float = CONFIDENCE, log: bool = False) -> tuple[float, Interval]:
    """Hodges-Lehmann estimate of the shift ``a - b`` and its distribution-free interval.

    The interval is [d_(C), d_(mn+1-C)] of the m*n sorted pairwise differences a_i - b_j, with C the
    largest count such that P(U <= C-1) <= (1 - confidence)/2 under the exact null distribution of U; its
    coverage (>= confidence) is in its kind, exact only for untied, uncensored values (with ties it is not
    exact, and a censored end is a bound: see :func:`censoring_marks`). With ``log`` the differences are of
    logarithms and both are returned as ratios a/b. Too few values for the requested confidence give an
    unbounded interval, said so in its kind.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if log:
        if (a <= 0).any() or (b <= 0).any():
            raise ValueError("a ratio interval needs positive values")
        a, b = np.log(a), np.log(b)
    differences = np.sort(np.subtract.outer(a, b).ravel())
    estimate = float(np.median(differences))
    cumulative = np.cumsum(u_null_distribution(len(a), len(b)))
    tail = (1 - confidence) / 2
    below = int(np.searchsorted(cumulative, tail + 1e-12, side="right"))  # C: P(U <= C-1) <= tail
    name = f"{confidence:.0%} Mann-Whitney (Hodges-Lehmann) interval of the {'ratio' if log else 'difference'}"
    if below == 0:
        low, high, kind = -math.inf, math.inf, f"{name}: unbounded with {len(a)} and {len(b)} seeds"
    else:
        coverage = 1 - 2 * cumulative[below - 1]
        low, high = float(differences[below - 1]), float(differences[len(differences) - below])
        kind = f"{name} (coverage {coverage:.1%} for untied values, approximate with ties or censored runs)"
    if log:
        return math.exp(estimate), Interval(math.exp(low) if low > -math.inf else 0.0, math.exp(high), kind)
    return estimate, Interval(low, high, kind)


def ends(interval: Interval) -> list[float]:
    """``[low, high]`` of ``interval``: what :func:`censoring_marks` compares for an interval."""
    return [interval.low, interval.high]


def censoring_marks(statistic, x, x_censored, y=None, y_censored=None) -> list[str]:
    """How censored values bound each number ``statistic(x)`` (or ``statistic(x, y)``) returns.

    A censored value is known only to be at least the value recorded. ``statistic`` must rise (weakly) with
    every value of ``x`` and fall with every value of ``y``: a location, an order statistic, the ends of
    :func:`shift_interval` of ``x`` against ``y``, a difference or ratio of locations. Each number is
    recomputed with the censored values of ``x`` at +inf, and apart with those of ``y`` at +inf; a number
    that moves in the first case only is a lower bound (``">="``), in the second only an upper bound
    (``"<="``), in both no bound either way (``"?"``), in neither exact (``""``). A number that becomes NaN
    counts as moved (conservative).
    """
    def raised(values, flags):
        values = np.asarray(values, dtype=float).copy()
        values[np.asarray(flags, dtype=bool)] = np.inf
        return values

    def call(a, b):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(statistic(a) if y is None else statistic(a, b), dtype=float)

    base = call(np.asarray(x, dtype=float), None if y is None else np.asarray(y, dtype=float))
    rises = call(raised(x, x_censored), y) != base
    falls = (np.zeros_like(rises) if y is None or y_censored is None
             else call(np.asarray(x, dtype=float), raised(y, y_censored)) != base)
    return [("?" if up and down else ">=" if up else "<=" if down else "") for up, down in zip(rises, falls)]


SIGNED_RANK_EXACT_LIMIT = 16  # most non-zero differences whose 2**n sign patterns are enumerated


def signed_rank(differences, alternative: str = "greater") -> TestResult:
    """Wilcoxon signed-rank test of "the paired ``differences`` tend to be above 0" (or ``less``/``two-sided``).

    Zero differences are dropped (Wilcoxon's rule) and tied magnitudes get midranks. The p-value is exact,
    counting the 2**n equally likely sign patterns under the null (up to :data:`SIGNED_RANK_EXACT_LIMIT`
    non-zero differences; more use scipy's normal approximation). With 5 pairs the smallest one-sided p is
    1/32. All differences zero give p = 1.
    """
    from scipy.stats import rankdata, wilcoxon
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be greater, less or two-sided, got '{alternative}'")
    values = np.asarray(differences, dtype=float)
    values = values[values != 0]
    if len(values) == 0:
        return TestResult("Wilcoxon signed-rank (exact)", 0.0, 1.0, alternative)
    if len(values) > SIGNED_RANK_EXACT_LIMIT:
        result = wilcoxon(values, alternative=alternative, method="approx")
        return TestResult("Wilcoxon signed-rank (normal approximation)", float(result.statistic),
                          float(result.pvalue), alternative)
    ranks = rankdata(np.abs(values))
    signs = (np.arange(2 ** len(values))[:, None] >> np.arange(len(values))) & 1  # every sign pattern
    w_all = (signs * ranks).sum(axis=1)
    w = float(ranks[values > 0].sum())
    tolerance, middle = 1e-9, ranks.sum() / 2
    if alternative == "greater":
        p = np.mean(w_all >= w - tolerance)
    elif alternative == "less":
        p = np.mean(w_all <= w + tolerance)
    else:
        p = np.mean(np.abs(w_all - middle) >= abs(w - middle) - tolerance)
    return TestResult("Wilcoxon signed-rank (exact)", w, float(p), alternative)


def fisher_combination(p_values: list[float]) -> TestResult:
    """Fisher's method: one p-value for "the effect exists in at least one of these independent tests".

    -2 * sum(log p) follows a chi-squared law with 2k degrees of freedom under the joint null. With exact
    tests on few seeds the p-values are discrete, which makes the combination conservative (still valid).
    """
    from scipy.stats import chi2
    p = np.clip(np.asarray(p_values, dtype=float), 1e-300, 1.0)
    if len(p) == 0:
        raise ValueError("Fisher's combination needs at least one p-value")
    statistic = float(-2 * np.log(p).sum())
    return TestResult(f"Fisher's combination of {len(p)} per-task p-values", statistic,
                      float(chi2.sf(statistic, 2 * len(p))), "greater")


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error over the given tests), in the input order."""
    order = np.argsort(p_values)
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()
