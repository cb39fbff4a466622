"""bench/claims.py: the paper's claims on synthetic runs with known answers."""
import math

import pytest

from scipy.stats import chi2

from bench.claims import (LIVE_LLM, OTHER_BASELINES, claims_markdown, control_claims, paper_claims, pooled_claims,
                          pooled_markdown)


def run(task, method, seed, steps_to, budget, heldout=None):
    return {"task": task, "method": method, "seed": seed, "steps_to": float(min(steps_to, budget)),
            "reached": steps_to < budget, "budget": float(budget), "heldout": heldout}


def test_fewer_steps_than_ppo_with_ppo_censored_at_a_larger_budget():
    hard = [run("T", "hard", s, v, 100_000) for s, v in enumerate([10_000, 12_000, 8_000, 10_000, 14_000])]
    ppo = [run("T", "ppo", s, math.inf, 500_000) for s in range(5)]  # never reaches 0.9
    (claim,) = paper_claims(hard + ppo, {})
    assert claim.claim == "(a) fewer env steps than PPO" and claim.comparison == "ppo / hard"
    assert claim.estimate == ">=50.00x", "every hard run reached 0.9: ppo keeps its own budget, 500k / 10k"
    assert claim.interval.startswith("[>=") and ", >=" in claim.interval, "all ppo runs censored: both ends bounds"
    assert claim.p_value < 0.01 and claim.seeds == "5 vs 5"
    assert "censored at each run's own budget (500.0k for ppo)" in claim.note and "5/5 ppo runs never reached 0.9" in claim.note


def test_a_teacher_guided_run_that_never_reaches_cuts_every_run_at_the_smaller_budget():
    hard = [run("T", "hard", s, v, 100_000) for s, v in enumerate([10_000, 12_000, 8_000, 10_000, math.inf])]
    ppo = [run("T", "ppo", s, math.inf, 500_000) for s in range(5)]
    (claim,) = paper_claims(hard + ppo, {})
    assert claim.estimate == ">=10.00x", "100k / median 10k: the censored hard run sorts above the median"
    assert "censored at 100.0k env steps" in claim.note
    assert "1 hard run(s) censored, all above its median, which stays exact" in claim.note
    assert "not a bound" not in claim.note


def test_no_ratio_when_the_teacher_guided_runs_mostly_never_reach():
    hard = [run("T", "hard", s, v, 100_000) for s, v in enumerate([50_000, math.inf, math.inf])]
    ppo = [run("T", "ppo", s, math.inf, 500_000) for s in range(3)]
    (claim,) = paper_claims(hard + ppo, {})
    assert claim.estimate == "n/a" and "reached 0.9 in only 1/3 runs" in claim.note


def teacher_rows(rates, high=None):
    return [{"seed": str(seed), "success_rate": f"{rate:.4f}", "high": "" if high is None else f"{high[seed]:.4f}"}
            for seed, rate in enumerate(rates)]


def test_student_beats_teacher_and_soft_versus_hard():
    students = [0.99, 0.98, 1.0, 0.97, 0.995]
    runs = [run("T", "hard", s, 20_000, 100_000, h) for s, h in enumerate(students)]
    runs += [run("T", "soft", s, 10_000 + s, 100_000, 0.99) for s in range(5)]
    teachers = {("T", "hard"): teacher_rows([0.55, 0.56, 0.54, 0.57, 0.53])}
    claims = {(c.claim, c.measure.split(",")[0]): c for c in paper_claims(runs, teachers)}
    beats = claims[("(b) student beats its teacher", "held-out success")]
    assert beats.estimate == "+0.440", "median of the paired differences 0.44, 0.42, 0.46, 0.40, 0.465"
    assert beats.p_value == pytest.approx(1 / 32), "5 pairs all positive: the exact signed-rank minimum"
    assert beats.seeds == "5 pairs" and beats.interval == "[+0.400, +0.465]"
    faster = claims[("(c) soft beats hard", "env steps to 0.9")]
    assert faster.comparison == "hard / soft" and faster.estimate == "2.00x" and faster.p_value < 0.01
    higher = claims[("(c) soft beats hard", "held-out success of the students")]
    assert higher.comparison == "soft - hard" and higher.p_value > 0.05, "soft is not clearly better here"
    assert all(c.p_holm >= c.p_value for c in claims.values())
    table = claims_markdown(list(claims.values()))
    assert ("Mann-Whitney (Hodges-Lehmann) interval of the ratio (coverage 96.8% for untied values, approximate "
            "with ties or censored runs)") in table
    assert f"p (Holm): adjusted over the {len(claims)} rows of this table" in table, "the family's size, counted"
    assert "min-max of the 5 paired differences" in table


def test_student_teacher_pairs_by_seed_and_says_when_the_teacher_never_varies():
    runs = [run("T", "hard", s, 20_000, 100_000, h) | {"final_eval": {"interval": {"low": low}}}
            for s, (h, low) in enumerate([(0.97, 0.94), (0.6, 0.53), (0.95, 0.91), (0.99, 0.97), (0.9, 0.85)])]
    teachers = {("T", "hard"): teacher_rows([0.575] * 5, high=[0.64] * 5)}
    (beats,) = [c for c in paper_claims(runs, teachers) if c.claim.startswith("(b)")]
    assert "the teacher alone scores 0.575 on every seed" in beats.note
    assert "4/5 students' 95% interval wholly above their teacher's" in beats.note, "seed 1: 0.53 < 0.64"
    assert beats.p_value == pytest.approx(1 / 32), "every paired difference is still positive"
    runs[1]["heldout"] = 0.5  # one student now below its teacher
    (beats,) = [c for c in paper_claims(runs, teachers) if c.claim.startswith("(b)")]
    assert beats.p_value == pytest.approx(2 / 32) and beats.favours
    teachers = {("T", "hard"): teacher_rows([0.575] * 2)}
    (beats,) = [c for c in paper_claims(runs, teachers) if c.claim.startswith("(b)")]
    assert beats.seeds == "2 pairs", "only seeds with both a student and a teacher are paired"


def test_pooled_claims_combine_tasks_and_adjust_over_the_pooled_rows():
    runs, teachers = [], {}
    for task in ("A", "B", "C"):
        runs += [run(task, "hard", s, 10_000, 100_000, 0.98) for s in range(5)]
        runs += [run(task, "ppo", s, math.inf, 500_000) for s in range(5)]
        teachers[(task, "hard")] = teacher_rows([0.5] * 5)
    claims = paper_claims(runs, teachers)
    pooled = {c.claim: c for c in pooled_claims(claims)}
    assert set(pooled) == {"(a) fewer env steps than PPO", "(b) student beats its teacher"}
    steps = pooled["(a) fewer env steps than PPO"]
    assert steps.task == "A, B, C" and steps.estimate == "3/3 tasks the claimed way"
    assert steps.p_value == pytest.approx(chi2.sf(-2 * 3 * math.log(1 / 252), 6))
    assert steps.p_value < min(c.p_value for c in claims), "three tasks say more than one"
    assert all(c.p_holm >= c.p_value for c in pooled.values())
    assert "Fisher's combination of 3 per-task p-values" in pooled_markdown(list(pooled.values()))


def test_the_wrong_teacher_control_against_ppo_and_the_good_teacher():
    runs = [run("T", "adversarial", s, v, 100_000, h) for s, (v, h) in
            enumerate([(60_000, 0.99), (math.inf, 0.0), (50_000, 0.98), (55_000, 0.97), (65_000, 0.95)])]
    runs += [run("T", "ppo", s, math.inf, 500_000, 0.01) for s in range(5)]
    runs += [run("T", "hard", s, 10_000, 100_000, 0.99) for s in range(5)]
    sooner, higher, lower = control_claims(runs)
    assert sooner.comparison == "ppo / adversarial" and sooner.p_value < 0.05, "4 of 5 got there; ppo never did"
    assert "1 adversarial run(s) censored" in sooner.note
    assert higher.comparison == "adversarial - ppo" and higher.estimate == "+0.960"
    assert lower.comparison == "hard - adversarial" and lower.estimate == "+0.020"
    assert control_claims([r for r in runs if r["method"] != "adversarial"]) == []


def test_the_ratio_is_a_lower_bound_exactly_when_the_baseline_median_is_censored():
    """Item 3 of issue 28: a censored teacher-guided run sorts above every observed one, so while fewer than
    half are censored their median is exact and the ratio's bound comes from the baseline's median alone."""
    guided = [run("T", "adversarial", s, v, 300_000) for s, v in
              enumerate([160_000, math.inf, 160_000, 120_000, 145_000])]
    censored_ppo = [run("T", "ppo", s, v, 1_500_000) for s, v in enumerate([1_300_000] + [math.inf] * 4)]
    (cut,) = [c for c in control_claims(guided + censored_ppo) if c.comparison == "ppo / adversarial"]
    assert cut.estimate == ">=1.88x", "300k (ppo's median, cut) / 160k: a floor"
    assert cut.interval.startswith("[?"), "the lower end pairs censored runs of both sides: no bound either way"
    assert ", >=" in cut.interval
    observed_ppo = [run("T", "ppo", s, v, 1_500_000) for s, v in
                    enumerate([250_000, 280_000, 290_000, 240_000, 260_000])]
    (measured,) = [c for c in control_claims(guided + observed_ppo) if c.comparison == "ppo / adversarial"]
    assert measured.estimate == "1.62x", "260k / 160k, both medians observed: measured, no >="
    assert "all above its median, which stays exact" in measured.note
    half = [run("T", "adversarial", s, v, 300_000) for s, v in enumerate([100_000, 120_000, math.inf, math.inf])]
    (none,) = [c for c in control_claims(half + observed_ppo[:4]) if c.comparison == "ppo / adversarial"]
    assert none.estimate == "n/a", "half censored: the median averages a censored value, so there is no ratio"


def test_other_families_are_tables_of_their_own():
    """ppo_task and ppo_long are compared in their own family, so the paper's table keeps its rows; a long
    baseline whose median reaches 0.9 gives a measured ratio."""
    runs = [run("T", "hard", s, 10_000, 100_000, 0.99) for s in range(5)]
    runs += [run("T", "ppo", s, math.inf, 500_000) for s in range(5)]
    runs += [run("T", "ppo_long", s, v, 2_000_000) for s, v in enumerate([900_000, 1_100_000, math.inf])]
    paper = paper_claims(runs, {})
    assert [c.comparison for c in paper] == ["ppo / hard"]
    (long,) = paper_claims(runs, {}, OTHER_BASELINES)
    assert long.comparison == "ppo_long / hard" and long.estimate == "110.00x" and long.seeds == "3 vs 5"
    runs += [run("T", m, s, 20_000, 100_000, 0.8) for m in ("gemma_hard", "gemma_soft") for s in range(5)]
    teachers = {("T", m): teacher_rows([0.3] * 5) for m in ("gemma_hard", "gemma_soft")}
    llm = paper_claims(runs, teachers, LIVE_LLM)
    assert {c.comparison for c in llm} >= {"ppo / gemma_hard", "gemma_soft student - gemma_soft teacher",
                                           "gemma_hard / gemma_soft", "gemma_soft - gemma_hard"}
    assert [c.comparison for c in paper_claims(runs, {})] == ["ppo / hard"]


def test_a_p_value_below_four_decimals_is_printed_not_rounded_to_zero():
    from bench.claims import Claim, p_text
    assert p_text(0.0312) == "0.0312" and p_text(1 / 252) == "0.0040" and p_text(0.0001) == "0.0001"
    assert p_text(1 / 184_756) == "5.4e-06", "ten seeds a side: the exact Mann-Whitney minimum"
    row = Claim("T", "(a) fewer env steps than PPO", "ppo / hard", "env steps to 0.9", ">=9.00x", "[>=8.00, >=9.00]",
                "an interval", "Mann-Whitney U (exact)", 1 / 184_756, "10 vs 10", p_holm=2 / 184_756)
    line = claims_markdown([row]).splitlines()[2]
    assert "| 5.4e-06 | 1.1e-05 |" in line and "0.0000" not in line
