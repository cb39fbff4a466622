"""Task registry: task name (case-insensitive) -> gymnasium id and constructor arguments.

A task module calls :func:`register_task` at import time; ``envs/__init__.py`` imports every module in
``envs/tasks/``, so adding a task is one file there plus one ``configs/<task>.yaml``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym


@dataclass(frozen=True)
class TaskSpec:
    """What the rest of the project needs to know about a task."""

    name: str                 # canonical spelling, e.g. "SimpleDoorKey"
    env_id: str               # gymnasium id, e.g. "LLM4Teach/SimpleDoorKey-v0"
    family: str               # "minigrid" or "habitat": which mediator and skills apply
    kwargs: dict = field(default_factory=dict)


TASKS: dict[str, TaskSpec] = {}


class UnknownTaskError(ValueError):
    """Raised for a task name that is not registered."""


class TaskUnavailableError(RuntimeError):
    """A registered task cannot run on this machine (e.g. Habitat without habitat-sim); says how to fix it."""


def register_task(name: str, entry_point: str, family: str = "minigrid", **kwargs) -> TaskSpec:
    """Register ``name`` with gymnasium as ``LLM4Teach/<name>-v0`` and in :data:`TASKS`."""
    env_id = f"LLM4Teach/{name}-v0"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs)
    spec = TaskSpec(name=name, env_id=env_id, family=family, kwargs=kwargs)
    TASKS[name.lower()] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """Look a task up by name, ignoring case; a clear error lists the known tasks."""
    try:
        return TASKS[name.lower()]
    except KeyError:
        known = ", ".join(spec.name for spec in TASKS.values())
        raise UnknownTaskError(f"unknown task '{name}'; known tasks: {known}") from None
