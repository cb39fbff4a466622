"""The command line end to end: a short train, eval of the student and of the teacher, files on disk."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import main

PROJECT = Path(__file__).resolve().parents[1]
SMALL = ["--num_envs", "4", "--num_steps", "16", "--n_itr", "2", "--eval_interval", "1", "--num_eval", "3",
         "--num_videos", "1", "--log_interval", "1", "--final_eval_episodes", "2"]


def run(args, capsys):
    code = main.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_eval_student_and_teacher(tmp_path, capsys):
    logdir = str(tmp_path / "log")
    # 80 steps x 2 iterations > 150: every env finishes at least one episode, so train charts exist.
    code, out, _ = run(["train", "--task", "SimpleDoorKey", "--savedir", "train", "--logdir", logdir] + SMALL
                       + ["--num_steps", "80"], capsys)
    assert code == 0 and "it 2/2" in out
    run_dir = tmp_path / "log" / "ppo" / "simpledoorkey" / "train"
    checkpoint = torch.load(run_dir / "acmodel.pt", weights_only=True)
    assert set(checkpoint) >= {"model", "optimizer", "meta"}
    assert checkpoint["meta"]["task"] == "SimpleDoorKey" and checkpoint["meta"]["env_steps"] == 2 * 4 * 80
    json.dumps(checkpoint["meta"])  # metadata is plain JSON
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run"]["task"] == "SimpleDoorKey" and config["ppo"]["n_itr"] == 2 and config["teacher"]["mode"] == "hard"
    assert config["env"]["num_envs"] == 4 and config["seed"] == 0
    rows = list(csv.DictReader((run_dir / "eval_curve.csv").open()))
    assert [int(r["env_steps"]) for r in rows] == [320, 640]
    assert list(run_dir.glob("events.out.tfevents.*"))
    tags = _tensorboard_tags(run_dir)
    for tag in ("charts/success_rate", "eval/success_rate", "losses/policy", "losses/value", "losses/entropy",
                "losses/distill", "teacher/coef", "time/sps"):
        assert tag in tags, tag

    code, out, _ = run(["eval", "--task", "SimpleDoorKey", "--loaddir", "train", "--savedir", "eval",
                        "--logdir", logdir, "--num_eval", "3", "--num_videos", "1"], capsys)
    assert code == 0 and "Success rate:" in out and "Mean return:" in out and "Mean length:" in out
    eval_dir = tmp_path / "log" / "ppo" / "simpledoorkey" / "eval"
    results = json.loads((eval_dir / "student_results.json").read_text())
    assert results["episodes"] == 3 and 0 <= results["success_rate"] <= 1
    assert (eval_dir / "student.gif").stat().st_size > 0

    code, out, _ = run(["eval", "--task", "SimpleDoorKey", "--loaddir", "train", "--savedir", "eval",
                        "--logdir", logdir, "--eval_teacher", "--num_eval", "3", "--num_videos", "1"], capsys)
    assert code == 0 and "teacher alone" in out
    teacher = json.loads((eval_dir / "teacher_results.json").read_text())
    assert teacher["episodes"] == 3 and (eval_dir / "teacher.gif").exists()


def test_eval_teacher_alone_works_with_defaults(tmp_path):
    """`python main.py eval --eval_teacher` as users type it: no task, no student, no savedir."""
    result = subprocess.run([sys.executable, str(PROJECT / "main.py"), "eval", "--eval_teacher", "--num_eval", "4",
                             "--num_videos", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "SimpleDoorKey" in result.stdout and "Success rate:" in result.stdout
    assert (tmp_path / "log" / "ppo" / "simpledoorkey" / "eval" / "teacher_results.json").exists()


@pytest.mark.parametrize("extra", [["--teacher", "none"], ["--soft_planner"], ["--planner", "oracle"],
                                   ["--recurrent", "--frame_stack", "2", "--num_minibatches", "2"]])
def test_training_variants_run(tmp_path, capsys, extra):
    code, out, _ = run(["train", "--task", "ColoredDoorKey", "--savedir", "v", "--logdir", str(tmp_path)] + SMALL
                       + extra, capsys)
    assert code == 0
    config = json.loads((tmp_path / "ppo" / "coloreddoorkey" / "v" / "config.json").read_text())
    if "--soft_planner" in extra:
        assert config["teacher"]["mode"] == "soft"
    if "--recurrent" in extra:
        code, out, _ = run(["eval", "--task", "ColoredDoorKey", "--loaddir", "v", "--logdir", str(tmp_path),
                            "--num_eval", "2", "--num_videos", "0"], capsys)
        assert code == 0 and "Success rate:" in out


def test_several_seeds_make_several_runs_and_eval_reads_them_all(tmp_path, capsys):
    code, _, _ = run(["train", "--task", "SimpleDoorKey", "--savedir", "s", "--logdir", str(tmp_path),
                      "--seed_list", "1", "2"] + SMALL, capsys)
    assert code == 0
    base = tmp_path / "ppo" / "simpledoorkey" / "s"
    assert (base / "seed1" / "acmodel.pt").exists() and (base / "seed2" / "acmodel.pt").exists()
    code, out, _ = run(["eval", "--task", "SimpleDoorKey", "--loaddir", "s", "--logdir", str(tmp_path),
                        "--num_eval", "2", "--num_videos", "0"], capsys)
    assert code == 0 and out.count("Success rate:") == 2 and "Mean success rate over 2 runs" in out


def _tensorboard_tags(run_dir: Path) -> set:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return set(accumulator.Tags()["scalars"])


def test_overwrite_starts_the_run_over(tmp_path, capsys):
    args = ["train", "--task", "SimpleDoorKey", "--savedir", "o", "--logdir", str(tmp_path)] + SMALL
    assert run(args, capsys)[0] == 0
    assert run(args, capsys)[0] == 2, "an existing run is refused without --overwrite"
    assert run(args + ["--overwrite", "--n_itr", "1"], capsys)[0] == 0
    run_dir = tmp_path / "ppo" / "simpledoorkey" / "o"
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1, "the old run's events are gone"
    assert json.loads((run_dir / "summary.json").read_text())["iterations"] == 1


def test_eval_teacher_closes_the_teacher_even_when_an_episode_fails(tmp_path, monkeypatch):
    from planners.teacher import PlanTeacher
    closed = []
    monkeypatch.setattr(PlanTeacher, "close", lambda self: closed.append(self))
    args = ["eval", "--eval_teacher", "--num_eval", "2", "--num_videos", "0", "--logdir", str(tmp_path)]
    assert main.main(args) == 0 and len(closed) == 1

    def broken(*_args, **_kwargs):
        raise RuntimeError("episode failed")
    monkeypatch.setattr("algos.evaluate.run_episodes", broken)
    with pytest.raises(RuntimeError):
        main.main(args)
    assert len(closed) == 2
