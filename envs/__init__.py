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


def stacked_spaces(task: str, frame_stack: int = 1):
    """(observation shape with ``frame_stack`` frames stacked, number of actions, observation numpy dtype) of
    ``task``, read off one environment."""
    from envs.vector import stacked_shape
    env = make_env(task)
    try:
        space = env.observation_space
        return stacked_shape(space.shape, frame_stack), int(env.action_space.n), space.dtype
    finally:
        env.close()


__all__ = ["TASKS", "TaskSpec", "TaskUnavailableError", "UnknownTaskError", "get_task", "make_env", "register_task",
           "stacked_spaces"]
