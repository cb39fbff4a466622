"""Collecting rollouts: the one owner of the envs, the teacher and the student's copy that acts in them.

:class:`Collector` steps all envs at once with one batched student forward per step, asks the teacher about
the newest frame of every visited state and fills a :class:`RolloutBuffer`. It runs on the CPU: a step is a
forward of ``num_envs`` small observations between Python env steps and teacher calls, latency-bound work a
GPU round trip per step would only slow down (and the ``--policy_lag 1`` worker process must not start CUDA).
Whatever device the learner trains on, the collector's student is a CPU network: the learner itself when it
lives on the CPU, otherwise a copy that the learner's weights are loaded into before each rollout.

The *collection state* (sampling generator, teacher state) is kept as it was at the end of the last completed
rollout: that is what a checkpoint saves (:meth:`Collector.state_dict`), so that a resumed run collects its
next rollout as the uninterrupted run would have (apart from the fresh layouts), and a rollout abandoned
mid-way (Ctrl-C) is not half-saved.
"""
from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

import envs as task_envs
from algos.buffer import RolloutBuffer
from algos.rollout import RolloutStats, StopFlag, TrainingInterrupted
from algos.student import build_student
from envs.vector import EnvBatch
from utils.config import StudentSettings

if TYPE_CHECKING:
    from planners.teacher import Teacher, TeacherStats

COLLECTION_DEVICE = torch.device("cpu")


@dataclass(frozen=True)
class CollectionSpec:
    """What the collecting side is built from (picklable: the rollout worker builds its own from it)."""

    task: str
    num_envs: int
    num_steps: int
    frame_stack: int
    env_seed: int
    sampling_seed: int
    gamma: float
    gae_lambda: float
    student: StudentSettings

    def build_envs(self) -> EnvBatch:
        return EnvBatch([task_envs.make_env(self.task) for _ in range(self.num_envs)], seed=self.env_seed,
                        frame_stack=self.frame_stack)

    @functools.cached_property
    def spaces(self) -> tuple[tuple[int, ...], int, torch.dtype]:
        """(stacked observation shape, number of actions, observation dtype), read off one env once."""
        shape, num_actions, dtype = task_envs.stacked_spaces(self.task, self.frame_stack)
        return shape, num_actions, torch.from_numpy(np.zeros(0, dtype=dtype)).dtype

    def build_student(self) -> torch.nn.Module:
        """A fresh student for these envs (:func:`algos.student.build_student`)."""
        shape, num_actions, _ = self.spaces
        return build_student(self.student, shape, num_actions)

    def make_buffer(self) -> RolloutBuffer:
        shape, num_actions, dtype = self.spaces
        return RolloutBuffer(self.num_steps, self.num_envs, shape, num_actions, dtype)


class Collector:
    """Owns the envs (and their current observations and LSTM state), the teacher and a CPU student.

    Args:
        spec: envs and rollout settings.
        teacher_factory: builds the teacher, here (None, or returning None: no teacher); the collector owns
            and closes it.
        stop: checked after every env step.
        student: the network to act with, on the CPU (the learner itself when it is there); None builds a copy
            of its own, for :meth:`load_weights`.
    """

    def __init__(self, spec: CollectionSpec, teacher_factory: Callable[[], Teacher | None] | None = None,
                 stop: StopFlag | None = None, student: torch.nn.Module | None = None):
        self.spec = spec
        self.stop = stop or StopFlag()
        self.envs = spec.build_envs()
        try:
            self.teacher = teacher_factory() if teacher_factory is not None else None
        except BaseException:
            self.envs.close()
            raise
        if student is None:
            with torch.random.fork_rng(devices=[]):  # a copy's initialisation must not move the caller's stream
                student = spec.build_student().requires_grad_(False)
        self.student = student
        self.obs = self.envs.obs.copy()
        self.episode_starts = np.ones(spec.num_envs, dtype=bool)
        self.lstm_state = student.initial_state(spec.num_envs, COLLECTION_DEVICE)
        self.generator = torch.Generator().manual_seed(spec.sampling_seed)
        self._snapshot = self._current_state()

    def check_teacher(self) -> None:
        """Ask the teacher about the current observations (an LLM that cannot answer fails here)."""
        if self.teacher is not None:
            self._ask_teacher()

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Act with these weights from now on (the learner's, copied into this collector's student)."""
        self.student.load_state_dict(weights)

    @torch.inference_mode()
    def collect(self, buffer: RolloutBuffer, use_teacher: bool = True) -> RolloutStats:
        """Fill ``buffer`` with ``buffer.num_steps`` steps and their advantages, asking the teacher (when there
        is one and ``use_teacher``) about every visited state."""
        teacher = self.teacher if use_teacher else None
        stats = RolloutStats()
        start = time.perf_counter()
        buffer.initial_state = None if self.lstm_state is None else tuple(s.clone() for s in self.lstm_state)
        agree, labelled = 0, 0
        for _ in range(buffer.num_steps):
            logits, values, self.lstm_state = self.student(torch.from_numpy(self.obs), self.lstm_state,
                                                           self._starts())
            log_probs = torch.log_softmax(logits.float(), -1)
            actions = torch.multinomial(log_probs.exp(), 1, generator=self.generator).squeeze(1)
            teacher_probs = None
            if teacher is not None:
                asked = time.perf_counter()
                teacher_probs = self._ask_teacher()
                stats.teacher_seconds += time.perf_counter() - asked
                agree += int((teacher_probs.argmax(-1) == actions.numpy()).sum())
                labelled += len(actions)
            next_obs, rewards, dones, finished = self.envs.step(actions.numpy())
            buffer.add(self.obs, self.episode_starts, actions, log_probs.gather(1, actions.unsqueeze(1)).squeeze(1),
                       values, rewards, teacher_probs)
            for episode in finished:
                if teacher is not None:
                    teacher.reset(episode.env_index)
            stats.episodes.extend(finished)
            self.obs, self.episode_starts = next_obs, dones
            if self.stop.requested:
                raise TrainingInterrupted(self.stop.signal_name)
        last_value = self.student(torch.from_numpy(self.obs), self.lstm_state, self._starts())[1]
        buffer.compute_returns(last_value, self.episode_starts, self.spec.gamma, self.spec.gae_lambda)
        stats.total_seconds = time.perf_counter() - start
        stats.agreement = agree / labelled if labelled else None
        stats.teacher = self.teacher_stats()
        self._snapshot = self._current_state()
        return stats

    def teacher_stats(self) -> TeacherStats | None:
        """The teacher's counters (None without a teacher)."""
        return self.teacher.stats() if self.teacher is not None else None

    def state_dict(self) -> dict:
        """The collection state at the end of the last completed rollout (or as built or loaded):
        ``sampling_rng`` (a uint8 tensor) and ``teacher_state`` (JSON text, or None without a teacher)."""
        return self._snapshot

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (the teacher's counters are not restored: they count this process's work)."""
        self.generator.set_state(state["sampling_rng"])
        if self.teacher is not None and state.get("teacher_state") is not None:
            self.teacher.load_state_dict(json.loads(state["teacher_state"]))
        self._snapshot = self._current_state()

    def close(self) -> None:
        """Close the envs and the teacher (its LLM cache and HTTP client)."""
        self.envs.close()
        if self.teacher is not None:
            self.teacher.close()

    # -- internals --------------------------------------------------------------------------------
    def _ask_teacher(self) -> np.ndarray:
        """The teacher's action distributions for the current observations (it reads their newest frame)."""
        return self.teacher.action_probs(self.envs.frames.latest(self.obs))

    def _starts(self) -> torch.Tensor:
        return torch.from_numpy(self.episode_starts.astype(np.float32))

    def _current_state(self) -> dict:
        # JSON text for the teacher: a checkpoint is loaded with weights_only, and the teacher's generator
        # state holds 128-bit integers.
        return {"sampling_rng": self.generator.get_state(),
                "teacher_state": json.dumps(self.teacher.state_dict()) if self.teacher is not None else None}
