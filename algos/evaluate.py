"""Evaluation: run a policy (the student, or the teacher alone) for one episode on each of a set of layouts.

All evaluation envs step together (one batched forward per step); an env whose episode ended waits for the
others. The first ``num_videos`` episodes can be recorded as frames of the remembered map.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import envs as task_envs
from algos.model import ActorCritic, check_compatible
from envs.vector import FrameStack
from utils.checkpoint import load_checkpoint, load_weights
from utils.video import render_remembered_map


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
        return [int(s) for s in rng.integers(0, 2**31 - 1, size=num_eval)]
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


def load_student(checkpoint: Path, task: str) -> tuple[ActorCritic, dict]:
    """The student saved in ``checkpoint`` for ``task`` (eval mode, CPU) and the checkpoint's meta.

    Refuses (CheckpointError, one line) a damaged file, another task, another observation shape or weights
    that do not fit the network the meta describes.
    """
    payload = load_checkpoint(checkpoint)
    meta = payload["meta"]
    frame_stack = int(meta.get("frame_stack", 1))
    env = task_envs.make_env(task)
    frame_shape = env.observation_space.shape
    obs_shape = (frame_shape[0] * frame_stack,) + tuple(frame_shape[1:])
    check_compatible(meta, task, obs_shape, int(env.action_space.n), checkpoint)
    env.close()
    config = meta["model_config"]
    model = ActorCritic(tuple(config["obs_shape"]), config["num_actions"], config["hidden_size"],
                        config["recurrent"], config["ego_size"])
    load_weights(model, payload["model"], checkpoint)
    return model.eval(), meta
