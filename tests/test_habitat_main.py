"""main.py with --task HabitatRearrange: a short train + teacher eval on the fake habitat-lab, and the
one-line message when habitat is missing.

The fake is injected the documented way, with LLM4TEACH_HABITAT_BACKEND=module:attribute (read by the env
and by the teacher), so main.py runs unchanged.
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import main

PROJECT = Path(__file__).resolve().parents[1]
FAKE = "tests.fakes.habitat_fake:FakeHabitatBackend"


def test_train_then_eval_teacher_on_the_fake(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLM4TEACH_HABITAT_BACKEND", FAKE)
    logdir = tmp_path / "log"
    code = main.main(["train", "--task", "HabitatRearrange", "--savedir", "run", "--logdir", str(logdir),
                      "--n_itr", "2", "--num_envs", "2", "--num_steps", "8", "--num_minibatches", "2",
                      "--eval_interval", "1", "--num_eval", "2", "--device", "cpu",
                      "--final_eval_episodes", "2"])
    assert code == 0
    run = logdir / "ppo" / "habitatrearrange" / "run"
    assert {"config.json", "eval_curve.csv", "acmodel.pt", "summary.json"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "config.json").read_text())["run"]["task"] == "HabitatRearrange"
    rows = list(csv.DictReader((run / "eval_curve.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 2 * 2 * 8 and summary["teacher_fallbacks"] == 0
    assert summary["final_eval"]["episodes"] == 2 and summary["final_eval"]["env_seeds"] == "1000000..1000001"

    code = main.main(["eval", "--task", "HabitatRearrange", "--eval_teacher", "--teacher", "soft",
                      "--planner", "oracle", "--logdir", str(logdir), "--num_eval", "3", "--savedir", "ev"])
    assert code == 0
    results = json.loads((logdir / "ppo" / "habitatrearrange" / "ev" / "teacher_results.json").read_text())
    assert results["episodes"] == 3 and results["success_rate"] == 1.0  # the oracle solves the fake task
    assert results["lengths"] == [4, 4, 4] and results["video"] is None
    assert "Success rate: 1.0000" in capsys.readouterr().out


def test_without_habitat_main_prints_one_line_and_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LLM4TEACH_HABITAT_BACKEND"}
    done = subprocess.run([sys.executable, "main.py", "train", "--task", "HabitatRearrange", "--savedir", "x",
                           "--logdir", str(tmp_path / "h")], cwd=PROJECT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Habitat tasks need habitat-sim and habitat-lab")
    assert "conda env create -f environment-habitat.yml" in lines[0]


def test_conda_file_keeps_the_project_pins_except_numpy():
    import yaml
    from envs.habitat.backend import INSTALL_ROUTE
    conda = yaml.safe_load((PROJECT / "environment-habitat.yml").read_text())
    assert f"conda activate {conda['name']}" in INSTALL_ROUTE
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    pins = dict(line.split("==") for line in pip)
    project = {}
    for line in (PROJECT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            project[name] = version
    assert pins.pop("numpy") == "1.26.4" and pins.pop("habitat-lab").startswith("0.3.3")
    project.pop("numpy")
    assert pins == project
