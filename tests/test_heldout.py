"""Held-out final evaluation: layouts no training-time evaluation uses, scored with a Wilson interval."""
import json

import numpy as np

import main
from algos.evaluate import HELDOUT_SEED_BASE, evaluation_seeds, heldout_seeds

SMALL = ["--num_envs", "4", "--num_steps", "16", "--n_itr", "2", "--eval_interval", "1", "--num_eval", "3",
         "--log_interval", "1"]


def test_training_time_layouts_never_reach_the_held_out_range():
    assert heldout_seeds(3) == [HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + 1, HELDOUT_SEED_BASE + 2]
    drawn = evaluation_seeds([], 5000, np.random.default_rng(0))  # random training-time layouts
    assert max(drawn) < HELDOUT_SEED_BASE


def test_training_refuses_evaluation_seeds_in_the_held_out_range(tmp_path, capsys):
    code = main.main(["train", "--savedir", "x", "--logdir", str(tmp_path), "--env_seed_list", "999999"] + SMALL)
    err = capsys.readouterr().err
    assert code == 2 and "below 1,000,000" in err and len(err.strip().splitlines()) == 1


def test_a_run_ends_with_a_held_out_evaluation_in_its_summary(tmp_path, capsys):
    assert main.main(["train", "--savedir", "run", "--logdir", str(tmp_path), "--final_eval_episodes", "5"]
                     + SMALL) == 0
    assert "held-out final evaluation: success" in capsys.readouterr().out
    final = json.loads((tmp_path / "ppo" / "simpledoorkey" / "run" / "summary.json").read_text())["final_eval"]
    assert final["episodes"] == 5 and final["env_seeds"] == "1000000..1000004" and final["actions"] == "sampled"
    assert final["success_rate"] == final["successes"] / 5
    interval = final["interval"]
    assert interval["kind"] == "95% Wilson score" and interval["low"] <= final["success_rate"] <= interval["high"]
    assert interval["high"] - interval["low"] > 0.3, "5 episodes leave a wide interval"


def test_final_evaluation_can_be_switched_off(tmp_path):
    assert main.main(["train", "--savedir", "run", "--logdir", str(tmp_path), "--final_eval_episodes", "0"]
                     + SMALL) == 0
    assert json.loads((tmp_path / "ppo" / "simpledoorkey" / "run" / "summary.json").read_text())["final_eval"] is None


def test_teacher_alone_on_the_held_out_layouts(tmp_path, capsys):
    assert main.main(["eval", "--eval_teacher", "--heldout", "--final_eval_episodes", "6", "--planner", "oracle",
                      "--skills", "safe", "--logdir", str(tmp_path), "--num_videos", "0"]) == 0
    out = capsys.readouterr().out
    assert "Success 95% Wilson score interval: [0.6097, 1.0000] (6/6, env seeds 1000000..1000005, held out)" in out
    results = json.loads((tmp_path / "ppo" / "simpledoorkey" / "eval" / "teacher_results.json").read_text())
    assert results["env_seeds"] == heldout_seeds(6) and results["heldout"] is True
    assert main.main(["eval", "--eval_teacher", "--heldout", "--final_eval_episodes", "0",
                      "--logdir", str(tmp_path)]) == 2
