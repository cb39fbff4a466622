"""The outside baseline: Stable-Baselines3 PPO as sweep method sb3_ppo (needs requirements-sb3.txt)."""
import csv
import importlib.util
import json

import pytest

import main
from utils.config import RunConfig

pytestmark = pytest.mark.skipif(importlib.util.find_spec("stable_baselines3") is None,
                                reason="stable-baselines3 is not installed (pip install -r requirements-sb3.txt)")


def test_sb3_ppo_writes_what_our_runs_write_and_is_reported_like_them(tmp_path, capsys, inline_sweep, monkeypatch):
    import tempfile
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where SB3's default logger makes a folder per run
    logdir = str(tmp_path)
    assert main.main(["sweep", "--name", "s", "--logdir", logdir, "--tasks", "SimpleDoorKey", "--methods", "sb3_ppo",
                      "--seeds", "0", "--total_steps", "2048", "--set", "num_eval=2", "final_eval_episodes=3",
                      "eval_interval=1"]) == 0
    row = next(csv.DictReader((tmp_path / "sweeps" / "s" / "runs.csv").open()))
    run_dir = tmp_path / "ppo" / "simpledoorkey" / "s" / "sb3_ppo" / "seed0"
    assert row["method"] == "sb3_ppo" and int(row["env_steps"]) == 2048
    document = json.loads((run_dir / "config.json").read_text())
    config = RunConfig.from_json(document).flat()
    # RL-Zoo's MiniGrid settings, stated in the run's own settings
    assert (config["num_envs"], config["num_steps"], config["update_epochs"], config["lr"]) == (8, 128, 10, 2.5e-4)
    assert document["sb3"]["batch_size"] == 64 and document["sb3"]["n_steps"] == 128 and config["teacher"] == "none"
    curve = list(csv.DictReader((run_dir / "eval_curve.csv").open()))
    assert [int(r["env_steps"]) for r in curve] == [1024, 2048], "evaluated after each 8 x 128-step update"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 2048 and summary["iterations"] == 2
    assert summary["final_eval"]["episodes"] == 3 and summary["final_eval"]["env_seeds"] == "1000000..1000002"
    assert (run_dir / "sb3_policy.pt").exists()
    assert not list(scratch.glob("SB3-*")), "no logger folder is left outside the run folder"
    assert not (tmp_path / "sweeps" / "s" / "teacher_heldout.csv").exists(), "no teacher to measure alone"

    out = tmp_path / "report"
    assert main.main(["report", "--name", "s", "--logdir", logdir, "--out", str(out)]) == 0
    assert "| sb3_ppo | 0/1 |" in (out / "results.md").read_text()
