"""A lean synchronous batch of environments with same-step auto-reset and episode bookkeeping.

Gymnasium's ``SyncVectorEnv`` would do, but its per-step info merging costs more than our environments'
own step; this class keeps only what training needs: stacked observations, rewards, done flags, and the
return/length/success of every episode that just ended.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FinishedEpisode:
    """Statistics of one completed episode."""

    env_index: int
    episode_return: float
    length: int
    success: bool


def stacked_shape(frame_shape: tuple[int, ...], frames: int) -> tuple[int, ...]:
    """The shape of ``frames`` observations of ``frame_shape`` stacked along the channel axis."""
    return (frame_shape[0] * frames,) + tuple(frame_shape[1:])


class FrameStack:
    """The last ``frames`` observations of each of ``num_envs`` envs, stacked along the channel axis."""

    def __init__(self, num_envs: int, frame_shape: tuple[int, ...], frames: int = 1, dtype=np.uint8):
        self.frames = frames
        self.frame_channels = frame_shape[0]
        self.shape = stacked_shape(frame_shape, frames)
        self.obs = np.zeros((num_envs,) + self.shape, dtype=dtype)

    def start(self, i: int, obs: np.ndarray) -> None:
        """A new episode: every slot holds its first observation."""
        self.obs[i] = np.tile(obs, (self.frames,) + (1,) * (obs.ndim - 1))

    def push(self, i: int, obs: np.ndarray) -> None:
        """Drop env ``i``'s oldest frame and append ``obs``."""
        if self.frames > 1:
            self.obs[i, :-self.frame_channels] = self.obs[i, self.frame_channels:]
        self.obs[i, -self.frame_channels:] = obs

    def latest(self, obs: np.ndarray | None = None) -> np.ndarray:
        """The newest frame of each stacked observation (what the teacher reads)."""
        return (self.obs if obs is None else obs)[:, -self.frame_channels:]


class EnvBatch:
    """Steps ``len(envs)`` environments together; an env whose episode ends is reset in the same step.

    ``step`` returns the observation *after* the reset for finished envs, as in most PPO implementations.
    The time limit is part of these tasks (the success reward shrinks with time and time is not observed),
    so the learner treats a truncated episode like a terminated one: no bootstrapping past it.
    """

    def __init__(self, envs: list, seed: int | None = None, frame_stack: int = 1):
        if not envs:
            raise ValueError("EnvBatch needs at least one environment")
        self.envs = envs
        self.num_envs = len(envs)
        space = envs[0].observation_space
        self.frames = FrameStack(self.num_envs, space.shape, frame_stack, space.dtype)
        self.observation_shape = self.frames.shape
        self.num_actions = int(envs[0].action_space.n)
        seeds = (np.random.SeedSequence(seed).generate_state(self.num_envs) if seed is not None
                 else [None] * self.num_envs)
        for i, (env, s) in enumerate(zip(envs, seeds)):
            self.frames.start(i, env.reset(seed=None if s is None else int(s))[0])
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    @property
    def obs(self) -> np.ndarray:
        return self.frames.obs

    def step(self, actions: np.ndarray):
        """Apply one action per env; returns (obs, rewards, dones, finished_episodes)."""
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        finished: list[FinishedEpisode] = []
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            obs, reward, term, trunc, info = env.step(int(action))
            rewards[i], dones[i] = reward, term or trunc
            self._returns[i] += reward
            self._lengths[i] += 1
            if term or trunc:
                finished.append(FinishedEpisode(i, float(self._returns[i]), int(self._lengths[i]),
                                                bool(info.get("success", False))))
                self._returns[i] = 0.0
                self._lengths[i] = 0
                self.frames.start(i, env.reset()[0])
            else:
                self.frames.push(i, obs)
        return self.obs.copy(), rewards, dones, finished

    def close(self) -> None:
        for env in self.envs:
            env.close()
