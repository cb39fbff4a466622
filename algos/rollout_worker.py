"""The rollout worker process of ``--policy_lag 1`` (the learner's side is :class:`algos.pipeline.ProcessPipeline`).

It builds its own envs, teacher and copy of the student, then serves requests from the learner, one at a
time, over a pipe:

- ``("collect", slot, use_teacher)``: load the shared weights, fill shared buffer ``slot``; replies
  ``(stats, collection state, LSTM state at the rollout's start or None)``;
- ``("check_teacher",)``: ask the teacher about the current observations;
- ``("load_state", state)``: restore a checkpoint's collection state; replies the state;
- ``("close",)``: close envs and teacher and exit (also when the learner's end of the pipe closes).

Replies are ``("ok", payload)``, ``("interrupted", None)`` (the shared cancel flag was raised mid-rollout) or
``("error", (exception, traceback text))``.
"""
from __future__ import annotations

import signal

import torch

from algos.model import ActorCritic
from algos.pipeline import collect_rollout, collection_state, format_remote_error, load_collection_state
from algos.rollout import RolloutCollector, TrainingInterrupted
from utils.logger import configure_warnings
from utils.process import die_with_parent


class SharedStop:
    """The collector's stop flag, read from a byte of shared memory the learner sets."""

    signal_name = "stop"

    def __init__(self, flag):
        self.flag = flag

    @property
    def requested(self) -> bool:
        return bool(self.flag.value)


def run_worker(spec, model_config: dict, teacher_factory, buffers, weights: dict, cancel, connection,
               learner_pid: int) -> None:
    """Entry point of the worker process (see the module docstring for the protocol)."""
    die_with_parent(learner_pid)
    # Ctrl-C reaches the whole process group; the learner decides what stops, and tells us through ``cancel``.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)  # the other core is the learner's
    configure_warnings()
    envs = teacher = None
    try:
        try:
            envs = spec.build_envs()
            teacher = teacher_factory() if teacher_factory is not None else None
            model = ActorCritic.from_config(model_config)
            model.load_state_dict(weights)
            model.requires_grad_(False)
            collector = RolloutCollector(envs, model, "cpu", spec.sampling_seed, SharedStop(cancel))
        except Exception as error:
            connection.send(("error", format_remote_error(error)))
            return
        connection.send(("ok", collection_state(collector, teacher)))
        while True:
            try:
                request = connection.recv()
            except EOFError:
                return  # the learner is gone
            if request[0] == "close":
                return
            try:
                connection.send(("ok", _serve(request, envs, model, collector, teacher, buffers, weights, spec)))
            except TrainingInterrupted:
                connection.send(("interrupted", None))
            except Exception as error:
                connection.send(("error", format_remote_error(error)))
    finally:
        if envs is not None:
            envs.close()
        if teacher is not None:
            teacher.close()
        connection.close()


def _serve(request: tuple, envs, model, collector, teacher, buffers, weights, spec):
    kind = request[0]
    if kind == "collect":
        _, slot, use_teacher = request
        model.load_state_dict(weights)
        buffer = buffers[slot]
        stats, state = collect_rollout(collector, buffer, spec, teacher, use_teacher)
        initial = None if buffer.initial_state is None else tuple(part.numpy() for part in buffer.initial_state)
        return stats, state, initial
    if kind == "check_teacher":
        if teacher is not None:
            teacher.action_probs(envs.frames.latest())
        return None
    if kind == "load_state":
        load_collection_state(collector, teacher, request[1])
        return collection_state(collector, teacher)
    raise ValueError(f"unknown request {kind!r}")
