"""The paper's three claims, tested per task over seeds (the statistics are :mod:`bench.stats`).

(a) *fewer env steps than PPO*: env steps to evaluation success >= 0.9, baseline over teacher-guided: the
    ratio of the medians, the Mann-Whitney (Hodges-Lehmann) interval of the ratio, and a one-sided
    Mann-Whitney test over seeds. A run that never reaches 0.9 is censored. When every teacher-guided run
    reached 0.9 before the smallest baseline budget, a censored baseline run counts as its own budget (it is
    known to need at least that, so the baselines' larger budgets size the gap); otherwise every value is cut
    at the smaller of the two methods' budgets, ties at that value. Censored baseline runs make the ratio and
    the interval's upper end lower bounds (``>=``); censored teacher-guided runs make them no bound at all,
    which the note says.
(b) *the student beats its teacher*: held-out final success of each student seed against the teacher alone
    per seed on the same held-out layouts: the difference of the medians, its interval, one-sided test.
(c) *soft beats hard* (paper teacher): both (a)'s step measure (hard over soft) and (b)'s success measure
    (soft minus hard).

Every p-value is also given Holm-adjusted over all the claims of the table (family-wise error).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench import stats

THRESHOLD = 0.9
STEP_METHODS = ("hard", "soft")  # teacher-guided methods compared with the baselines in (a)
BASELINE_METHODS = ("ppo", "sb3_ppo")
TEACHER_CLAIM_METHODS = ("hard", "soft", "hard_safe")  # (b)


@dataclass
class Claim:
    """One row of the claims table."""

    task: str
    claim: str
    comparison: str
    measure: str
    estimate: str
    interval: str
    interval_kind: str
    test: str
    p_value: float
    seeds: str
    note: str = ""
    p_holm: float | None = None


def steps_to_threshold(steps: np.ndarray, success: np.ndarray, budget: float) -> tuple[float, bool]:
    """First env-step count with success >= threshold; (budget, False) if never reached."""
    reached = np.flatnonzero(np.asarray(success) >= THRESHOLD)
    return (float(steps[reached[0]]), True) if len(reached) else (float(budget), False)


def censor(runs: list[dict], limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Steps to 0.9 of ``runs`` cut at ``limit``: (values, censored flags)."""
    values = np.array([min(r["steps_to"], limit) for r in runs])
    censored = np.array([not r["reached"] or r["steps_to"] >= limit for r in runs])
    return values, censored


def _steps_text(value: float) -> str:
    return f"{value / 1000:,.1f}k"


def step_ratio_claim(task: str, claim: str, slow: list[dict], fast: list[dict], slow_name: str,
                     fast_name: str) -> Claim:
    """``slow`` needs more env steps to 0.9 than ``fast``: ratio of medians slow / fast."""
    limit = min(r["budget"] for r in slow + fast)
    slow_budgets = sorted({r["budget"] for r in slow})
    own_budgets = all(r["reached"] for r in fast) and max(r["steps_to"] for r in fast) <= slow_budgets[0]
    if own_budgets:
        # Every fast run is observed and below every slow budget: a slow run that never reached 0.9 is known
        # to need at least its own budget, so it keeps it (a baseline's larger budget then sizes the gap).
        limit = slow_budgets[-1]
    x, x_censored = censor(slow, limit)
    y, y_censored = censor(fast, limit)
    test = stats.mann_whitney(x, y, "greater")
    ratio_estimate, interval = stats.shift_interval(x, y, log=True)
    median_x, median_y = float(np.median(x)), float(np.median(y))
    notes = [f"censored at each run's own budget ({', '.join(map(_steps_text, slow_budgets))} for {slow_name})"
             if own_budgets else f"censored at {_steps_text(limit)} env steps"]
    lower = "" if not x_censored.any() else ">="
    if y_censored.sum() * 2 >= len(y):
        estimate = "n/a"
        notes.append(f"{fast_name} reached 0.9 in only {len(y) - y_censored.sum()}/{len(y)} runs: no ratio")
    else:
        median_censored = x_censored.sum() * 2 >= len(x)
        estimate = f"{'>=' if median_censored else ''}{median_x / median_y:.2f}x"
        if y_censored.any():
            notes.append(f"{y_censored.sum()} {fast_name} run(s) censored: the ratio is not a bound")
        if x_censored.any():
            notes.append(f"{x_censored.sum()}/{len(x)} {slow_name} runs never reached 0.9")
    interval_text = (f"[{interval.low:.2f}, {lower}{interval.high:.2f}]" if np.isfinite(interval.high)
                     else "unbounded")
    return Claim(task, claim, f"{slow_name} / {fast_name}", "env steps to 0.9, ratio of medians "
                 f"({_steps_text(median_x)} / {_steps_text(median_y)})", estimate, interval_text, interval.kind,
                 f"{test.name}, one-sided ({slow_name} > {fast_name})", test.p_value, f"{len(x)} vs {len(y)}",
                 "; ".join(notes))


def success_claim(task: str, claim: str, better: np.ndarray, worse: np.ndarray, better_name: str,
                  worse_name: str, what: str) -> Claim:
    """``better`` has higher held-out success than ``worse``: difference of medians."""
    better, worse = np.asarray(better, dtype=float), np.asarray(worse, dtype=float)
    test = stats.mann_whitney(better, worse, "greater")
    _, interval = stats.shift_interval(better, worse)
    difference = float(np.median(better) - np.median(worse))
    interval_text = f"[{interval.low:+.3f}, {interval.high:+.3f}]" if np.isfinite(interval.high) else "unbounded"
    return Claim(task, claim, f"{better_name} - {worse_name}",
                 f"{what}, difference of medians ({np.median(better):.3f} - {np.median(worse):.3f})",
                 f"{difference:+.3f}", interval_text, interval.kind,
                 f"{test.name}, one-sided ({better_name} > {worse_name})", test.p_value,
                 f"{len(better)} vs {len(worse)}")


def paper_claims(runs: list[dict], teachers: dict) -> list[Claim]:
    """Every claim the runs allow, per task.

    ``runs``: dicts with task, method, steps_to, reached, budget and heldout (held-out success or None);
    ``teachers``: (task, method) -> per-seed held-out success of that teacher alone.
    """
    claims = []
    for task in sorted({r["task"] for r in runs}):
        group = {}
        for run in runs:
            if run["task"] == task:
                group.setdefault(run["method"], []).append(run)
        for method in STEP_METHODS:
            for baseline in BASELINE_METHODS:
                if method in group and baseline in group:
                    claims.append(step_ratio_claim(task, "(a) fewer env steps than PPO", group[baseline],
                                                   group[method], baseline, method))
        for method in TEACHER_CLAIM_METHODS:
            students = [r["heldout"] for r in group.get(method, []) if r["heldout"] is not None]
            teacher = teachers.get((task, method), [])
            if students and teacher:
                claims.append(success_claim(task, "(b) student beats its teacher", np.array(students),
                                            np.array(teacher), f"{method} student", f"{method} teacher",
                                            "held-out success"))
        if "soft" in group and "hard" in group:
            claims.append(step_ratio_claim(task, "(c) soft beats hard", group["hard"], group["soft"], "hard", "soft"))
            soft = [r["heldout"] for r in group["soft"] if r["heldout"] is not None]
            hard = [r["heldout"] for r in group["hard"] if r["heldout"] is not None]
            if soft and hard:
                claims.append(success_claim(task, "(c) soft beats hard", np.array(soft), np.array(hard), "soft",
                                            "hard", "held-out success of the students"))
    for claim, adjusted in zip(claims, stats.holm([c.p_value for c in claims])):
        claim.p_holm = adjusted
    return claims


def claims_markdown(claims: list[Claim]) -> str:
    """The claims table, intervals named underneath."""
    if not claims:
        return "No claim can be tested: the sweep lacks the methods or the held-out results they compare."
    lines = ["| task | claim | comparison | measure | measured | interval | test | p | p (Holm) | seeds | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {c.task} | {c.claim} | {c.comparison} | {c.measure} | {c.estimate} | {c.interval} | "
                     f"{c.test} | {c.p_value:.4f} | {c.p_holm:.4f} | {c.seeds} | {c.note} |")
    kinds = sorted({c.interval_kind for c in claims})
    lines += ["", "Intervals: " + "; ".join(kinds) + "."]
    return "\n".join(lines)
