"""Collecting rollouts: the student acts in all envs at once while the teacher labels the states it visits."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from algos.buffer import RolloutBuffer
from envs.vector import EnvBatch, FinishedEpisode


class TrainingInterrupted(Exception):
    """A stop was requested (Ctrl-C, SIGTERM): the rollout was abandoned mid-way."""


class StopFlag:
    """Set by a signal handler; the rollout checks it after every env step."""

    def __init__(self):
        self.requested = False
        self.signal_name = ""

    def request(self, signal_name: str = "stop") -> None:
        self.requested, self.signal_name = True, signal_name


@dataclass
class RolloutStats:
    """What happened during one rollout."""

    episodes: list[FinishedEpisode] = field(default_factory=list)
    teacher_seconds: float = 0.0
    total_seconds: float = 0.0
    agreement: float | None = None  # how often the student's action was the teacher's most likely one
    teacher_stats: dict | None = None  # the teacher's counters when the rollout ended (set by the pipeline)


class RolloutCollector:
    """Keeps the envs' current observations (and LSTM state) between iterations and fills buffers."""

    def __init__(self, envs: EnvBatch, model: torch.nn.Module, device: torch.device | str, seed: int = 0,
                 stop: StopFlag | None = None):
        self.envs, self.model, self.device = envs, model, device
        self.stop = stop or StopFlag()
        self.obs = envs.obs.copy()
        self.episode_starts = np.ones(envs.num_envs, dtype=bool)
        self.state = model.initial_state(envs.num_envs, device)
        self.generator = torch.Generator().manual_seed(seed)

    @torch.inference_mode()
    def collect(self, buffer: RolloutBuffer, gamma: float, gae_lambda: float, teacher=None) -> RolloutStats:
        """Fill ``buffer`` with ``buffer.num_steps`` steps and their advantages; ask ``teacher`` (if any) for
        every visited state."""
        stats = RolloutStats()
        start = time.perf_counter()
        if self.state is not None:
            buffer.initial_state = tuple(s.clone() for s in self.state)
        agree, labelled = 0, 0
        for _ in range(buffer.num_steps):
            obs_tensor = torch.from_numpy(self.obs).to(self.device)
            starts = torch.from_numpy(self.episode_starts.astype(np.float32)).to(self.device)
            logits, values, self.state = self.model(obs_tensor, self.state, starts)
            log_probs = torch.log_softmax(logits.float().cpu(), -1)
            actions = torch.multinomial(log_probs.exp(), 1, generator=self.generator).squeeze(1)
            teacher_probs = None
            if teacher is not None:
                t0 = time.perf_counter()
                teacher_probs = teacher.action_probs(self.envs.frames.latest(self.obs))
                stats.teacher_seconds += time.perf_counter() - t0
                agree += int((teacher_probs.argmax(-1) == actions.numpy()).sum())
                labelled += len(actions)
            next_obs, rewards, dones, finished = self.envs.step(actions.numpy())
            buffer.add(self.obs, self.episode_starts, actions, log_probs.gather(1, actions.unsqueeze(1)).squeeze(1),
                       values.cpu(), rewards, teacher_probs)
            for episode in finished:
                if teacher is not None:
                    teacher.reset(episode.env_index)
            stats.episodes.extend(finished)
            self.obs, self.episode_starts = next_obs, dones
            if self.stop.requested:
                raise TrainingInterrupted(self.stop.signal_name)
        last_value = self.model(torch.from_numpy(self.obs).to(self.device), self.state,
                                torch.from_numpy(self.episode_starts.astype(np.float32)).to(self.device))[1]
        buffer.compute_returns(last_value.cpu(), self.episode_starts, gamma, gae_lambda)
        stats.total_seconds = time.perf_counter() - start
        stats.agreement = agree / labelled if labelled else None
        return stats
