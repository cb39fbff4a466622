"""The paper's three claims, tested per task over seeds (the statistics are :mod:`bench.stats`).

(a) *fewer env steps than PPO*: env steps to evaluation success >= 0.9, baseline over teacher-guided: the
    ratio of the medians, the Mann-Whitney (Hodges-Lehmann) interval of the ratio, and a one-sided
    Mann-Whitney test over seeds. A run that never reaches 0.9 is censored. When every teacher-guided run
    reached 0.9 before the smallest baseline budget, a censored baseline run counts as its own budget (it is
    known to need at least that, so the baselines' larger budgets size the gap); otherwise every value is cut
    at the smaller of the two methods' budgets, ties at that value. A censored value sorts above every
    observed one, so a median is exact while fewer than half its runs are censored. The ratio is given only
    when the teacher-guided median is exact (else "n/a"), and is then a lower bound (``>=``) exactly when the
    baseline's median is censored; censored teacher-guided runs above their median do not change it. Each
    end of the interval is marked by :func:`bench.stats.censoring_marks`: ``>=`` a lower bound (censored
    baseline runs), ``<=`` an upper bound (censored teacher-guided runs), ``?`` neither (both).
(b) *the student beats its teacher*: held-out final success of each student seed against the teacher alone
    with the same seed on the same held-out layouts. The pairs are tested with the exact Wilcoxon
    signed-rank test (with 5 seeds the smallest one-sided p is 1/32), not as two independent samples: the
    paper teacher alone, which draws a plan every step, scores the same on every seed, and five copies of
    one number are not five observations. The note counts the runs whose own 95% binomial interval lies
    wholly above their teacher's.
(c) *soft beats hard* (paper teacher): both (a)'s step measure (hard over soft) and (b)'s success measure
    (soft minus hard).

Every p-value is also given Holm-adjusted over all the rows of its table (family-wise error; the table says
how many). With 5 seeds no single task's test survives that adjustment over every task's rows, so
:func:`pooled_claims` also tests each comparison once over all tasks (Fisher's combination of the per-task
p-values), Holm-adjusted over those.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench import stats

THRESHOLD = 0.9
STEP_METHODS = ("hard", "soft")  # teacher-guided methods compared with the baselines in (a)
BASELINE_METHODS = ("ppo", "sb3_ppo")
TEACHER_CLAIM_METHODS = ("hard", "soft", "hard_safe")  # (b)


@dataclass(frozen=True)
class Family:
    """The comparisons of one claims table (one Holm family): (a) each (baseline, teacher-guided) pair in
    ``steps``, (b) the students of each of ``teachers`` against their teacher alone, (c) each (hard, soft)
    pair in ``soft_hard``."""

    steps: tuple
    teachers: tuple = ()
    soft_hard: tuple = ()


PAPER = Family(tuple((base, m) for m in STEP_METHODS for base in BASELINE_METHODS), TEACHER_CLAIM_METHODS,
               (("hard", "soft"),))
# Claim (a) against the baselines of a sweep file's cells: ppo with the task config's own settings, and a
# long ppo whose median can reach 0.9 (then the ratio is measured, not a floor). A family of its own, so the
# paper's table keeps the same rows (and Holm) on every sweep.
OTHER_BASELINES = Family(tuple((base, m) for m in STEP_METHODS for base in ("ppo_task", "ppo_long")))
LIVE_LLM = Family(tuple((base, m) for m in ("gemma_hard", "gemma_soft") for base in BASELINE_METHODS),
                  ("gemma_hard", "gemma_soft"), (("gemma_hard", "gemma_soft"),))


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
    favours: bool | None = None  # the estimate points the claimed way


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
    _, interval = stats.shift_interval(x, y, log=True)
    median_x, median_y = float(np.median(x)), float(np.median(y))
    notes = [f"censored at each run's own budget ({', '.join(map(_steps_text, slow_budgets))} for {slow_name})"
             if own_budgets else f"censored at {_steps_text(limit)} env steps"]
    (fast_median_mark,) = stats.censoring_marks(lambda v: [np.median(v)], y, y_censored)
    if fast_median_mark:
        estimate = "n/a"
        notes.append(f"{fast_name} reached 0.9 in only {len(y) - y_censored.sum()}/{len(y)} runs: no ratio")
    else:
        (ratio_mark,) = stats.censoring_marks(lambda a, b: [np.median(a) / np.median(b)], x, x_censored, y,
                                              y_censored)
        estimate = f"{ratio_mark}{median_x / median_y:.2f}x"
        if y_censored.any():
            notes.append(f"{y_censored.sum()} {fast_name} run(s) censored, all above its median, which stays exact")
        if x_censored.any():
            notes.append(f"{x_censored.sum()}/{len(x)} {slow_name} runs never reached 0.9")
    if np.isfinite(interval.high):
        def ratio_ends(a, b):
            return stats.ends(stats.shift_interval(a, b, log=True)[1])
        low_mark, high_mark = stats.censoring_marks(ratio_ends, x, x_censored, y, y_censored)
        interval_text = f"[{low_mark}{interval.low:.2f}, {high_mark}{interval.high:.2f}]"
    else:
        interval_text = "unbounded"
    return Claim(task, claim, f"{slow_name} / {fast_name}", "env steps to 0.9, ratio of medians "
                 f"({_steps_text(median_x)} / {_steps_text(median_y)})", estimate, interval_text, interval.kind,
                 f"{test.name}, one-sided ({slow_name} > {fast_name})", test.p_value, f"{len(x)} vs {len(y)}",
                 "; ".join(notes), favours=median_x > median_y)


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
                 f"{len(better)} vs {len(worse)}", favours=difference > 0)


def _groups_by_task(runs: list[dict]):
    """(task, {method: runs}) for each task, tasks in sorted order."""
    by_task: dict[str, dict[str, list[dict]]] = {}
    for run in runs:
        by_task.setdefault(run["task"], {}).setdefault(run["method"], []).append(run)
    return sorted(by_task.items())


def _heldout(runs: list[dict]) -> np.ndarray:
    """Held-out success of the runs that have one."""
    return np.array([r["heldout"] for r in runs if r["heldout"] is not None], dtype=float)


def _with_holm(claims: list[Claim]) -> list[Claim]:
    """``claims`` with their Holm-adjusted p-values (family: these claims) filled in."""
    for claim, adjusted in zip(claims, stats.holm([c.p_value for c in claims])):
        claim.p_holm = adjusted
    return claims


def _student_scores(runs: list[dict]) -> dict:
    """seed -> (held-out success, lower end of its binomial interval or None) of the runs that have one."""
    scores = {}
    for run in runs:
        if run.get("heldout") is None:
            continue
        interval = (run.get("final_eval") or {}).get("interval") or {}
        scores[run["seed"]] = (float(run["heldout"]), interval.get("low"))
    return scores


def _teacher_scores(rows: list[dict]) -> dict:
    """seed -> (held-out success, upper end of its binomial interval or None) of the teacher alone."""
    return {int(r["seed"]): (float(r["success_rate"]), float(r["high"]) if r.get("high") not in (None, "") else None)
            for r in rows}


def student_teacher_claim(task: str, method: str, students: dict, teachers: dict) -> Claim | None:
    """(b): each student seed against the teacher alone with the same seed, on the same held-out layouts."""
    seeds = sorted(set(students) & set(teachers))
    if not seeds:
        return None
    student = np.array([students[s][0] for s in seeds])
    teacher = np.array([teachers[s][0] for s in seeds])
    differences = student - teacher
    test = stats.signed_rank(differences, "greater")
    kind = f"min-max of the {len(seeds)} paired differences (student - teacher, same seed and layouts)"
    notes = []
    if len(seeds) > 1 and np.ptp(teacher) == 0:
        notes.append(f"the teacher alone scores {teacher[0]:.3f} on every seed")
    bounds = [(students[s][1], teachers[s][1]) for s in seeds]
    if all(low is not None and high is not None for low, high in bounds):
        above = sum(low > high for low, high in bounds)
        notes.append(f"{above}/{len(seeds)} students' 95% interval wholly above their teacher's")
    median = float(np.median(differences))
    return Claim(task, "(b) student beats its teacher", f"{method} student - {method} teacher",
                 "held-out success, median of paired differences "
                 f"(students {np.median(student):.3f}, teacher {np.median(teacher):.3f})",
                 f"{median:+.3f}", f"[{differences.min():+.3f}, {differences.max():+.3f}]", kind,
                 f"{test.name}, one-sided ({method} student > {method} teacher)", test.p_value,
                 f"{len(seeds)} pairs", "; ".join(notes), favours=median > 0)


def paper_claims(runs: list[dict], teachers: dict, family: Family = PAPER) -> list[Claim]:
    """Every claim of ``family`` (default: the paper's) the runs allow, per task.

    ``runs``: dicts with task, method, seed, steps_to, reached, budget and heldout (held-out success or None),
    optionally final_eval (with its binomial interval); ``teachers``: (task, method) -> rows of that teacher
    alone (seed, success_rate and optionally high, the upper end of its interval), as in teacher_heldout.csv.
    """
    claims = []
    for task, group in _groups_by_task(runs):
        for baseline, method in family.steps:
            if method in group and baseline in group:
                claims.append(step_ratio_claim(task, "(a) fewer env steps than PPO", group[baseline],
                                               group[method], baseline, method))
        for method in family.teachers:
            claim = student_teacher_claim(task, method, _student_scores(group.get(method, [])),
                                          _teacher_scores(teachers.get((task, method), [])))
            if claim is not None:
                claims.append(claim)
        for hard, soft in family.soft_hard:
            if soft not in group or hard not in group:
                continue
            claims.append(step_ratio_claim(task, "(c) soft beats hard", group[hard], group[soft], hard, soft))
            soft_runs, hard_runs = _heldout(group[soft]), _heldout(group[hard])
            if len(soft_runs) and len(hard_runs):
                claims.append(success_claim(task, "(c) soft beats hard", soft_runs, hard_runs, soft, hard,
                                            "held-out success of the students"))
    return _with_holm(claims)


def control_claims(runs: list[dict]) -> list[Claim]:
    """The wrong-teacher control, per task: does the adversarial student do better than PPO without a teacher
    (env steps to 0.9, held-out success), and how far below the paper teacher's hard students does it end?"""
    claims = []
    for task, group in _groups_by_task(runs):
        if "adversarial" not in group:
            continue
        wrong = _heldout(group["adversarial"])
        if "ppo" in group:
            claims.append(step_ratio_claim(task, "wrong teacher against none", group["ppo"], group["adversarial"],
                                           "ppo", "adversarial"))
            none = _heldout(group["ppo"])
            if len(none) and len(wrong):
                claims.append(success_claim(task, "wrong teacher against none", wrong, none, "adversarial", "ppo",
                                            "held-out success of the students"))
        good = _heldout(group.get("hard", []))
        if len(good) and len(wrong):
            claims.append(success_claim(task, "wrong teacher against the paper's", good, wrong, "hard",
                                        "adversarial", "held-out success of the students"))
    return _with_holm(claims)


def pooled_claims(claims: list[Claim]) -> list[Claim]:
    """Each comparison of ``claims`` tested once over every task it was made on: Fisher's combination of the
    per-task p-values, Holm-adjusted over the pooled rows."""
    groups: dict[tuple, list[Claim]] = {}
    for c in claims:
        groups.setdefault((c.claim, c.comparison, c.measure.split(",")[0]), []).append(c)
    pooled = []
    for (claim, comparison, measure), group in groups.items():
        test = stats.fisher_combination([c.p_value for c in group])
        favouring = sum(bool(c.favours) for c in group)
        pooled.append(Claim(", ".join(c.task for c in group), claim, comparison, measure,
                            f"{favouring}/{len(group)} tasks the claimed way", "", "", test.name, test.p_value,
                            " + ".join(c.seeds for c in group)))
    return _with_holm(pooled)


def pooled_markdown(pooled: list[Claim]) -> str:
    """The pooled claims table."""
    if not pooled:
        return "No claim was tested."
    lines = ["| claim | comparison | measure | tasks | direction | test | p | p (Holm) | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in sorted(pooled, key=lambda c: (c.claim, c.comparison)):
        lines.append(f"| {c.claim} | {c.comparison} | {c.measure} | {c.task} | {c.estimate} | {c.test} | "
                     f"{c.p_value:.2g} | {c.p_holm:.2g} | {c.seeds} |")
    lines += ["", "Each row combines that comparison's per-task one-sided p-values above (Fisher's method, tasks "
              f"independent); p (Holm) adjusts over the {len(pooled)} rows of this table."]
    return "\n".join(lines)


def p_text(p: float) -> str:
    """A per-task p-value for the tables: four decimals, or two significant digits below 0.0001 (ten seeds a
    side reach 1/184,756, which four decimals would print as 0.0000)."""
    return f"{p:.4f}" if p >= 0.0001 else f"{p:.1e}"


def claims_markdown(claims: list[Claim]) -> str:
    """The claims table, intervals named underneath."""
    if not claims:
        return "No claim can be tested: the sweep lacks the methods or the held-out results they compare."
    lines = ["| task | claim | comparison | measure | measured | interval | test | p | p (Holm) | seeds | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {c.task} | {c.claim} | {c.comparison} | {c.measure} | {c.estimate} | {c.interval} | "
                     f"{c.test} | {p_text(c.p_value)} | {p_text(c.p_holm)} | {c.seeds} | {c.note} |")
    kinds = sorted({c.interval_kind for c in claims})
    lines += ["", f"p (Holm): adjusted over the {len(claims)} rows of this table. Intervals: " + "; ".join(kinds) + "."]
    if any(mark in c.estimate + c.interval for c in claims for mark in (">=", "<=", "?")):
        lines[-1] += (" `>=`: censored runs (never reached 0.9, counted at the cut) make that number a lower bound; "
                      "`<=`: an upper bound; `?`: censored runs on both sides, no bound either way.")
    return "\n".join(lines)
