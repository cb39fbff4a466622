"""Runs that survive: interrupt and resume, damaged files, bad input, the LLM going away mid-run."""
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import main
from fake_llm import FakeLLMServer

PROJECT = Path(__file__).resolve().parents[1]
SMALL = ["--num_envs", "4", "--num_steps", "16", "--eval_interval", "2", "--num_eval", "2", "--log_interval", "1",
         "--save_interval", "1", "--llm_samples", "2", "--final_eval_episodes", "2"]


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its content hash (to prove nothing changed)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def scalar_steps(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


@pytest.mark.parametrize("lag", ["0", "1"])
def test_interrupt_with_sigint_then_resume_continues_the_run(tmp_path, lag):
    small = SMALL + ["--policy_lag", lag]
    args = [sys.executable, str(PROJECT / "main.py"), "train", "--task", "SimpleDoorKey", "--savedir", "run",
            "--logdir", str(tmp_path), "--n_itr", "400", "--distill_decay", "0.01"] + small
    # A session of its own: SIGINT goes to the whole process group (the rollout worker too), as Ctrl-C does.
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    run_dir = tmp_path / "ppo" / "simpledoorkey" / "run"
    deadline = time.time() + 90
    while time.time() < deadline:  # wait until a few iterations are saved
        line = process.stdout.readline()
        if "it 4/400" in line:
            break
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "stopped by SIGINT" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    saved = json.loads(json.dumps(__import__("torch").load(run_dir / "acmodel.pt", weights_only=True)["meta"]))
    stopped_at = saved["iteration"]
    assert stopped_at >= 4

    code = main.main(["train", "--task", "SimpleDoorKey", "--savedir", "run", "--logdir", str(tmp_path),
                      "--n_itr", str(stopped_at + 3), "--distill_decay", "0.01", "--resume"] + small)
    assert code == 0
    steps = [step for step, _ in scalar_steps(run_dir, "teacher/coef")]
    assert steps == sorted(set(steps)), "one point per env step, in order: the curve continues, no restart"
    assert steps[-1] == (stopped_at + 3) * 64 and len(steps) == stopped_at + 3
    coefs = dict(scalar_steps(run_dir, "teacher/coef"))
    assert coefs[(stopped_at + 1) * 64] == pytest.approx(1.0 - 0.01 * stopped_at), "the schedule continues"
    rows = list(csv.DictReader((run_dir / "eval_curve.csv").open()))
    assert [int(r["iteration"]) for r in rows] == sorted({int(r["iteration"]) for r in rows})
    import torch
    assert torch.load(run_dir / "acmodel.pt", weights_only=True)["meta"]["iteration"] == stopped_at + 3


def test_truncated_checkpoint_gives_a_clear_error_and_stays_as_it_is(tmp_path, capsys):
    assert main.main(["train", "--savedir", "run", "--logdir", str(tmp_path), "--n_itr", "1"] + SMALL) == 0
    checkpoint = tmp_path / "ppo" / "simpledoorkey" / "run" / "acmodel.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    before = snapshot(tmp_path)
    capsys.readouterr()
    for args in (["eval", "--loaddir", "run", "--logdir", str(tmp_path), "--num_eval", "1", "--num_videos", "0"],
                 ["train", "--savedir", "run", "--logdir", str(tmp_path), "--resume", "--n_itr", "2"] + SMALL):
        assert main.main(args) == 2
        err = capsys.readouterr().err
        assert "damaged or not a checkpoint" in err and str(checkpoint) in err and len(err.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_truncated_llm_cache_gives_a_clear_error_and_stays_as_it_is(tmp_path, capsys):
    with FakeLLMServer() as server:
        llm = ["--planner", "llm", "--llm_url", server.url, "--logdir", str(tmp_path)]
        assert main.main(["train", "--savedir", "a", "--n_itr", "1"] + llm + SMALL) == 0
        cache = tmp_path / "llm_cache.sqlite"
        cache.write_bytes(cache.read_bytes()[:1000])
        before = snapshot(tmp_path)
        capsys.readouterr()
        assert main.main(["train", "--savedir", "b", "--n_itr", "1"] + llm + SMALL) == 2
    err = capsys.readouterr().err
    assert "answer cache" in err and "delete it" in err and len(err.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args,message", [
    (["train", "--task", "NoSuchTask", "--savedir", "x"], "unknown task 'NoSuchTask'"),
    (["train", "--task", "SimpleDoorKey"], "train needs --savedir"),
    (["eval", "--loaddir", "missing"], "does not exist"),
    (["eval"], "needs --loaddir NAME (a trained run) or --eval_teacher"),
    (["train", "--savedir", "existing"], "already holds a run"),
    (["train", "--savedir", "y", "--resume"], "nothing to resume"),
    (["train", "--savedir", "y", "--n_itr", "0"], "--n_itr must be >= 1, got 0"),
    (["train", "--savedir", "y", "--num_envs", "-3"], "--num_envs must be >= 1, got -3"),
    (["train", "--savedir", "y", "--lr", "-1"], "--lr must be > 0, got -1.0"),
    (["train", "--savedir", "y", "--lr", "nan"], "--lr must be a finite number, got nan"),
    (["train", "--savedir", "y", "--lr", "inf"], "--lr must be a finite number, got inf"),
    (["train", "--savedir", "y", "--ent_coef", "nan"], "--ent_coef must be a finite number, got nan"),
    (["train", "--savedir", "y", "--gamma", "1.5"], "--gamma must be <= 1, got 1.5"),
    (["train", "--savedir", "y", "--seed_list", "-1"], "--seed_list must be >= 0, got -1"),
    (["train", "--savedir", "y", "--seed_list", str(2**32)], "--seed_list must be <= 4294967295"),
    (["train", "--savedir", "y", "--llm_url", "localhost:8000"], "--llm_url must look like http://HOST:PORT"),
    (["train", "--savedir", "y", "--llm_url", "http://h:99999999"], "--llm_url has a malformed port"),
    (["train", "--savedir", "y", "--hidden_size", "10000000"], "--hidden_size must be <= 4096"),
    (["eval", "--eval_teacher", "--num_eval", "0"], "--num_eval must be >= 1, got 0"),
])
def test_bad_input_exits_2_with_one_line_and_touches_nothing(tmp_path, capsys, args, message):
    existing = tmp_path / "ppo" / "simpledoorkey" / "existing"
    existing.mkdir(parents=True)
    (existing / "config.json").write_text("{}")
    (existing / "acmodel.pt").write_bytes(b"saved")  # a run with a checkpoint (without one it may restart)
    before = snapshot(tmp_path)
    assert main.main(args + ["--logdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert snapshot(tmp_path) == before


def test_unknown_subcommand_is_a_usage_error(tmp_path):
    result = subprocess.run([sys.executable, str(PROJECT / "main.py"), "fly"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "invalid choice: 'fly'" in result.stderr


def test_unreachable_and_garbage_speaking_llms_are_refused_before_anything_is_written(tmp_path, capsys):
    server = FakeLLMServer()
    server.stop()
    base = ["train", "--savedir", "z", "--planner", "llm", "--logdir", str(tmp_path)] + SMALL
    assert main.main(base + ["--llm_url", server.url]) == 2
    assert server.url in capsys.readouterr().err
    with FakeLLMServer(answer=lambda sentence: "I would rather not say.") as garbage:
        assert main.main(base + ["--llm_url", garbage.url]) == 2
    err = capsys.readouterr().err.strip()
    assert "no parseable 'Action" in err and len(err.splitlines()) == 1
    assert snapshot(tmp_path) == {}


def test_llm_going_away_mid_run_does_not_lose_the_run(tmp_path, caplog):
    server = FakeLLMServer()

    def answer(sentence, _oracle=server._oracle_answer):
        if server.requests >= 2:  # answer two questions, then disappear
            threading.Thread(target=server.stop, daemon=True).start()
        return _oracle(sentence)

    server._answer = answer
    with server:
        code = main.main(["train", "--savedir", "outage", "--planner", "llm", "--llm_url", server.url,
                          "--logdir", str(tmp_path), "--n_itr", "4", "--llm_max_retries", "0"] + SMALL)
    assert code == 0
    run_dir = tmp_path / "ppo" / "simpledoorkey" / "outage"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == 4 and summary["llm"]["outage_answers"] > 0
    assert (run_dir / "acmodel.pt").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(server.url in w and "answering from the recorded plans" in w for w in warnings)


if os.name != "posix":  # signals as used above are POSIX
    pytestmark = pytest.mark.skip("POSIX signals needed")
