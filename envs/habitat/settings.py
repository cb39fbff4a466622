"""Settings of a Habitat task, and loading its layout through a backend.

A Habitat task's settings are its registration kwargs (``envs/tasks/habitat_rearrange.py``): the same
values reach the environment (through ``gym.make``) and the teacher (through ``get_task(name).kwargs``),
so the two always agree on the option list and the observation layout. A variant (another habitat-lab
config, oracle navigation, a longer option budget) is one more ``register_task`` line.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from envs.habitat.layout import TaskLayout, build_layout
from envs.habitat.pddl import PddlDefinition

# The PDDL actions the student chooses among: navigate to an object/goal or a receptacle, pick, place,
# open/close a cabinet drawer or the fridge (names as in habitat-lab's replica_cad domain).
DEFAULT_ACTIONS = ("nav", "pick", "place", "nav_to_receptacle_by_name", "open_cab_by_name", "close_cab_by_name",
                   "open_fridge_by_name", "close_fridge_by_name")
NAV_MODES = ("teleport", "oracle_nav")


@dataclass(frozen=True)
class HabitatSettings:
    """How a Habitat task is built.

    Attributes:
        habitat_config: habitat-lab config, relative to habitat-lab's ``habitat/config`` folder or absolute.
        overrides: extra Hydra overrides for ``habitat.get_config`` (e.g. ``habitat.dataset.split=val``).
        allowed_actions: PDDL actions that become options.
        robot: the PDDL robot entity the options are for.
        max_options: options per episode before it is truncated.
        nav_mode: ``teleport`` runs every option with ``pddl_apply_action`` (navigation places the robot
            next to its target); ``oracle_nav`` drives navigation options with ``oracle_nav_action``.
        nav_max_steps: ``oracle_nav`` only: low-level steps allowed per navigation option.
        reward_scale: factor applied to the task's reward (its success bonus is 100).
    """

    habitat_config: str = "benchmark/rearrange/multi_task/rearrange_easy.yaml"
    overrides: tuple[str, ...] = ()
    allowed_actions: tuple[str, ...] = DEFAULT_ACTIONS
    robot: str = "robot_0"
    max_options: int = 12
    nav_mode: str = "teleport"
    nav_max_steps: int = 400
    reward_scale: float = 0.01

    @classmethod
    def from_kwargs(cls, **kwargs) -> "HabitatSettings":
        """Settings from registration kwargs; unknown names and bad values are one-line errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(f"unknown Habitat setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for name in ("overrides", "allowed_actions"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        settings = cls(**kwargs)
        if settings.nav_mode not in NAV_MODES:
            raise ValueError(f"nav_mode must be one of {NAV_MODES}, got '{settings.nav_mode}'")
        if settings.max_options <= 0 or settings.nav_max_steps <= 0:
            raise ValueError("max_options and nav_max_steps must be positive")
        if not settings.allowed_actions:
            raise ValueError("allowed_actions is empty")
        return settings


def load_layout(settings: HabitatSettings, backend) -> TaskLayout:
    """The task layout from the PDDL files the backend reads for these settings."""
    domain, task_spec = backend.pddl_definition(settings)
    return build_layout(PddlDefinition.from_yaml(domain, task_spec), settings.allowed_actions, settings.robot)
