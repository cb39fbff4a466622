"""The registered sweep files: the confirmation sweep and the live-Gemma sweep keep the final sweep's rules,
checked against configs/sweeps/final.yaml itself (through bench.sweep_plan: nothing here trains)."""
from pathlib import Path

import pytest

from bench.sweep_plan import BASELINES, METHODS, load_plan_file, make_specs
from utils.config import build_config

SWEEPS = Path(__file__).resolve().parents[1] / "configs" / "sweeps"
URL = "http://127.0.0.1:8011"  # never asked: specs and configs only


def plan_of(name: str):
    return load_plan_file(str(SWEEPS / f"{name}.yaml"))


def rules(plan) -> dict:
    """Everything of a plan that is a rule rather than a choice of methods and seeds."""
    return {"tasks": plan.tasks, "budgets": plan.budgets, "baseline_factor": plan.baseline_factor,
            "eval_every_steps": plan.eval_every_steps, "teacher_episodes": plan.teacher_episodes,
            "settings": plan.settings}


@pytest.mark.parametrize("name", ["confirm", "gemma"])
def test_the_sweep_keeps_the_final_sweeps_rules(name):
    _, final = plan_of("final")
    _, plan = plan_of(name)
    assert rules(plan) == rules(final)
    specs = {(s.task, s.method, s.seed): dict(s.overrides) for s in make_specs(plan, URL)}
    finals = {(s.task, s.method): dict(s.overrides) for s in make_specs(final, None)}
    for (task, method, seed), values in specs.items():
        if (task, method) in finals:  # a method of both: the very same settings, seed apart
            assert values == finals[(task, method)], (task, method, seed)


def test_the_confirmation_sweep_is_the_final_one_on_fresh_seeds_plus_its_cells():
    name, plan = plan_of("confirm")
    _, final = plan_of("final")
    assert name == "confirm" and plan.seeds == [5, 6, 7, 8, 9]
    assert not set(plan.seeds) & set(final.seeds), "fresh seeds"
    assert plan.methods == final.methods + ["gemma_hard", "gemma_soft"]
    assert plan.method_settings["ppo"] == final.method_settings["ppo"]
    assert plan.method_settings["ppo_long"] == final.method_settings["ppo"], "the long baseline is the same PPO"
    assert "ppo_task" not in plan.method_settings, "ppo_task keeps the task config's own settings"
    runs = {(s.task, s.method, s.seed): s for s in make_specs(plan, URL)}
    task_ppo = {(t, seed) for t, m, seed in runs if m == "ppo_task"}
    assert task_ppo == {("TwoDoor", seed) for seed in plan.seeds}
    twodoor = build_config("TwoDoor", {})  # the task config alone
    for seed in plan.seeds:
        config = build_config("TwoDoor", dict(runs[("TwoDoor", "ppo_task", seed)].overrides))
        assert (config.ppo.lr, config.ppo.ent_coef) == (twodoor.ppo.lr, twodoor.ppo.ent_coef)
        assert dict(runs[("TwoDoor", "ppo_task", seed)].overrides)["total_steps"] == \
            final.baseline_factor * final.budgets["TwoDoor"]
        ppo = build_config("TwoDoor", dict(runs[("TwoDoor", "ppo", seed)].overrides))
        assert (ppo.ppo.lr, ppo.ppo.ent_coef) == (final.method_settings["ppo"]["lr"],
                                                  final.method_settings["ppo"]["ent_coef"])
    long = {(t, seed): dict(s.overrides) for (t, m, seed), s in runs.items() if m == "ppo_long"}
    assert set(long) == {(t, seed) for t in ("SimpleDoorKey", "ColoredDoorKey") for seed in (5, 6, 7)}
    for (task, seed), values in long.items():
        assert values["total_steps"] == 20 * final.budgets[task]
        short = dict(runs[(task, "ppo", seed)].overrides)
        assert {k: v for k, v in values.items() if k != "total_steps"} == \
            {k: v for k, v in short.items() if k != "total_steps"}, "only the budget differs from ppo"
    assert {"ppo_task", "ppo_long"} <= set(BASELINES)
    expected = len(plan.tasks) * len(plan.methods) * len(plan.seeds) + len(plan.seeds) + 2 * 3
    assert len(runs) == expected


def test_the_gemma_methods_are_the_live_llm_teacher_on_the_completions_api():
    assert METHODS["gemma_hard"]["teacher"] == "hard" and METHODS["gemma_soft"]["teacher"] == "soft"
    name, plan = plan_of("gemma")
    assert name == "gemma" and plan.methods == ["gemma_hard", "gemma_soft"] and plan.seeds == [0, 1, 2, 3, 4]
    assert set(plan.tasks) == {"SimpleDoorKey", "LavaDoorKey", "ColoredDoorKey", "TwoDoor"}
    for spec in make_specs(plan, URL):
        config = build_config(spec.task, dict(spec.overrides))
        assert (config.teacher.planner, config.teacher.skills, config.llm.api, config.llm.model,
                config.llm.url) == ("llm", "paper", "completions", "gemma-3-270m", URL)
        assert config.teacher.mode == spec.method.split("_")[1]
        if spec.method == "gemma_hard":
            assert config.teacher.hard_sampling == "step"
    with pytest.raises(ValueError, match="method 'gemma_hard' needs --llm_url"):
        make_specs(plan, None)


def test_the_runs_left_skip_the_logs_and_the_archives_and_fill_the_claims_first(tmp_path):
    """tools/confirm_left: a run in the log's index or in a committed report's runs.csv is done; what is left
    comes guided methods first, then the 5x baselines, then the long cells, task by task."""
    import csv

    from tools.confirm_left import left_runs
    path = tmp_path / "plan.yaml"
    path.write_text("name: p\ntasks: {SimpleDoorKey: {budget: 2048}, LavaDoorKey: {budget: 4096}}\n"
                    "methods: [ppo, hard]\nseeds: [0, 1]\n"
                    "cells: [{method: ppo_long, tasks: [SimpleDoorKey], seeds: [0], budget_factor: 20}]\n")

    def runs_csv(folder: Path, rows: list[tuple]) -> None:
        folder.mkdir(parents=True)
        with (folder / "runs.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["task", "method", "seed", "run_dir"])
            writer.writerows(rows)

    runs_csv(tmp_path / "log" / "sweeps" / "p", [("SimpleDoorKey", "hard", 0, "x")])
    runs_csv(tmp_path / "archive", [("LavaDoorKey", "hard", 1, ""), ("SimpleDoorKey", "ppo", 1, "")])
    left = left_runs(str(path), str(tmp_path / "log"), [str(tmp_path / "archive")])
    assert left == [("SimpleDoorKey", "hard", 1), ("LavaDoorKey", "hard", 0), ("SimpleDoorKey", "ppo", 0),
                    ("LavaDoorKey", "ppo", 0), ("LavaDoorKey", "ppo", 1), ("SimpleDoorKey", "ppo_long", 0)]
    assert len(left_runs(str(path), str(tmp_path / "nowhere"), [])) == 9
