"""Rollout storage for PPO: ``num_steps x num_envs`` transitions, GAE, and minibatch iteration.

Conventions follow CleanRL: ``episode_starts[t]`` is 1 when ``obs[t]`` is the first observation of an
episode (the previous step ended one), so the value of ``obs[t + 1]`` is not bootstrapped into step ``t``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch


@dataclass
class Minibatch:
    obs: torch.Tensor | tuple  # observations, or rows of the model's prepared inputs (see ``minibatches``)
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    teacher_probs: torch.Tensor
    episode_starts: torch.Tensor
    initial_state: tuple | None  # LSTM state at the first step of the minibatch's sequences


class RolloutBuffer:
    """Fixed-size storage for one rollout of ``num_steps`` steps from ``num_envs`` envs."""

    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple, num_actions: int,
                 obs_dtype: torch.dtype = torch.uint8):
        self.num_steps, self.num_envs = num_steps, num_envs
        shape = (num_steps, num_envs)
        self.obs = torch.zeros(shape + tuple(obs_shape), dtype=obs_dtype)
        self.actions = torch.zeros(shape, dtype=torch.long)
        self.logprobs = torch.zeros(shape)
        self.values = torch.zeros(shape)
        self.rewards = torch.zeros(shape)
        self.episode_starts = torch.zeros(shape)
        self.teacher_probs = torch.zeros(shape + (num_actions,))
        self.advantages = torch.zeros(shape)
        self.returns = torch.zeros(shape)
        self.initial_state = None
        self.step = 0

    def add(self, obs: np.ndarray, episode_starts: np.ndarray, actions: torch.Tensor, logprobs: torch.Tensor,
            values: torch.Tensor, rewards: np.ndarray, teacher_probs: np.ndarray | None) -> None:
        """Store one step for all envs."""
        t = self.step
        self.obs[t] = torch.from_numpy(obs)
        self.episode_starts[t] = torch.from_numpy(episode_starts.astype(np.float32))
        self.actions[t] = actions
        self.logprobs[t] = logprobs
        self.values[t] = values
        self.rewards[t] = torch.from_numpy(rewards)
        if teacher_probs is not None:
            self.teacher_probs[t] = torch.from_numpy(teacher_probs)
        self.step += 1

    def to(self, device: torch.device | str) -> "RolloutBuffer":
        """This rollout with its tensors on ``device``: the buffer itself when they are already there, else a
        copy (the learner's update reads the copy; collection goes on filling this buffer)."""
        device = torch.device(device)
        if self.obs.device == device:
            return self
        moved = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(moved, name, value.to(device, non_blocking=True))
        if self.initial_state is not None:
            moved.initial_state = tuple(part.to(device, non_blocking=True) for part in self.initial_state)
        return moved

    def share_memory_(self) -> "RolloutBuffer":
        """Move the storage to shared memory, so that another process can fill it in place."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                value.share_memory_()
        return self

    def compute_returns(self, last_value: torch.Tensor, last_episode_starts: np.ndarray, gamma: float,
                        gae_lambda: float) -> None:
        """Generalised advantage estimation over the stored rollout."""
        next_value = last_value
        next_nonterminal = 1.0 - torch.from_numpy(last_episode_starts.astype(np.float32))
        advantage = torch.zeros(self.num_envs)
        for t in reversed(range(self.num_steps)):
            delta = self.rewards[t] + gamma * next_value * next_nonterminal - self.values[t]
            advantage = delta + gamma * gae_lambda * next_nonterminal * advantage
            self.advantages[t] = advantage
            next_value = self.values[t]
            next_nonterminal = 1.0 - self.episode_starts[t]
        torch.add(self.advantages, self.values, out=self.returns)  # in place: the buffer may be in shared memory
        self.step = 0

    def minibatches(self, num_minibatches: int, generator: torch.Generator, recurrent: bool = False,
                    inputs: tuple[torch.Tensor, ...] | None = None) -> Iterator[Minibatch]:
        """Shuffled minibatches; for a recurrent policy each minibatch holds whole env sequences.

        ``inputs``: tensors shaped ``(num_steps, num_envs, ...)`` derived from the observations (the model's
        prepared inputs); when given, ``Minibatch.obs`` holds their rows as a tuple instead of observations.
        """
        # The generator is the CPU's (the same draws on every device); its order goes where the rollout is.
        if recurrent:
            envs_per_batch = max(1, self.num_envs // num_minibatches)
            order = torch.randperm(self.num_envs, generator=generator).to(self.obs.device)
            for start in range(0, self.num_envs, envs_per_batch):
                envs = order[start:start + envs_per_batch]
                state = tuple(s[:, envs] for s in self.initial_state)
                yield self._gather((slice(None), envs), state, flatten=True, inputs=inputs)
            return
        total = self.num_steps * self.num_envs
        size = max(1, total // num_minibatches)
        order = torch.randperm(total, generator=generator).to(self.obs.device)
        for start in range(0, total, size):
            yield self._gather(order[start:start + size], None, flatten=False, inputs=inputs)

    def _gather(self, index, state, flatten: bool, inputs: tuple | None) -> Minibatch:
        def take(tensor: torch.Tensor) -> torch.Tensor:
            if flatten:  # (T, B_sub, ...) -> (T * B_sub, ...), time-major
                part = tensor[index]
                return part.reshape((-1,) + part.shape[2:])
            return tensor.reshape((-1,) + tensor.shape[2:]).index_select(0, index)  # faster than [index] on CPU
        obs = take(self.obs) if inputs is None else tuple(take(tensor) for tensor in inputs)
        return Minibatch(obs, take(self.actions), take(self.logprobs), take(self.values),
                         take(self.advantages), take(self.returns), take(self.teacher_probs),
                         take(self.episode_starts), state)
