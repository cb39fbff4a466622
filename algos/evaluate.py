"""Evaluation: run a policy (the student, or the teacher alone) for one episode on each of a set of layouts.

All evaluation envs step together (one batched forward per step); an env whose episode ended waits for the
others. The first ``num_videos`` episodes can be recorded as frames of the remembered map.

Which layouts: training-time evaluations (the learning curve, ``eval`` without ``--heldout``) use env seeds
below :data:`HELDOUT_SEED_BASE`; the held-out final evaluation of every run and the teacher-alone scores use
seeds ``HELDOUT_SEED_BASE + k`` for ``k < final_eval_episodes`` (:func:`heldout_evaluation`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import envs as task_envs
from algos.student import check_compatible, read_checkpoint, rebuild_student
from envs.vector import FrameStack
from utils.checkpoint import load_weights
from utils.video import render_remembered_map

HELDOUT_SEED_BASE = 1_000_000  # env seeds from here on are never used by training-time evaluations


@dataclass
class EvalResult:
    """Per-episode outcomes of one evaluation and their means."""

    returns: list[float]
    lengths: list[int]
    successes: list[bool]
    seeds: list[int | None]
    videos: list[list[np.ndarray]] = field(default_factory=list)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.lengths))

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes))

    def summary(self) -> dict:
        return {"episodes": len(self.returns), "mean_return": self.mean_return, "mean_length": self.mean_length,
                "success_rate": self.success_rate}


def evaluation_seeds(env_seed_list: list[int], num_eval: int, rng: np.random.Generator) -> list[int]:
    """``[]`` -> random seeds; ``[s]`` -> s, s+1, ..., s+num_eval-1; several seeds -> exactly those."""
    if not env_seed_list:
        return [int(s) for s in rng.integers(0, HELDOUT_SEED_BASE, size=num_eval)]
    if len(env_seed_list) == 1:
        return [env_seed_list[0] + i for i in range(num_eval)]
    return list(env_seed_list)


class StudentPolicy:
    """Acts with the student network: sampled actions, or the most likely one when deterministic."""

    def __init__(self, model: torch.nn.Module, device: torch.device | str = "cpu", deterministic: bool = False,
                 seed: int | None = None):
        self.model, self.device, self.deterministic = model, device, deterministic
        self.generator = torch.Generator().manual_seed(seed if seed is not None else 0)
        self.state = None

    def start(self, num_envs: int) -> None:
        self.state = self.model.initial_state(num_envs, self.device)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, episode_starts: np.ndarray, frame_channels: int) -> np.ndarray:
        logits, _, self.state = self.model(torch.from_numpy(obs).to(self.device), self.state,
                                           torch.from_numpy(episode_starts).to(self.device))
        if self.deterministic:
            return logits.argmax(-1).cpu().numpy()
        probs = torch.softmax(logits.float().cpu(), -1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1).numpy()

    def close(self) -> None:
        """Nothing to release (the same interface as :class:`TeacherPolicy`)."""


class TeacherPolicy:
    """Acts with the teacher alone (no student): samples from its action distribution."""

    def __init__(self, teacher, deterministic: bool = False, seed: int | None = None):
        self.teacher, self.deterministic = teacher, deterministic
        self.rng = np.random.default_rng(seed)

    def start(self, num_envs: int) -> None:
        for i in range(num_envs):
            self.teacher.reset(i)

    def act(self, obs: np.ndarray, episode_starts: np.ndarray, frame_channels: int) -> np.ndarray:
        probs = self.teacher.action_probs(obs[:, -frame_channels:])
        if self.deterministic:
            return probs.argmax(-1)
        cumulative = probs.cumsum(-1)
        draws = self.rng.random((len(probs), 1)) * cumulative[:, -1:]
        return (draws > cumulative).sum(-1).clip(max=probs.shape[1] - 1)

    def close(self) -> None:
        """Release the teacher (its LLM client and answer cache)."""
        self.teacher.close()


def run_episodes(task: str, seeds: list[int | None], policy, frame_stack: int = 1, num_videos: int = 0,
                 env_pool: list | None = None) -> EvalResult:
    """One episode per seed with ``policy``; ``env_pool`` reuses already built envs (at least len(seeds))."""
    pool = env_pool if env_pool is not None else [task_envs.make_env(task) for _ in seeds]
    envs = pool[:len(seeds)]
    space = envs[0].observation_space
    frames = FrameStack(len(envs), space.shape, frame_stack, space.dtype)
    for i, (env, seed) in enumerate(zip(envs, seeds)):
        frames.start(i, env.reset(seed=seed)[0])
    if not hasattr(envs[0], "seen"):  # only the MiniGrid rooms can draw their remembered map
        num_videos = 0
    videos = [[render_remembered_map(envs[i])] for i in range(min(num_videos, len(envs)))]

    returns, lengths = np.zeros(len(envs)), np.zeros(len(envs), dtype=np.int64)
    successes = np.zeros(len(envs), dtype=bool)
    active = np.ones(len(envs), dtype=bool)
    starts = np.ones(len(envs), dtype=np.float32)
    policy.start(len(envs))
    while active.any():
        actions = policy.act(frames.obs, starts, frames.frame_channels)
        starts[:] = 0.0
        for i in np.flatnonzero(active):
            obs, reward, terminated, truncated, info = envs[i].step(int(actions[i]))
            returns[i] += reward
            lengths[i] += 1
            frames.push(i, obs)
            if i < len(videos):
                videos[i].append(render_remembered_map(envs[i]))
            if terminated or truncated:
                active[i] = False
                successes[i] = bool(info.get("success", False))
    return EvalResult(returns.tolist(), lengths.tolist(), successes.tolist(), list(seeds), videos)


def heldout_seeds(episodes: int) -> list[int]:
    """The held-out layouts: env seeds ``HELDOUT_SEED_BASE + k``, ``k = 0..episodes-1``."""
    return [HELDOUT_SEED_BASE + k for k in range(episodes)]


def training_eval_seeds(env_seed_list: list[int], num_eval: int, rng: np.random.Generator) -> list[int]:
    """:func:`evaluation_seeds` for training-time evaluations; refuses seeds of the held-out range."""
    from utils.config import ConfigError
    seeds = evaluation_seeds(env_seed_list, num_eval, rng)
    if max(seeds) >= HELDOUT_SEED_BASE:
        raise ConfigError(f"training-time evaluations must use env seeds below {HELDOUT_SEED_BASE:,} (the "
                          f"held-out final evaluation uses the seeds from there on); check --env_seed_list")
    return seeds


def heldout_summary(result: EvalResult, deterministic: bool) -> dict:
    """JSON-able summary of a held-out evaluation, with the success rate's 95% Wilson interval."""
    from utils.intervals import wilson_interval
    successes = int(np.sum(result.successes))
    episodes = len(result.successes)
    return {"episodes": episodes, "successes": successes, "success_rate": successes / episodes,
            "interval": wilson_interval(successes, episodes).to_json(),
            "mean_return": result.mean_return, "mean_length": result.mean_length,
            "env_seeds": _seed_text(result.seeds),
            "actions": "most likely" if deterministic else "sampled"}


def _seed_text(seeds: list) -> str:
    """``"a..b"`` for consecutive seeds, else how many there are."""
    if seeds and all(isinstance(s, int) for s in seeds) and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]}"
    return f"{len(seeds)} listed"


def heldout_line(summary: dict) -> str:
    """One line for logs: success rate, its interval and the layouts."""
    interval = summary["interval"]
    return (f"success {summary['success_rate']:.3f} ({summary['successes']}/{summary['episodes']}), "
            f"{interval['kind']} interval [{interval['low']:.3f}, {interval['high']:.3f}], "
            f"env seeds {summary['env_seeds']}, {summary['actions']} actions")


def heldout_evaluation(task: str, policy, episodes: int, frame_stack: int = 1, deterministic: bool = False) -> dict:
    """Run ``policy`` once on each of the first ``episodes`` held-out layouts; :func:`heldout_summary`."""
    result = run_episodes(task, heldout_seeds(episodes), policy, frame_stack)
    return heldout_summary(result, deterministic)


def final_evaluation(config, policy) -> dict | None:
    """The held-out final evaluation of a run's ``policy`` (None when ``final_eval_episodes`` is 0)."""
    if not config.eval.final_eval_episodes:
        return None
    return heldout_evaluation(config.run.task, policy, config.eval.final_eval_episodes, config.env.frame_stack,
                              config.eval.eval_deterministic)


def final_student_evaluation(config, model: torch.nn.Module, device, seed: int) -> dict | None:
    """:func:`final_evaluation` of a trained student network."""
    return final_evaluation(config, StudentPolicy(model, device, config.eval.eval_deterministic, seed))


def load_student(checkpoint: Path, task: str) -> tuple[torch.nn.Module, dict]:
    """The student saved in ``checkpoint`` for ``task`` (eval mode, CPU) and the checkpoint's meta.

    Refuses (CheckpointError, one line) a damaged file, another task, another observation shape or weights
    that do not fit the network the meta describes.
    """
    payload = read_checkpoint(checkpoint)
    meta = payload["meta"]
    frame_stack = int(meta.get("frame_stack", 1))
    obs_shape, num_actions, _ = task_envs.stacked_spaces(task, frame_stack)
    check_compatible(meta, task, obs_shape, num_actions, checkpoint)
    model = rebuild_student(meta["model_config"])
    load_weights(model, payload["model"], checkpoint)
    return model.eval(), meta
