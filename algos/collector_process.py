"""A :class:`~algos.collector.Collector` run in a worker process (``--policy_lag 1``), behind a thin proxy.

The worker (spawned, so that no torch thread pool, HTTP connection or SQLite handle is inherited) builds its
own collector from the picklable spec and teacher factory, then serves the proxy's calls one at a time over a
pipe. Rollouts are written into buffers in shared memory that both sides hold; the learner's weights reach
the worker through a shared state dict, loaded before each rollout. What crosses the pipe:

- ``("collect", slot, use_teacher)`` -> ``(stats, collection state, LSTM state at the rollout's start)``;
- ``("check_teacher",)`` -> None; ``("load_state_dict", state)`` -> the collection state;
- ``("close",)``: close the collector and exit (also when the learner's end of the pipe closes).

Replies are ``("ok", payload)``, ``("interrupted", None)`` (the shared cancel flag was raised mid-rollout) or
``("error", (exception, traceback text))``: the worker's errors (an LLM that stopped answering) are raised in
the learner with their type, the worker's traceback as their cause. The worker ignores SIGINT (Ctrl-C reaches
the whole process group; the learner decides and cancels the rollout through a shared byte); a dead worker is
an error, not a hang, and a learner that dies takes its worker with it (``utils/process.py``).
"""
from __future__ import annotations

import os
import pickle
import signal
import traceback
from typing import TYPE_CHECKING, Callable

import torch

from algos.buffer import RolloutBuffer
from algos.collector import CollectionSpec, Collector
from algos.rollout import RolloutStats, StopFlag, TrainingInterrupted
from utils.logger import configure_warnings
from utils.process import die_with_parent

if TYPE_CHECKING:
    from planners.teacher import TeacherStats

# How long the learner waits for the worker to finish closing (envs, teacher, its LLM cache) before killing it.
CLOSE_TIMEOUT_SECONDS = 30.0


class RolloutWorkerError(RuntimeError):
    """The rollout worker process died or could not be started."""


class RemoteTraceback(Exception):
    """The traceback of an error raised in the rollout worker (attached as the cause of the re-raised error)."""

    def __str__(self) -> str:
        return "in the rollout worker:\n" + self.args[0]


class CollectorProcess:
    """The learner's handle on a collector in a worker process: :class:`Collector`'s methods, plus
    :meth:`start_collect` / :meth:`finish_collect` to collect while the learner does something else.

    Args:
        spec: what the worker builds its collector from.
        teacher_factory: builds the teacher in the worker (picklable: a module-level function or a
            ``functools.partial`` of one), since an LLM client or an SQLite cache cannot cross processes.
        stop: a stop requested here (Ctrl-C) cancels a rollout in flight.
        weights: the learner's state dict (its layout; the values are loaded with :meth:`load_weights`).
        num_buffers: shared-memory buffers to collect into (:attr:`buffers`).
    """

    def __init__(self, spec: CollectionSpec, teacher_factory: Callable | None, stop: StopFlag,
                 weights: dict[str, torch.Tensor], num_buffers: int = 2):
        from torch import multiprocessing
        context = multiprocessing.get_context("spawn")
        self.spec, self.stop = spec, stop
        self.buffers = [spec.make_buffer().share_memory_() for _ in range(num_buffers)]
        self.weights = {name: value.detach().to("cpu", copy=True).share_memory_() for name, value in weights.items()}
        self.cancel = context.RawValue("b", 0)
        self.pending: RolloutBuffer | None = None  # the buffer being filled
        self.connection, child_end = context.Pipe()
        self.process = context.Process(
            target=run_worker, name="rollout-worker", daemon=True,
            args=(spec, teacher_factory, self.buffers, self.weights, self.cancel, child_end, os.getpid()))
        self.process.start()
        child_end.close()
        try:
            self.snapshot, self.last_teacher_stats = self._receive()
        except BaseException:
            self.close()
            raise

    def check_teacher(self) -> None:
        self._call("check_teacher")

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """The weights the next rollout started is collected with."""
        for name, value in weights.items():
            self.weights[name].copy_(value)

    def collect(self, buffer: RolloutBuffer, use_teacher: bool = True) -> RolloutStats:
        self.start_collect(buffer, use_teacher)
        return self.finish_collect()

    def start_collect(self, buffer: RolloutBuffer, use_teacher: bool = True) -> None:
        """Have the worker fill ``buffer`` (one of :attr:`buffers`); returns at once."""
        slot = next(i for i, shared in enumerate(self.buffers) if shared is buffer)
        self._send("collect", slot, bool(use_teacher))
        self.pending = buffer

    def finish_collect(self) -> RolloutStats:
        """Wait for the rollout :meth:`start_collect` asked for; its stats."""
        buffer = self.pending
        try:
            stats, self.snapshot, initial_state = self._receive()
        finally:
            self.pending = None
        buffer.initial_state = initial_state
        self.last_teacher_stats = stats.teacher
        return stats

    def teacher_stats(self) -> TeacherStats | None:
        """The teacher's counters as the last rollout handed over ended (or as the worker started)."""
        return self.last_teacher_stats

    def state_dict(self) -> dict:
        """The collection state at the end of the last rollout handed over (or as built or loaded); saving
        never waits for a rollout in flight."""
        return self.snapshot

    def load_state_dict(self, state: dict) -> None:
        self.snapshot = self._call("load_state_dict", state)

    def close(self) -> None:
        """Stop a rollout in flight, let the worker close its collector, and reap it."""
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
    def _call(self, *request):
        self._send(*request)
        return self._receive()

    def _send(self, *request) -> None:
        try:
            self.connection.send(request)
        except OSError:
            self.process.join(5)
            raise self._died() from None

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

    def _died(self) -> RolloutWorkerError:
        return RolloutWorkerError(f"the rollout worker process died (exit code {self.process.exitcode}); "
                                  f"the messages above may say why")


# -- the worker's side ------------------------------------------------------------------------------
class SharedStop:
    """The collector's stop flag, read from a byte of shared memory the learner sets."""

    signal_name = "stop"

    def __init__(self, flag):
        self.flag = flag

    @property
    def requested(self) -> bool:
        return bool(self.flag.value)


def run_worker(spec: CollectionSpec, teacher_factory, buffers: list[RolloutBuffer], weights: dict, cancel,
               connection, learner_pid: int) -> None:
    """Entry point of the worker process (see the module docstring for the protocol)."""
    die_with_parent(learner_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the learner decides what stops, and tells us through cancel
    torch.set_num_threads(1)  # the other core is the learner's
    configure_warnings()
    collector = None
    try:
        try:
            collector = Collector(spec, teacher_factory, SharedStop(cancel))
        except Exception as error:
            connection.send(("error", _picklable(error)))
            return
        connection.send(("ok", (collector.state_dict(), collector.teacher_stats())))
        while True:
            try:
                request = connection.recv()
            except EOFError:
                return  # the learner is gone
            if request[0] == "close":
                return
            try:
                connection.send(("ok", _serve(collector, request, buffers, weights)))
            except TrainingInterrupted:
                connection.send(("interrupted", None))
            except Exception as error:
                connection.send(("error", _picklable(error)))
    finally:
        if collector is not None:
            collector.close()
        connection.close()


def _serve(collector: Collector, request: tuple, buffers: list[RolloutBuffer], weights: dict):
    kind, *args = request
    if kind == "collect":
        slot, use_teacher = args
        collector.load_weights(weights)
        stats = collector.collect(buffers[slot], use_teacher)
        return stats, collector.state_dict(), buffers[slot].initial_state  # (not in shared memory)
    if kind == "check_teacher":
        return collector.check_teacher()
    if kind == "load_state_dict":
        collector.load_state_dict(*args)
        return collector.state_dict()
    raise ValueError(f"unknown request {kind!r}")


def _picklable(error: BaseException) -> tuple[BaseException, str]:
    """(an error that survives pickling, its traceback text)."""
    trace = "".join(traceback.format_exception(error))
    try:
        pickle.loads(pickle.dumps(error))
        return error, trace
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}"), trace
