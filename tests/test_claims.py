"""bench/claims.py: the paper's claims on synthetic runs with known answers."""
import math

import pytest

from bench.claims import claims_markdown, paper_claims


def run(task, method, seed, steps_to, budget, heldout=None):
    return {"task": task, "method": method, "seed": seed, "steps_to": float(min(steps_to, budget)),
            "reached": steps_to < budget, "budget": float(budget), "heldout": heldout}


def test_fewer_steps_than_ppo_with_ppo_censored_at_a_larger_budget():
    hard = [run("T", "hard", s, v, 100_000) for s, v in enumerate([10_000, 12_000, 8_000, 10_000, 14_000])]
    ppo = [run("T", "ppo", s, math.inf, 500_000) for s in range(5)]  # never reaches 0.9
    (claim,) = paper_claims(hard + ppo, {})
    assert claim.claim == "(a) fewer env steps than PPO" and claim.comparison == "ppo / hard"
    assert claim.estimate == ">=50.00x", "every hard run reached 0.9: ppo keeps its own budget, 500k / 10k"
    assert claim.interval.startswith("[") and ", >=" in claim.interval, "the upper end is a lower bound too"
    assert claim.p_value < 0.01 and claim.seeds == "5 vs 5"
    assert "censored at each run's own budget (500.0k for ppo)" in claim.note and "5/5 ppo runs never reached 0.9" in claim.note


def test_a_teacher_guided_run_that_never_reaches_cuts_every_run_at_the_smaller_budget():
    hard = [run("T", "hard", s, v, 100_000) for s, v in enumerate([10_000, 12_000, 8_000, 10_000, math.inf])]
    ppo = [run("T", "ppo", s, math.inf, 500_000) for s in range(5)]
    (claim,) = paper_claims(hard + ppo, {})
    assert claim.estimate == ">=10.00x", "100k / median 10k: the censored hard run's true value is unknown"
    assert "censored at 100.0k env steps" in claim.note and "1 hard run(s) censored" in claim.note


def test_no_ratio_when_the_teacher_guided_runs_mostly_never_reach():
    hard = [run("T", "hard", s, v, 100_000) for s, v in enumerate([50_000, math.inf, math.inf])]
    ppo = [run("T", "ppo", s, math.inf, 500_000) for s in range(3)]
    (claim,) = paper_claims(hard + ppo, {})
    assert claim.estimate == "n/a" and "reached 0.9 in only 1/3 runs" in claim.note


def test_student_beats_teacher_and_soft_versus_hard():
    students = [0.99, 0.98, 1.0, 0.97, 0.995]
    runs = [run("T", "hard", s, 20_000, 100_000, h) for s, h in enumerate(students)]
    runs += [run("T", "soft", s, 10_000 + s, 100_000, 0.99) for s in range(5)]
    teachers = {("T", "hard"): [0.55, 0.56, 0.54, 0.57, 0.53]}
    claims = {(c.claim, c.measure.split(",")[0]): c for c in paper_claims(runs, teachers)}
    beats = claims[("(b) student beats its teacher", "held-out success")]
    assert beats.estimate == "+0.440" and beats.p_value == pytest.approx(1 / 252)
    faster = claims[("(c) soft beats hard", "env steps to 0.9")]
    assert faster.comparison == "hard / soft" and faster.estimate == "2.00x" and faster.p_value < 0.01
    higher = claims[("(c) soft beats hard", "held-out success of the students")]
    assert higher.comparison == "soft - hard" and higher.p_value > 0.05, "soft is not clearly better here"
    assert all(c.p_holm >= c.p_value for c in claims.values())
    table = claims_markdown(list(claims.values()))
    assert "Mann-Whitney (Hodges-Lehmann) interval of the ratio (exact coverage 96.8%)" in table
