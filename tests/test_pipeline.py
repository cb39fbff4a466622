"""--policy_lag: the rollout collected ahead in a worker process, with the weights from before the current update."""
import io
import multiprocessing
import os
import signal

import pytest
import torch

import algos.trainer as trainer_module
from algos.collector_process import RemoteTraceback, RolloutWorkerError
from algos.rollout import StopFlag, TrainingInterrupted
from algos.trainer import Trainer
from planners.factory import training_teacher_factory
from planners.llm.client import LLMConfigError
from utils.config import build_config


def make_trainer(folder, lag: int, n_itr: int = 2, stop=None, resume=False, factory=None, eval_interval=0):
    config = build_config("SimpleDoorKey", {"num_envs": 4, "num_steps": 16, "n_itr": n_itr,
                                            "eval_interval": eval_interval,
                                            "policy_lag": lag, "torch_threads": 1, "num_minibatches": 2,
                                            "update_epochs": 2, "final_eval_episodes": 0})
    return Trainer(config, 0, folder, teacher_factory=factory or training_teacher_factory(config, 0),
                   stream=io.StringIO(), stop=stop, resume=resume)


def teacher_that_cannot_be_built():
    """A teacher factory (module level: the worker process unpickles it) failing as a misconfigured LLM does."""
    raise LLMConfigError("HTTP 401 from the LLM server: fix LLM4TEACH_API_KEY")


@pytest.fixture
def updates(monkeypatch):
    """Records, for every PPO update, the weights before it, the rollout it learnt from, and the weights after."""
    records = []
    real = trainer_module.ppo_update

    def spy(model, optimizer, buffer, *args):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        rollout = {"obs": buffer.obs.clone(), "actions": buffer.actions.clone(), "logprobs": buffer.logprobs.clone()}
        losses = real(model, optimizer, buffer, *args)
        records.append({"before": before, "rollout": rollout,
                        "after": {k: v.clone() for k, v in model.state_dict().items()}})
        return losses
    monkeypatch.setattr(trainer_module, "ppo_update", spy)
    return records


def stored_logprobs_match(model, weights, rollout) -> bool:
    model.load_state_dict(weights)
    with torch.no_grad():
        obs = rollout["obs"].reshape((-1,) + rollout["obs"].shape[2:])
        logits = model(obs)[0]
        logprobs = torch.log_softmax(logits, -1).gather(1, rollout["actions"].reshape(-1, 1)).squeeze(1)
    return torch.allclose(logprobs, rollout["logprobs"].reshape(-1), atol=1e-5)


def test_first_update_is_identical_with_and_without_lag(tmp_path, updates):
    make_trainer(tmp_path / "serial", lag=0).run()
    serial = list(updates)
    updates.clear()
    make_trainer(tmp_path / "lagged", lag=1).run()
    lagged = list(updates)
    assert len(serial) == len(lagged) == 2
    for name, value in serial[0]["after"].items():
        assert torch.equal(value, lagged[0]["after"][name]), name
    assert torch.equal(serial[0]["rollout"]["actions"], lagged[0]["rollout"]["actions"])


def test_with_lag_one_the_next_rollout_is_collected_by_the_weights_before_the_update(tmp_path, updates):
    trainer = make_trainer(tmp_path / "lagged", lag=1)
    trainer.run()
    second = updates[1]
    assert stored_logprobs_match(trainer.model, updates[0]["before"], second["rollout"]), "lag 1: theta_0 collected"
    assert not stored_logprobs_match(trainer.model, second["before"], second["rollout"])

    updates.clear()
    serial = make_trainer(tmp_path / "serial", lag=0)
    serial.run()
    assert stored_logprobs_match(serial.model, updates[1]["before"], updates[1]["rollout"]), "lag 0: theta_1 collected"


def test_a_stop_during_the_lagged_loop_saves_and_resumes(tmp_path, updates, monkeypatch):
    stop = StopFlag()
    real_save = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self: (stop.request("SIGINT"), real_save(self))[1])
    trainer = make_trainer(tmp_path / "run", lag=1, n_itr=6, stop=stop)
    trainer.config.eval.save_interval = 1  # the first save (after update 1) asks to stop
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    assert multiprocessing.active_children() == [], "the rollout worker was reaped"
    saved = torch.load(tmp_path / "run" / "acmodel.pt", weights_only=True)["meta"]["iteration"]
    assert 1 <= saved < 6
    monkeypatch.setattr(Trainer, "save", real_save)
    resumed = make_trainer(tmp_path / "run", lag=1, n_itr=6, resume=True)
    result = resumed.run()
    assert result.iterations == 6 and result.env_steps == 6 * 4 * 16


def test_an_error_in_the_worker_is_raised_here_with_its_type_and_the_worker_is_reaped(tmp_path):
    with pytest.raises(LLMConfigError, match="fix LLM4TEACH_API_KEY") as raised:
        make_trainer(tmp_path / "run", lag=1, factory=teacher_that_cannot_be_built)
    assert isinstance(raised.value.__cause__, RemoteTraceback), "the worker's traceback is kept as the cause"
    assert multiprocessing.active_children() == []
    assert not (tmp_path / "run").exists(), "nothing written"


def test_a_dead_worker_is_an_error_not_a_hang_and_the_run_keeps_its_checkpoint(tmp_path, updates, monkeypatch):
    trainer = make_trainer(tmp_path / "run", lag=1, n_itr=50)
    real = trainer_module.ppo_update

    def kill_after_first_update(*args):
        losses = real(*args)
        os.kill(trainer.collector.process.pid, signal.SIGKILL)
        return losses
    monkeypatch.setattr(trainer_module, "ppo_update", kill_after_first_update)
    with pytest.raises(RolloutWorkerError, match="died"):
        trainer.run()
    assert torch.load(tmp_path / "run" / "acmodel.pt", weights_only=True)["meta"]["iteration"] >= 1
    assert multiprocessing.active_children() == []


def test_the_worker_ignores_sigint_the_learner_decides(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path / "run", lag=1, n_itr=4)
    real = trainer_module.ppo_update
    interrupted = []

    def interrupt_worker(*args):
        if not interrupted:  # as Ctrl-C in a terminal does: the whole process group gets SIGINT
            os.kill(trainer.collector.process.pid, signal.SIGINT)
            interrupted.append(True)
        return real(*args)
    monkeypatch.setattr(trainer_module, "ppo_update", interrupt_worker)
    result = trainer.run()
    assert interrupted and result.iterations == 4


def test_a_run_resumed_after_its_last_iteration_reports_its_last_evaluation(tmp_path):
    first = make_trainer(tmp_path / "run", lag=0, eval_interval=1).run()
    again = make_trainer(tmp_path / "run", lag=0, eval_interval=1, resume=True).run()
    assert again.env_steps == first.env_steps == 2 * 4 * 16, "nothing is trained again"
    assert first.final_success_rate is not None
    assert again.final_success_rate == pytest.approx(first.final_success_rate, abs=1e-4)
    assert again.env_steps_per_second > 0
