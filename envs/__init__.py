"""Environments: MiniGrid door-and-key rooms (and Habitat, imported lazily), registered by task name."""
import importlib
import pkgutil

from envs.registry import TASKS, TaskSpec, TaskUnavailableError, UnknownTaskError, get_task, register_task

for _module in pkgutil.iter_modules(importlib.import_module("envs.tasks").__path__):
    importlib.import_module(f"envs.tasks.{_module.name}")


def make_env(task: str, **overrides):
    """Create one environment for ``task`` (case-insensitive name); ``overrides`` replace constructor kwargs."""
    import gymnasium as gym
    spec = get_task(task)
    return gym.make(spec.env_id, disable_env_checker=True, **overrides).unwrapped


__all__ = ["TASKS", "TaskSpec", "TaskUnavailableError", "UnknownTaskError", "get_task", "make_env", "register_task"]
