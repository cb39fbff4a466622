"""Serving rollouts to the learner: collected between updates (``--policy_lag 0``), or ahead, in a worker
process, while the learner updates (``--policy_lag 1``).

With lag 1 the worker owns the envs, the teacher and a copy of the student. When the learner asks for the
rollout of iteration ``k`` it gets the one already collected, and the worker starts collecting ``k + 1`` with
the weights the learner has before update ``k``; PPO's ratio uses the log-probabilities stored at collection,
so it corrects for that one-update lag as it does for the epochs within an update. The worker writes into
two shared-memory buffers, used in turn, so nothing is copied between the processes but the weights.

Both pipelines keep the *collection state* (sampling generator, teacher RNG and counters) as it was at the
end of the last rollout handed to the learner: that is what a checkpoint saves, so that a resumed run
collects its next rollout as the uninterrupted run would have (apart from the fresh layouts).
"""
from __future__ import annotations

import functools
import os
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

import envs as task_envs
from algos.buffer import RolloutBuffer
from algos.rollout import RolloutCollector, RolloutStats, StopFlag, TrainingInterrupted
from envs.vector import EnvBatch

# How long the learner waits for the worker to finish closing (envs, teacher, its LLM cache) before killing it.
CLOSE_TIMEOUT_SECONDS = 30.0


class RolloutWorkerError(RuntimeError):
    """The rollout worker process died or could not be started."""


class RemoteTraceback(Exception):
    """The traceback of an error raised in the rollout worker (attached as the cause of the re-raised error)."""

    def __str__(self) -> str:
        return "in the rollout worker:\n" + self.args[0]


@dataclass(frozen=True)
class CollectionSpec:
    """What the collecting side is built from (picklable: a worker process builds its own from it)."""

    task: str
    num_envs: int
    num_steps: int
    frame_stack: int
    env_seed: int
    sampling_seed: int
    gamma: float
    gae_lambda: float

    def build_envs(self) -> EnvBatch:
        return EnvBatch([task_envs.make_env(self.task) for _ in range(self.num_envs)], seed=self.env_seed,
                        frame_stack=self.frame_stack)

    @functools.cached_property
    def spaces(self) -> tuple[tuple[int, ...], int, torch.dtype]:
        """(stacked observation shape, number of actions, observation dtype), read off one env once."""
        shape, num_actions, dtype = task_envs.stacked_spaces(self.task, self.frame_stack)
        return shape, num_actions, torch.from_numpy(np.zeros(0, dtype=dtype)).dtype

    def make_buffer(self) -> RolloutBuffer:
        shape, num_actions, dtype = self.spaces
        return RolloutBuffer(self.num_steps, self.num_envs, shape, num_actions, dtype)


def collection_state(collector: RolloutCollector, teacher) -> dict:
    """Sampling generator and teacher state (JSON-able but for the generator's bytes), and teacher counters."""
    return {"sampling_rng": bytes(collector.generator.get_state().numpy()),
            "teacher_state": teacher.state_dict() if teacher is not None else None,
            "teacher_stats": teacher.stats() if teacher is not None else None}


def collect_rollout(collector: RolloutCollector, buffer: RolloutBuffer, spec: CollectionSpec, teacher,
                    use_teacher: bool) -> tuple[RolloutStats, dict]:
    """Fill ``buffer`` (asking ``teacher`` if ``use_teacher``); returns the rollout's stats, with the teacher's
    counters, and the collection state at its end."""
    stats = collector.collect(buffer, spec.gamma, spec.gae_lambda, teacher if use_teacher else None)
    state = collection_state(collector, teacher)
    stats.teacher_stats = state["teacher_stats"]
    return stats, state


def load_collection_state(collector: RolloutCollector, teacher, state: dict) -> None:
    """Restore :func:`collection_state` (the counters are not restored: they count this process's work)."""
    collector.generator.set_state(torch.frombuffer(bytearray(state["sampling_rng"]), dtype=torch.uint8))
    if teacher is not None and state.get("teacher_state") is not None:
        teacher.load_state_dict(state["teacher_state"])


class SerialPipeline:
    """``--policy_lag 0``: each rollout is collected in this process, by the learner's network, when asked for.

    Args:
        spec: envs and rollout settings.
        learner: the network being trained (it also collects).
        teacher_factory: builds the teacher (None or returning None: no teacher).
        uses_teacher: whether the rollout of a given iteration asks the teacher.
        stop: checked after every env step.
        device: where the learner lives.
    """

    def __init__(self, spec: CollectionSpec, learner: torch.nn.Module, teacher_factory: Callable | None,
                 uses_teacher: Callable[[int], bool], stop: StopFlag, device: torch.device | str = "cpu"):
        self.spec, self.uses_teacher = spec, uses_teacher
        self.envs = spec.build_envs()
        try:
            self.teacher = teacher_factory() if teacher_factory is not None else None
        except BaseException:
            self.envs.close()
            raise
        self.collector = RolloutCollector(self.envs, learner, device, spec.sampling_seed, stop)
        self.buffer = spec.make_buffer()
        self.snapshot = collection_state(self.collector, self.teacher)

    def check_teacher(self) -> None:
        """Ask the teacher about the first observations (an LLM that cannot answer fails here)."""
        if self.teacher is not None:
            self.teacher.action_probs(self.envs.frames.latest())

    def get(self, iteration: int) -> tuple[RolloutBuffer, RolloutStats]:
        """The rollout the update of ``iteration`` learns from."""
        stats, self.snapshot = collect_rollout(self.collector, self.buffer, self.spec, self.teacher,
                                               self.uses_teacher(iteration))
        return self.buffer, stats

    def state(self) -> dict:
        """The collection state at the start of the next rollout the learner will get."""
        return self.snapshot

    def load_state(self, state: dict) -> None:
        load_collection_state(self.collector, self.teacher, state)
        self.snapshot = collection_state(self.collector, self.teacher)

    def close(self) -> None:
        self.envs.close()
        if self.teacher is not None:
            self.teacher.close()


class ProcessPipeline:
    """``--policy_lag 1``: rollouts collected one iteration ahead in a worker process.

    Arguments as :class:`SerialPipeline`, plus ``last_iteration`` (nothing is collected ahead for an iteration
    at or beyond it). ``teacher_factory`` must be picklable (a module-level function or a
    ``functools.partial`` of one): the teacher is built inside the worker, since an LLM client or an
    SQLite cache cannot cross processes. The worker ignores SIGINT; a stop requested here (Ctrl-C) reaches it
    through a shared flag, and its errors (an LLM that stopped answering) are raised here.
    """

    def __init__(self, spec: CollectionSpec, learner: torch.nn.Module, teacher_factory: Callable | None,
                 uses_teacher: Callable[[int], bool], stop: StopFlag, last_iteration: int):
        from torch import multiprocessing
        from algos.rollout_worker import run_worker
        context = multiprocessing.get_context("spawn")
        self.spec, self.learner, self.uses_teacher, self.stop = spec, learner, uses_teacher, stop
        self.last_iteration = last_iteration
        self.buffers = [spec.make_buffer().share_memory_() for _ in range(2)]
        self.weights = {name: value.detach().to("cpu", copy=True).share_memory_()
                        for name, value in learner.state_dict().items()}
        self.cancel = context.RawValue("b", 0)
        self.pending: tuple[int, int] | None = None  # (iteration, buffer slot) being collected
        self.connection, child_end = context.Pipe()
        self.process = context.Process(
            target=run_worker, name="rollout-worker", daemon=True,
            args=(spec, learner.config(), teacher_factory, self.buffers, self.weights, self.cancel, child_end,
                  os.getpid()))
        self.process.start()
        child_end.close()
        try:
            self.snapshot = self._receive()
        except BaseException:
            self.close()
            raise

    def check_teacher(self) -> None:
        self._send("check_teacher")
        self._receive()

    def get(self, iteration: int) -> tuple[RolloutBuffer, RolloutStats]:
        """The rollout of ``iteration`` (collected while the previous update ran); starts the next one."""
        if self.stop.requested:  # requested during the update: the rollout in flight is abandoned
            raise TrainingInterrupted(self.stop.signal_name)
        if self.pending is not None and self.pending[0] != iteration:
            self._finish_pending()  # collected for another iteration: discarded
        if self.pending is None:
            self._start(iteration)
        buffer, stats = self._finish_pending()
        if iteration + 1 < self.last_iteration:
            self._start(iteration + 1)
        return buffer, stats

    def state(self) -> dict:
        return self.snapshot

    def load_state(self, state: dict) -> None:
        self._send("load_state", state)
        self.snapshot = self._receive()

    def close(self) -> None:
        """Stop a collection in flight, let the worker close its envs and teacher, and reap it."""
        if self.process is None:
            return
        if self.pending is not None and self.process.is_alive():
            self.cancel.value = 1
            try:
                self._receive(timeout=CLOSE_TIMEOUT_SECONDS)
            except BaseException:
                pass
            self.pending = None
        try:
            self.connection.send(("close",))
        except OSError:
            pass  # the worker is already gone
        self.process.join(CLOSE_TIMEOUT_SECONDS)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.connection.close()
        self.process = None

    # -- internals --------------------------------------------------------------------------------
    def _start(self, iteration: int) -> None:
        for name, value in self.learner.state_dict().items():
            self.weights[name].copy_(value)
        slot = iteration % 2
        self._send("collect", slot, bool(self.uses_teacher(iteration)))
        self.pending = (iteration, slot)

    def _finish_pending(self) -> tuple[RolloutBuffer, RolloutStats]:
        _, slot = self.pending
        try:
            stats, snapshot, initial_state = self._receive()
        finally:
            self.pending = None
        buffer = self.buffers[slot]
        buffer.initial_state = (None if initial_state is None
                                else tuple(torch.from_numpy(part) for part in initial_state))
        self.snapshot = snapshot
        return buffer, stats

    def _receive(self, timeout: float | None = None):
        """The worker's next reply; raises what it raised. A stop requested meanwhile is passed on to it."""
        waited = 0.0
        while not self.connection.poll(0.05):
            waited += 0.05
            if self.stop.requested:
                self.cancel.value = 1
            if not self.process.is_alive():
                raise self._died()
            if timeout is not None and waited > timeout:
                raise RolloutWorkerError(f"the rollout worker did not answer within {timeout:.0f}s")
        try:
            kind, payload = self.connection.recv()
        except (EOFError, OSError):
            self.process.join(5)
            raise self._died() from None
        if kind == "ok":
            return payload
        if kind == "interrupted":
            raise TrainingInterrupted(self.stop.signal_name or "stop")
        error, trace = payload
        raise error from RemoteTraceback(trace)

    def _send(self, *request) -> None:
        try:
            self.connection.send(request)
        except OSError:
            self.process.join(5)
            raise self._died() from None

    def _died(self) -> RolloutWorkerError:
        return RolloutWorkerError(f"the rollout worker process died (exit code {self.process.exitcode}); "
                                  f"the messages above may say why")


def build_pipeline(spec: CollectionSpec, learner: torch.nn.Module, teacher_factory: Callable | None,
                   uses_teacher: Callable[[int], bool], stop: StopFlag, lag: int, last_iteration: int,
                   device: torch.device | str = "cpu"):
    """The pipeline for ``--policy_lag`` ``lag``."""
    if lag == 0:
        return SerialPipeline(spec, learner, teacher_factory, uses_teacher, stop, device)
    if lag == 1:
        return ProcessPipeline(spec, learner, teacher_factory, uses_teacher, stop, last_iteration)
    raise ValueError(f"policy lag must be 0 or 1, got {lag}")


def format_remote_error(error: BaseException) -> tuple[BaseException, str]:
    """(an error that survives pickling, its traceback text): the worker's half of :meth:`_receive`."""
    import pickle
    trace = "".join(traceback.format_exception(error))
    try:
        pickle.loads(pickle.dumps(error))
        return error, trace
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}"), trace
