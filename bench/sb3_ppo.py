"""Stable-Baselines3 PPO on the registered task ids: the outside baseline, sweep method ``sb3_ppo``.

Optional: ``pip install -r requirements-sb3.txt``. The settings are RL-Zoo's for MiniGrid: the anchor
``minigrid-defaults`` of ``hyperparams/ppo.yml`` in DLR-RM/rl-baselines3-zoo (read at commit 208b6fd), used
there for MiniGrid-DoorKey-5x5-v0 among others: a flattened observation (``FlatObsWrapper``), ``normalize:
true`` (VecNormalize of observations and rewards), ``MlpPolicy``, 8 envs, ``n_steps`` 128, ``batch_size``
64, ``n_epochs`` 10, ``learning_rate`` 2.5e-4, ``clip_range`` 0.2, ``gamma`` 0.99, ``gae_lambda`` 0.95,
``ent_coef`` 0.0. The sweep's method definition (:data:`bench.sweep_plan.METHODS`) sets those values as run
settings, and :func:`train_sb3` reads them from the config, so ``config.json`` states what ran.

Our observation is already a flat grid (the remembered map, ``uint8 (4, W, H)``), so "flattened" is
gymnasium's ``FlattenObservation`` of it; MiniGrid's ``FlatObsWrapper`` would add a mission encoding that
these tasks do not have. A run writes what our own runs write, so ``main.py report`` treats it like any
method: ``config.json``, ``eval_curve.csv`` (evaluation every ``eval_interval * num_envs * num_steps`` env
steps on the same training-time layouts as our runs), ``summary.json`` with the held-out final evaluation,
and ``sb3_policy.pt`` (the policy's weights and the observation normaliser as plain tensors). It cannot be
resumed: an unfinished run starts over.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch

POLICY_NAME = "sb3_policy.pt"
RL_ZOO_SOURCE = "RL-Zoo hyperparams/ppo.yml, minigrid-defaults (DLR-RM/rl-baselines3-zoo @ 208b6fd)"
RL_ZOO_SETTINGS = {  # run settings (RunConfig names) of method sb3_ppo; batch 64 = 8 * 128 / 16 minibatches
    "teacher": "none", "num_envs": 8, "num_steps": 128, "num_minibatches": 16, "update_epochs": 10, "lr": 2.5e-4,
    "clip_coef": 0.2, "gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5,
    "norm_adv": True,
}


def installed() -> bool:
    return importlib.util.find_spec("stable_baselines3") is not None


def require() -> None:
    """One actionable line when Stable-Baselines3 is missing."""
    if not installed():
        raise ValueError("method sb3_ppo needs Stable-Baselines3: pip install -r requirements-sb3.txt")


def ppo_kwargs(config) -> dict:
    """SB3 PPO arguments from the run settings."""
    c = config.flat()
    rollout = c["num_envs"] * c["num_steps"]
    if rollout % c["num_minibatches"]:
        raise ValueError(f"sb3_ppo: num_envs * num_steps ({rollout}) must be divisible by num_minibatches")
    return {"n_steps": c["num_steps"], "batch_size": rollout // c["num_minibatches"], "n_epochs": c["update_epochs"],
            "learning_rate": c["lr"], "clip_range": c["clip_coef"], "gamma": c["gamma"], "gae_lambda": c["gae_lambda"],
            "ent_coef": c["ent_coef"], "vf_coef": c["vf_coef"], "max_grad_norm": c["max_grad_norm"],
            "normalize_advantage": bool(c["norm_adv"])}


def make_vec_env(task: str, num_envs: int, seed: int, gamma: float):
    """``num_envs`` copies of the task's registered env, flattened, with RL-Zoo's VecNormalize."""
    import gymnasium as gym
    from gymnasium.wrappers import FlattenObservation
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from envs import get_task
    env_id = get_task(task).env_id

    def make():
        return Monitor(FlattenObservation(gym.make(env_id, disable_env_checker=True)))

    venv = DummyVecEnv([make] * num_envs)
    venv.seed(seed)
    return VecNormalize(venv, gamma=gamma)


class SB3Policy:
    """An SB3 policy as an evaluation policy of :func:`algos.evaluate.run_episodes`."""

    def __init__(self, model, normalizer, deterministic: bool = False, seed: int = 0):
        self.model, self.normalizer, self.deterministic = model, normalizer, deterministic
        self.generator = torch.Generator().manual_seed(seed)

    def start(self, num_envs: int) -> None:
        pass

    @torch.inference_mode()
    def act(self, obs: np.ndarray, episode_starts: np.ndarray, frame_channels: int) -> np.ndarray:
        flat = self.normalizer.normalize_obs(obs.reshape(len(obs), -1).astype(np.float32))
        probs = self.model.policy.get_distribution(torch.as_tensor(flat, dtype=torch.float32)).distribution.probs
        if self.deterministic:
            return probs.argmax(-1).numpy()
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1).numpy()


def train_sb3(config, seed: int, run_dir: Path, on_start=None, on_save=None, stop=None):
    """Train SB3 PPO for ``config.total_steps`` env steps into ``run_dir``; returns a TrainResult.

    ``on_start`` is called once the settings passed their checks, right before anything is written;
    ``on_save`` after the policy file is written (the run-folder hooks of :mod:`utils.run_folder`).
    A ``stop`` request (:class:`algos.rollout.StopFlag`) ends training after the current env step with
    TrainingInterrupted; nothing is saved (an SB3 run cannot resume).
    """
    require()
    from stable_baselines3 import PPO
    from stable_baselines3 import __version__ as sb3_version
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger

    import envs as task_envs
    from algos.evaluate import final_evaluation, run_episodes, training_eval_seeds
    from algos.rollout import TrainingInterrupted
    from algos.trainer import CURVE_FIELDS, SUCCESS_THRESHOLD, TrainResult

    c = config.flat()
    if c["teacher"] != "none":
        raise ValueError("sb3_ppo trains without a teacher (teacher must be 'none')")
    if c["frame_stack"] != 1 or c["recurrent"]:
        raise ValueError("sb3_ppo runs a feed-forward MLP on one frame (frame_stack 1, recurrent off)")
    kwargs = ppo_kwargs(config)
    if on_start is not None:
        on_start()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    task = c["task"]
    rollout = c["num_envs"] * c["num_steps"]
    eval_every = c["eval_interval"] * rollout
    total = c["n_itr"] * rollout
    (run_dir / "config.json").write_text(json.dumps(
        {**config.to_json(), "seed": seed, "method": "sb3_ppo",
         "sb3": {"version": sb3_version, "policy": "MlpPolicy", "observation": "FlattenObservation",
                 "normalize": "VecNormalize(observations, rewards)", "source": RL_ZOO_SOURCE, **kwargs}},
        indent=2))
    venv = make_vec_env(task, c["num_envs"], seed, c["gamma"])
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))  # its default makes an empty /tmp/SB3-<time> per run
    policy = SB3Policy(model, venv, c["eval_deterministic"], seed)
    seeds = training_eval_seeds(c["env_seed_list"], c["num_eval"], np.random.default_rng(seed + 1))
    pool = [task_envs.make_env(task) for _ in seeds]
    curve_path = run_dir / "eval_curve.csv"
    with curve_path.open("w", newline="") as handle:
        csv.writer(handle).writerow(CURVE_FIELDS)
    state = {"steps_to_threshold": None, "last": None, "last_steps": 0}
    start = time.perf_counter()

    def evaluate(env_steps: int) -> None:
        result = run_episodes(task, seeds, policy, 1, env_pool=pool)
        state["last"], state["last_steps"] = result, env_steps
        with curve_path.open("a", newline="") as handle:
            csv.writer(handle).writerow([env_steps // rollout, env_steps, f"{result.success_rate:.4f}",
                                         f"{result.mean_return:.4f}", f"{result.mean_length:.2f}",
                                         f"{time.perf_counter() - start:.1f}"])
        if state["steps_to_threshold"] is None and result.success_rate >= SUCCESS_THRESHOLD:
            state["steps_to_threshold"] = env_steps

    class Evaluator(BaseCallback):
        """Evaluates after each update that completes an evaluation interval (at the next rollout's start)."""

        def _on_rollout_start(self) -> None:
            if eval_every and self.num_timesteps and self.num_timesteps % eval_every == 0:
                evaluate(self.num_timesteps)

        def _on_step(self) -> bool:
            return stop is None or not stop.requested

    try:
        model.learn(total_timesteps=total, callback=Evaluator())
        if stop is not None and stop.requested:
            raise TrainingInterrupted(stop.signal_name)
        if eval_every and state["last_steps"] != model.num_timesteps:
            evaluate(model.num_timesteps)  # the budget's end, like our trainer's last iteration
        elapsed = time.perf_counter() - start
        torch.save({"policy": model.policy.state_dict(),
                    "obs_mean": torch.as_tensor(venv.obs_rms.mean), "obs_var": torch.as_tensor(venv.obs_rms.var),
                    "meta": {"task": task, "seed": seed, "env_steps": int(model.num_timesteps),
                             "sb3_version": sb3_version}}, run_dir / POLICY_NAME)
        if on_save is not None:
            on_save()
        final_eval = final_evaluation(config, policy)
    finally:
        venv.close()
    last = state["last"]
    result = TrainResult(str(run_dir), int(model.num_timesteps), int(model.num_timesteps) // rollout,
                         last.success_rate if last else None, state["steps_to_threshold"],
                         model.num_timesteps / max(elapsed, 1e-9), 0, {}, final_eval)
    (run_dir / "summary.json").write_text(json.dumps(result.to_json(), indent=2))
    return result
