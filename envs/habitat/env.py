"""HabitatRearrangeEnv: a gymnasium env whose actions are the task's PDDL options.

One student step = one option, e.g. ``nav(goal0|0,robot_0)`` or ``pick(goal0|0,robot_0)``. Options run
through habitat-lab's oracle actions:

* ``pddl_apply_action``: if the option's PDDL precondition holds in the simulator, its postcondition is
  set (the robot is placed next to the target, the object is snapped to the gripper or to its goal, a
  drawer is opened); otherwise nothing happens and the option counts as invalid.
* with ``nav_mode="oracle_nav"``, navigation options instead drive ``oracle_nav_action`` (the robot's base
  follows a navmesh path) for up to ``nav_max_steps`` low-level steps, until the action reports it is done.

Reward, termination and success come from the task's measures through ``RLTaskEnv`` (reward measure
``move_obj_reward`` plus slack and success bonus; success ``pddl_success``); the reward of all low-level
steps of an option is summed and multiplied by ``reward_scale``. The episode is truncated after
``max_options`` options. The observation is described in :mod:`envs.habitat.layout`.

habitat-lab members used (on the object ``backend.make_env`` returns, an ``RLTaskEnv``): ``reset()``,
``step(action_dict)``, ``seed(seed)``, ``close()``, ``config.task.success_measure``,
``habitat_env.task.pddl_problem`` (``get_ordered_actions``, ``get_ordered_entities_list``, ``get_entity``,
``get_possible_actions``, ``parse_predicate``, ``sim_info``; predicates' ``is_true``) and
``habitat_env.task.actions[name]`` (``was_prev_action_invalid``; ``skill_done`` for oracle navigation).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.habitat.backend import resolve_backend
from envs.habitat.layout import TaskLayout
from envs.habitat.pddl import GroundOption
from envs.habitat.settings import HabitatSettings, load_layout

PDDL_APPLY, ORACLE_NAV = "pddl_apply_action", "oracle_nav_action"


class HabitatLayoutError(RuntimeError):
    """The options derived from the PDDL files do not match what the running habitat-lab task offers."""


class HabitatRearrangeEnv(gym.Env):
    """Option-level habitat-lab rearrangement.

    Args:
        backend: where habitat-lab objects come from (see :mod:`envs.habitat.backend`); default: the
            ``LLM4TEACH_HABITAT_BACKEND`` variable if set, else the real habitat-lab.
        **settings: :class:`envs.habitat.settings.HabitatSettings` fields (the task's registration kwargs).
    """

    metadata = {"render_modes": []}

    def __init__(self, backend=None, **settings):
        self.settings = HabitatSettings.from_kwargs(**settings)
        self.backend = resolve_backend(backend)
        self.layout: TaskLayout = load_layout(self.settings, self.backend)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.layout.size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(self.layout.options))
        self._habitat = self.backend.make_env(self.settings)
        task = self._habitat.habitat_env.task
        self._task_actions = task.actions
        self._problem = task.pddl_problem
        self._check_options()
        self._entity_index = {e.name: i for i, e in enumerate(self._problem.get_ordered_entities_list())}
        self._apply_offsets, self._apply_size = {}, 0
        for action in self._problem.get_ordered_actions():
            self._apply_offsets[action.name] = self._apply_size
            self._apply_size += action.n_args
        self._predicates = [self._problem.parse_predicate(slot.predicate) for slot in self.layout.slots]
        self._success_measure = self._habitat.config.task.success_measure
        self._options_taken = 0
        self._needs_reset = True

    def _check_options(self) -> None:
        robot = self._problem.get_entity(self.settings.robot)
        offered = {a.compact_str for a in self._problem.get_possible_actions(
            filter_entities=[robot], allowed_action_names=list(self.settings.allowed_actions))}
        unknown = [o.compact for o in self.layout.options if o.compact not in offered]
        if unknown:
            raise HabitatLayoutError(f"options {', '.join(unknown)} (from the PDDL files) are not offered by the "
                                     f"habitat-lab task: do habitat-lab and its PDDL files come from one install?")

    # --- gymnasium API ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start the next habitat-lab episode; ``seed`` seeds the simulator and task first."""
        super().reset(seed=seed)
        if seed is not None:
            self._habitat.seed(int(seed))
        self._habitat.reset()
        self._options_taken = 0
        self._needs_reset = False
        return self._observe(), {"success": False}

    def step(self, action: int):
        """Run option ``action`` to its end; returns (obs, reward, terminated, truncated, info)."""
        if self._needs_reset:
            raise RuntimeError("HabitatRearrangeEnv.step called before reset (or after the episode ended)")
        if not 0 <= int(action) < len(self.layout.options):
            raise ValueError(f"option {action} is out of range 0..{len(self.layout.options) - 1}")
        option = self.layout.options[int(action)]
        if self.settings.nav_mode == "oracle_nav" and option.action.startswith("nav"):
            reward, done, metrics, valid = self._drive(option)
        else:
            reward, done, metrics, valid = self._apply(option)
        self._options_taken += 1
        success = bool(metrics.get(self._success_measure, False))
        terminated = bool(done)
        truncated = not terminated and self._options_taken >= self.settings.max_options
        self._needs_reset = terminated or truncated
        info = {"success": success, "option": option.compact, "option_valid": valid,
                "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (bool, int, float, np.number))}}
        return self._observe(), float(reward) * self.settings.reward_scale, terminated, truncated, info

    def close(self) -> None:
        self._habitat.close()

    # --- options ---------------------------------------------------------------------------------------
    def apply_vector(self, option: GroundOption) -> np.ndarray:
        """The ``pddl_action`` argument of ``pddl_apply_action`` that applies ``option``.

        habitat-lab reads it as one block per PDDL action (actions ordered by name, ``n_args`` entries
        each); the block of the chosen action holds 1-based indices into the entities ordered by name,
        all other entries are 0.
        """
        vector = np.zeros(self._apply_size, dtype=np.float32)
        start = self._apply_offsets[option.action]
        for j, name in enumerate(option.args):
            vector[start + j] = self._entity_index[name] + 1
        return vector

    def _apply(self, option: GroundOption):
        _, reward, done, metrics = self._habitat.step(
            {"action": PDDL_APPLY, "action_args": {"pddl_action": self.apply_vector(option)}})
        return reward, done, metrics, not self._task_actions[PDDL_APPLY].was_prev_action_invalid

    def _drive(self, option: GroundOption):
        target = np.array([self._entity_index[option.args[0]] + 1], dtype=np.float32)
        total, done, metrics, arrived = 0.0, False, {}, False
        for _ in range(self.settings.nav_max_steps):
            _, reward, done, metrics = self._habitat.step({"action": ORACLE_NAV,
                                                           "action_args": {"oracle_nav_action": target}})
            total += reward
            arrived = bool(self._task_actions[ORACLE_NAV].skill_done)
            if done or arrived:
                break
        return total, done, metrics, arrived

    def _observe(self) -> np.ndarray:
        sim_info = self._problem.sim_info
        return np.array([1.0 if p.is_true(sim_info) else 0.0 for p in self._predicates], dtype=np.float32)
