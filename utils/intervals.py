"""Binomial intervals for one run's success count, and the interval type every statistic reports.

Here (the bottom layer) because the trainer's held-out final evaluation needs them as much as the sweep
report does; :mod:`bench.stats` builds the intervals over seeds and tasks on the same type.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """``[low, high]`` and the name of what it is (e.g. "95% Wilson score")."""

    low: float
    high: float
    kind: str

    def format(self, digits: int = 2) -> str:
        return f"[{_num(self.low, digits)}, {_num(self.high, digits)}]"

    def to_json(self) -> dict:
        return {"kind": self.kind, "low": self.low, "high": self.high}


def _num(value: float, digits: int) -> str:
    return "inf" if value == math.inf else "-inf" if value == -math.inf else f"{value:.{digits}f}"


def _z(confidence: float) -> float:
    from scipy.stats import norm
    return float(norm.ppf(0.5 + confidence / 2))


def _check_counts(successes: int, n: int) -> None:
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of a binomial proportion (good coverage near 0 and 1, unlike the normal one)."""
    _check_counts(successes, n)
    z = _z(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 or n successes one end is exactly 0 or 1 (the formula gives it up to rounding).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low, high, f"{confidence:.0%} Wilson score")


def clopper_pearson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Clopper-Pearson ("exact") interval: covers at least ``confidence`` for every true proportion."""
    from scipy.stats import beta
    _check_counts(successes, n)
    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return Interval(low, high, f"{confidence:.0%} Clopper-Pearson")
