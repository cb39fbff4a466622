"""Serving rollouts to the learner, optionally collected ahead while it updates (``--policy_lag 1``).

With lag 0 a rollout is collected with the learner's current weights, then the learner updates on it (the
classic loop). With lag 1 the next rollout is collected in a background thread by a copy of the network
holding the weights from before the current update, so collection (envs and teacher: Python, holding the
GIL) runs while the update (torch kernels, which release it) does. PPO's ratio uses the log-probabilities
stored at collection, so it corrects for the one-update lag as it does for the epochs within an update.
"""
from __future__ import annotations

import copy
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import torch

from algos.buffer import RolloutBuffer
from algos.rollout import RolloutCollector, RolloutStats


class RolloutPipeline:
    """``get(iteration)`` returns ``(buffer, stats)`` for that iteration's update.

    Args:
        collector: fills buffers; with lag 1 its network is replaced by a copy that follows the learner.
        learner: the network being trained.
        make_buffer: builds an empty buffer (two are kept with lag 1).
        teacher_for: the teacher to ask during a given iteration's rollout, or None (distillation off).
        gamma, gae_lambda: GAE settings.
        lag: 0 or 1 updates between the weights that collect a rollout and those that learn from it.
        last_iteration: no rollout is collected ahead for an iteration at or beyond this one.
    """

    def __init__(self, collector: RolloutCollector, learner: torch.nn.Module, make_buffer: Callable[[], RolloutBuffer],
                 teacher_for: Callable[[int], object], gamma: float, gae_lambda: float, lag: int,
                 last_iteration: int):
        if lag not in (0, 1):
            raise ValueError(f"policy lag must be 0 or 1, got {lag}")
        self.collector, self.learner, self.lag = collector, learner, lag
        self.teacher_for, self.gamma, self.gae_lambda = teacher_for, gamma, gae_lambda
        self.last_iteration = last_iteration
        self.buffers = [make_buffer() for _ in range(1 + lag)]
        self.pending: tuple[int, Future] | None = None
        self.executor = None
        if lag:
            self.behaviour = copy.deepcopy(learner)
            self.behaviour.requires_grad_(False)
            collector.model = self.behaviour
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout")

    def get(self, iteration: int) -> tuple[RolloutBuffer, RolloutStats]:
        """The rollout the update of ``iteration`` learns from (collecting the next one ahead with lag 1)."""
        if not self.lag:
            stats = self._collect(self.buffers[0], iteration)
            return self.buffers[0], stats
        if self.pending is None or self.pending[0] != iteration:
            self.wait()
            self._start(iteration)
        _, future = self.pending
        self.pending = None
        buffer, stats = future.result()
        if iteration + 1 < self.last_iteration:
            self._start(iteration + 1)
        return buffer, stats

    def wait(self) -> None:
        """Let a collection in flight finish (before the teacher or the envs are touched from outside)."""
        if self.pending is not None:
            self.pending[1].exception()

    def close(self) -> None:
        """Stop a collection in flight and release the thread."""
        if self.pending is not None:
            self.collector.cancel()
            self.pending[1].exception()
            self.pending = None
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None

    def _start(self, iteration: int) -> None:
        self.behaviour.load_state_dict(self.learner.state_dict())
        buffer = self.buffers[iteration % 2]
        self.pending = (iteration, self.executor.submit(lambda: (buffer, self._collect(buffer, iteration))))

    def _collect(self, buffer: RolloutBuffer, iteration: int) -> RolloutStats:
        return self.collector.collect(buffer, self.gamma, self.gae_lambda, self.teacher_for(iteration))

