"""When rollouts are collected relative to the updates that learn from them (``--policy_lag``).

* ``--policy_lag 0`` (:class:`SerialFeed`): the rollout of iteration ``k`` is collected when update ``k``
  asks for it, in the learner's process, with the learner's current weights. The loop costs collection +
  update.
* ``--policy_lag 1`` (:class:`AheadFeed`): a collector in a worker process (:mod:`algos.collector_process`)
  collects ``k + 1`` while the learner updates on ``k``, with the weights from before update ``k``, into the
  other of two shared buffers. PPO's ratio uses the log-probabilities stored at collection, so it corrects for
  that one-update lag as it does for the epochs within an update. The loop costs max(collection, update).

Either way the feed's :attr:`collector` is the one thing that collects; a feed only decides when.
"""
from __future__ import annotations

from typing import Callable

import torch

from algos.buffer import RolloutBuffer
from algos.collector import COLLECTION_DEVICE, CollectionSpec, Collector
from algos.collector_process import CollectorProcess
from algos.rollout import RolloutStats, StopFlag, TrainingInterrupted
from algos.student import device_of


class SerialFeed:
    """``--policy_lag 0``: each rollout collected in this process when asked for.

    The collector acts with ``learner`` itself when it lives on the CPU; otherwise with its own CPU copy,
    loaded with the learner's weights before each rollout.
    """

    def __init__(self, collector: Collector, learner: torch.nn.Module, uses_teacher: Callable[[int], bool]):
        self.collector, self.learner, self.uses_teacher = collector, learner, uses_teacher
        self.buffer = collector.spec.make_buffer()

    def get(self, iteration: int) -> tuple[RolloutBuffer, RolloutStats]:
        """The rollout the update of ``iteration`` learns from."""
        if self.collector.student is not self.learner:
            self.collector.load_weights(self.learner.state_dict())
        return self.buffer, self.collector.collect(self.buffer, self.uses_teacher(iteration))

    def close(self) -> None:
        self.collector.close()


class AheadFeed:
    """``--policy_lag 1``: rollouts collected one iteration ahead by a collector in a worker process.

    Nothing is collected ahead for an iteration at or beyond ``last_iteration``. A stop requested during an
    update abandons the rollout in flight.
    """

    def __init__(self, collector: CollectorProcess, learner: torch.nn.Module, uses_teacher: Callable[[int], bool],
                 stop: StopFlag, last_iteration: int):
        self.collector, self.learner, self.uses_teacher = collector, learner, uses_teacher
        self.stop, self.last_iteration = stop, last_iteration
        self.pending: int | None = None  # the iteration whose rollout is being collected

    def get(self, iteration: int) -> tuple[RolloutBuffer, RolloutStats]:
        """The rollout of ``iteration`` (collected while the previous update ran); starts the next one."""
        if self.stop.requested:
            raise TrainingInterrupted(self.stop.signal_name)
        if self.pending is not None and self.pending != iteration:
            self._finish()  # collected for another iteration: discarded
        if self.pending is None:
            self._start(iteration)
        stats = self._finish()
        if iteration + 1 < self.last_iteration:
            self._start(iteration + 1)
        return self._buffer(iteration), stats

    def close(self) -> None:
        self.collector.close()

    def _buffer(self, iteration: int) -> RolloutBuffer:
        return self.collector.buffers[iteration % len(self.collector.buffers)]

    def _start(self, iteration: int) -> None:
        self.collector.load_weights(self.learner.state_dict())
        self.collector.start_collect(self._buffer(iteration), self.uses_teacher(iteration))
        self.pending = iteration

    def _finish(self) -> RolloutStats:
        try:
            return self.collector.finish_collect()
        finally:
            self.pending = None


def build_feed(spec: CollectionSpec, learner: torch.nn.Module, teacher_factory: Callable | None,
               uses_teacher: Callable[[int], bool], stop: StopFlag, lag: int, last_iteration: int):
    """The feed for ``--policy_lag`` ``lag``, with its collector (which builds the teacher and owns it)."""
    if lag == 0:
        shares_learner = device_of(learner) == COLLECTION_DEVICE
        return SerialFeed(Collector(spec, teacher_factory, stop, learner if shares_learner else None), learner,
                          uses_teacher)
    if lag == 1:
        return AheadFeed(CollectorProcess(spec, teacher_factory, stop, learner.state_dict()), learner, uses_teacher,
                         stop, last_iteration)
    raise ValueError(f"policy lag must be 0 or 1, got {lag}")
