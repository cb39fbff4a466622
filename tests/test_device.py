"""A student trained on a device other than the CPU, while the rollouts stay in CPU buffers.

On a machine where torch offers an accelerator (CUDA, MPS), the whole loop runs on it: train, resume,
evaluate, export. Everywhere, the update is checked with the model on torch's ``meta`` device (tensors with
shapes and no data, so no numbers can be read back from it) and the buffer on the CPU: every tensor the
model meets and every gradient it gets must be on the model's device.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import room_obs

import main
from algos.buffer import RolloutBuffer
from algos.collector import Collector
from algos.pipeline import SerialFeed
from algos.ppo import ppo_update
from algos.trainer import Trainer
from planners.factory import training_teacher_factory
from utils.config import PPOSettings, build_config


def accelerators() -> list[str]:
    found = ["cuda"] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


class FirstStepReached(Exception):
    """Raised where the first minibatch's gradients are about to be clipped: forward and backward are done."""


def filled_buffer(steps: int = 4, envs: int = 2) -> RolloutBuffer:
    buffer = RolloutBuffer(steps, envs, (4, 7, 7), 7)
    teacher = np.full((envs, 7), 1 / 7, np.float32)
    for t in range(steps):
        obs = np.stack([room_obs(agent=(1 + e, 1 + t % 5), direction=t % 4) for e in range(envs)])
        buffer.add(obs, np.zeros(envs, bool), torch.arange(envs), torch.full((envs,), -1.9), torch.zeros(envs),
                   np.ones(envs, np.float32), teacher)
    buffer.compute_returns(torch.zeros(envs), np.zeros(envs, bool), 0.99, 0.95)
    return buffer


@pytest.mark.parametrize("recurrent", [False, True])
def test_the_update_feeds_a_model_on_another_device_than_the_buffer(monkeypatch, recurrent):
    from algos.student import build_student
    from utils.config import StudentSettings
    model = build_student(StudentSettings(recurrent=recurrent, hidden_size=16, ego_size=5), (4, 7, 7), 7).to("meta")
    buffer = filled_buffer()
    if recurrent:
        buffer.initial_state = (torch.zeros(1, 2, 16), torch.zeros(1, 2, 16))
    seen = []
    forward = model.forward

    def spy(obs, state=None, episode_starts=None):
        tensors = list(obs) if isinstance(obs, tuple) else [obs]
        tensors += [t for t in (episode_starts, *(state or ())) if t is not None]
        seen.extend(t.device.type for t in tensors)
        return forward(obs, state, episode_starts)
    monkeypatch.setattr(model, "forward", spy)

    def first_step(parameters, *args, **kwargs):
        grads = [p.grad for p in parameters]
        assert grads and all(g is not None and g.device.type == "meta" for g in grads)
        raise FirstStepReached
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", first_step)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FirstStepReached):
        ppo_update(model, optimizer, buffer, PPOSettings(num_minibatches=2), 1.0, torch.Generator().manual_seed(0))
    assert seen and set(seen) == {"meta"}, "the model was fed only tensors on its own device"
    assert buffer.obs.device.type == "cpu", "the buffer itself stays where collection fills it"


def test_a_collector_with_its_own_student_acts_with_the_learners_latest_weights(tmp_path):
    """What a learner on an accelerator gets with --policy_lag 0: a CPU copy, loaded before each rollout."""
    config = build_config("SimpleDoorKey", {"num_envs": 2, "num_steps": 8, "n_itr": 2, "eval_interval": 0,
                                            "final_eval_episodes": 0, "torch_threads": 1})
    trainer = Trainer(config, 0, tmp_path / "run", training_teacher_factory(config, 0), stream=io.StringIO())
    try:
        spec = trainer.feed.collector.spec
        feed = SerialFeed(Collector(spec), trainer.model, lambda iteration: False)
        try:
            assert feed.collector.student is not trainer.model
            with torch.no_grad():
                for parameter in trainer.model.parameters():
                    parameter.add_(0.05 * torch.randn_like(parameter))
            buffer, _ = feed.get(0)
            for parameter, copied in zip(trainer.model.parameters(), feed.collector.student.parameters()):
                assert torch.equal(parameter, copied)
            with torch.no_grad():
                logits = trainer.model(buffer.obs.reshape((-1, *buffer.obs.shape[2:])))[0]
            stored = torch.log_softmax(logits, -1).gather(1, buffer.actions.reshape(-1, 1)).squeeze(1)
            torch.testing.assert_close(stored, buffer.logprobs.reshape(-1))
        finally:
            feed.close()
    finally:
        trainer.close()


@pytest.mark.parametrize("device", accelerators() or [pytest.param("cuda", marks=pytest.mark.skip(
    reason="torch offers no accelerator here; the meta-device test above covers the update"))])
@pytest.mark.parametrize("lag", ["0", "1"])
def test_train_resume_eval_and_export_on_an_accelerator(tmp_path, capsys, device, lag):
    common = ["--logdir", str(tmp_path), "--device", device]
    tiny = ["--num_envs", "2", "--num_steps", "16", "--eval_interval", "1", "--final_eval_episodes", "2",
            "--num_eval", "2", "--policy_lag", lag]
    assert main.main(["train", "--savedir", "run", "--n_itr", "2", *tiny, *common]) == 0
    assert main.main(["train", "--savedir", "run", "--n_itr", "3", "--resume", *tiny, *common]) == 0
    assert "resuming at iteration 2" in capsys.readouterr().out
    assert main.main(["eval", "--loaddir", "run", "--num_eval", "2", "--num_videos", "0", *common]) == 0
    assert main.main(["export", "--loaddir", "run", "--logdir", str(tmp_path), "--num_obs", "10"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("| ok")
