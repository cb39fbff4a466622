"""The deployed student: ONNX export through main.py, onnxruntime against torch, and the latency bench."""
import re
import time

import numpy as np
import pytest

import envs
import main
from algos import export
from algos.evaluate import load_student
from algos.export import OnnxPolicy, TorchPolicy
from algos.student import build_student
from utils.checkpoint import save_checkpoint
from utils.config import StudentSettings


def make_checkpoint(logdir, name, recurrent=False, frame_stack=1, seed=0):
    """A tiny untrained student saved the way the trainer saves one."""
    import torch
    torch.manual_seed(seed)
    env = envs.make_env("SimpleDoorKey")
    channels, width, height = env.observation_space.shape
    model = build_student(StudentSettings(recurrent=recurrent, hidden_size=16, ego_size=5),
                          (channels * frame_stack, width, height), int(env.action_space.n))
    path = logdir / "ppo" / "simpledoorkey" / name / "acmodel.pt"
    save_checkpoint(path, model.state_dict(), None, {"task": "SimpleDoorKey", "seed": seed, "iteration": 1,
                                                     "env_steps": 16, "model_config": model.config(),
                                                     "frame_stack": frame_stack})
    return path


@pytest.mark.parametrize("recurrent, frame_stack", [(False, 1), (True, 2)])
def test_export_round_trip(tmp_path, capsys, recurrent, frame_stack):
    checkpoint = make_checkpoint(tmp_path, "run", recurrent, frame_stack)
    assert main.main(["export", "--logdir", str(tmp_path), "--loaddir", "run"]) == 0
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1 and line.endswith("| ok") and "100 recorded observations" in line
    assert float(re.search(r"= ([0-9.e+-]+) \(tolerance", line).group(1)) <= 1e-5
    onnx_path = checkpoint.parent / "student.onnx"
    assert onnx_path.exists() and not list(checkpoint.parent.glob("*.unchecked*"))

    # Independently of the command's own check: the saved observations through both runtimes.
    saved = np.load(checkpoint.parent / "student.check.npz")
    assert saved["obs"].shape == (100, 4 * frame_stack, 10, 10) and saved["obs"].dtype == np.uint8
    model, _ = load_student(checkpoint, "SimpleDoorKey")
    runtime, reference = OnnxPolicy(onnx_path, threads=1), TorchPolicy(model)
    for policy in (runtime, reference):
        policy.reset(1)
    for obs, start, probs in zip(saved["obs"], saved["episode_starts"], saved["action_probs"]):
        starts = np.array([start], dtype=np.float32)
        ours, theirs = runtime.probs(obs[None], starts), reference.probs(obs[None], starts)
        assert np.abs(ours - theirs).max() <= 1e-5 and np.abs(theirs[0] - probs).max() <= 1e-6
        assert ours.sum() == pytest.approx(1.0, abs=1e-5)
    assert runtime.recurrent == recurrent

    batch = saved["obs"][:3]
    if recurrent:  # the state really flows through the graph: another state, other probabilities
        session_inputs = {i.name for i in runtime.session.get_inputs()}
        assert session_inputs == {"obs", "lstm_h", "lstm_c"}
        runtime.reset(3)
        from_zero = runtime.probs(batch)
        assert np.abs(runtime.probs(batch) - from_zero).max() > 1e-6
    else:  # the batch axis is free
        assert runtime.probs(batch).shape == (3, 7)


def test_a_mismatch_exits_non_zero_and_writes_nothing(tmp_path, capsys, monkeypatch):
    checkpoint = make_checkpoint(tmp_path, "run")
    original = export.OnnxPolicy.probs
    monkeypatch.setattr(export.OnnxPolicy, "probs", lambda self, obs, starts=None: original(self, obs, starts) + 1e-3)
    assert main.main(["export", "--logdir", str(tmp_path), "--loaddir", "run", "--num_obs", "10"]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith("export: MISMATCH") and len(line.splitlines()) == 1
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["acmodel.pt"]


def test_missing_checkpoint_is_a_one_line_usage_error(tmp_path, capsys):
    assert main.main(["export", "--logdir", str(tmp_path), "--loaddir", "nothing"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no checkpoint at") and "nothing" in err and len(err.splitlines()) == 1

    for seed in (0, 1):
        make_checkpoint(tmp_path, f"multi/seed{seed}", seed=seed)
    assert main.main(["export", "--logdir", str(tmp_path), "--loaddir", "multi"]) == 2
    err = capsys.readouterr().err.strip()
    assert "2 seed runs" in err and "--loaddir multi/seed0" in err and len(err.splitlines()) == 1


def test_latency_bench_smoke(capsys):
    start = time.perf_counter()
    assert main.main(["bench", "--latency", "--smoke"]) == 0
    assert time.perf_counter() - start < 20
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 5 and cells[0] not in ("decision maker", "---"):
            rows[cells[0]] = cells
    seconds = {name: _seconds(cells[1]) for name, cells in rows.items()}
    assert len(rows) == 10 and all(s > 0 for s in seconds.values())
    assert rows["student, onnxruntime, 1 thread"][4] == "1"
    llm = next(name for name in rows if "new sentence: one request" in name)
    assert seconds[llm] >= 0.02, "the fake LLM's latency is inside the timed decision"
    cached = next(name for name in rows if "on-disk cache" in name)
    assert seconds[cached] < seconds[llm], "no request when the answer is on disk (the bench counts them)"
    stated = next(name for name in rows if "stated" in name)
    assert seconds[stated] == pytest.approx(64 / 18, rel=1e-2) and "arXiv:2401.10774" in out


def _seconds(text: str) -> float:
    value, unit = text.split()
    return float(value) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}[unit]
