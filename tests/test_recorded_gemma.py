"""The committed answers of the live Gemma-3-270M teacher replay that teacher without the model.

planners/data/recorded_gemma3_270m_plans.json is the answer cache of the gemma sweep (configs/sweeps/gemma.yaml),
exported with `main.py cache export`; docs/results/gemma/teacher_heldout.csv holds what the live teacher alone
did on the held-out layouts in that sweep. Replayed from the file, the teacher must do exactly that again.
"""
import csv
import json
from pathlib import Path

import pytest

import main

PROJECT = Path(__file__).resolve().parents[1]
PLANS = PROJECT / "planners" / "data" / "recorded_gemma3_270m_plans.json"
LIVE = PROJECT / "docs" / "results" / "gemma" / "teacher_heldout.csv"
TASKS = ("simpledoorkey", "lavadoorkey", "coloreddoorkey", "twodoor")


def test_every_task_has_its_table_of_plan_distributions():
    document = json.loads(PLANS.read_text())
    assert set(document) == set(TASKS)
    for task, entries in document.items():
        assert entries and len({e["observation"] for e in entries}) == len(entries), task
        for entry in entries:
            assert entry["observation"].startswith("Agent sees <")
            assert abs(sum(p["probability"] for p in entry["plans"]) - 1) < 1e-9, (task, entry["observation"])


@pytest.mark.parametrize("method, mode", [("gemma_hard", "hard"), ("gemma_soft", "soft")])
def test_the_replayed_teacher_alone_does_what_the_live_one_did(tmp_path, method, mode):
    live = next(row for row in csv.DictReader(LIVE.open())
                if row["task"] == "SimpleDoorKey" and row["method"] == method and row["seed"] == "0")
    episodes = int(live["episodes"])
    assert main.main(["eval", "--eval_teacher", "--task", "SimpleDoorKey", "--teacher", mode, "--seed_list", "0",
                      "--planner", "recorded", "--recorded_plans", str(PLANS), "--recorded_table", "simpledoorkey",
                      "--heldout", "--final_eval_episodes", str(episodes), "--num_videos", "0",
                      "--logdir", str(tmp_path)]) == 0
    replay = json.loads((tmp_path / "ppo" / "simpledoorkey" / "eval" / "teacher_results.json").read_text())
    assert sum(replay["successes"]) == int(live["successes"])
    assert f"{replay['mean_return']:.4f}" == live["mean_return"]
