"""The Habitat teacher: a batch of observation vectors -> a batch of distributions over the task's options.

The same planners (recorded, live LLM, oracle) teach here: the Habitat mediator turns each observation into
a sentence, the planner gives a distribution over plans, and each plan's next option is the first of its
steps not yet achieved in the observed state:

* navigate to X: achieved when the robot is next to X;
* pick X: when X is held;  place X on G: when X is at its goal and not held;
* open R / close R: when R is open / closed.

``soft`` mixes every plan's next option by the plan's probability; ``hard`` samples one plan when the
sentence changes and follows it (one-hot) until the sentence changes again or the episode ends, as the
MiniGrid teacher (:mod:`planners.teacher`) does. A plan with nothing left to do, or whose next step is
unknown, gives no advice: a uniform distribution over all options. Every row sums to 1.
"""
from __future__ import annotations

import numpy as np

from envs.habitat.layout import LayoutState, TaskLayout
from planners.habitat_mediator import EntityNames, HabitatStep, describe, parse_habitat_plan
from planners.planner import Planner

TEACHER_MODES = ("soft", "hard")


def option_achieved(layout: TaskLayout, option: int, state: LayoutState) -> bool:
    """Whether the effect of ``layout.options[option]`` already holds in ``state``."""
    action, args = layout.options[option].action, layout.options[option].args
    if action.startswith("nav"):
        return args[0] in state.near
    if action == "pick":
        return state.holding == args[0]
    if action == "place":
        return args[0] in state.at_goal and state.holding != args[0]
    if action.startswith("open"):
        return args[0] in state.open
    if action.startswith("close"):
        return args[0] not in state.open
    return False


def next_option(plan: tuple, layout: TaskLayout, state: LayoutState) -> int | None:
    """The option ``plan`` asks for now, or None (nothing left, or an unknown/unmappable step comes next)."""
    for step in plan:
        if not isinstance(step, HabitatStep) or step.option is None:
            return None  # "unknown" steps, and the planner's MiniGrid "explore" fallback
        if not option_achieved(layout, step.option, state):
            return step.option
    return None


class HabitatTeacher:
    """Option distributions for a batch of Habitat envs from one planner.

    Args:
        planner: sentence -> plan distribution (built with :func:`parse_habitat_plan` as its parser).
        layout: the task layout (options and observation slots), the same the envs use.
        names: plain entity names of the layout.
        num_envs: batch size; the hard teacher keeps one committed plan per env.
        mode: "soft" or "hard".
        seed: seeds the hard teacher's plan sampling.
    """

    def __init__(self, planner: Planner, layout: TaskLayout, names: EntityNames, num_envs: int,
                 mode: str = "soft", seed: int | None = None):
        if mode not in TEACHER_MODES:
            raise ValueError(f"teacher mode must be one of {TEACHER_MODES}, got '{mode}'")
        self.planner = planner
        self.layout = layout
        self.names = names
        self.num_envs = num_envs
        self.mode = mode
        self.rng = np.random.default_rng(seed)
        self.num_options = len(layout.options)
        self._no_advice = np.full(self.num_options, 1.0 / self.num_options, dtype=np.float32)
        self._committed: list[tuple[str, tuple] | None] = [None] * num_envs
        self.steps = 0

    def reset(self, env_index: int) -> None:
        """Forget the committed plan of an env whose episode ended."""
        self._committed[env_index] = None

    def action_probs(self, observations: np.ndarray) -> np.ndarray:
        """``(N, num_options)`` float32 option distributions for a batch of observation vectors."""
        observations = np.asarray(observations)
        if observations.ndim != 2 or observations.shape[1] != self.layout.size:
            raise ValueError(f"the Habitat teacher expects observations of shape (N, {self.layout.size}), "
                             f"got {observations.shape}")
        probs = np.empty((len(observations), self.num_options), dtype=np.float32)
        for i, obs in enumerate(observations):
            probs[i] = self._probs_for(i, obs)
        self.steps += len(observations)
        return probs

    def _probs_for(self, env_index: int, obs: np.ndarray) -> np.ndarray:
        scene = describe(obs, self.layout, self.names)
        if self.mode == "soft":
            probs = np.zeros(self.num_options, dtype=np.float32)
            for plan, weight in self.planner.plans_for(scene.sentence):
                option = next_option(plan, self.layout, scene.state)
                if option is None:
                    probs += weight * self._no_advice
                else:
                    probs[option] += weight
            return probs / probs.sum()
        committed = self._committed[env_index]
        if committed is None or committed[0] != scene.sentence:
            plans = self.planner.plans_for(scene.sentence)
            choice = self.rng.choice(len(plans), p=np.array([w for _, w in plans], dtype=np.float64))
            committed = self._committed[env_index] = (scene.sentence, plans[choice][0])
        option = next_option(committed[1], self.layout, scene.state)
        if option is None:
            return self._no_advice.copy()
        probs = np.zeros(self.num_options, dtype=np.float32)
        probs[option] = 1.0
        return probs


def build_habitat_teacher(config, source, num_envs: int, mode: str, seed: int | None) -> HabitatTeacher:
    """A Habitat teacher for ``config.task``, asking ``source`` for plans.

    The layout comes from the task's registration kwargs through the same backend the envs use (the real
    habitat-lab, or the one named by ``LLM4TEACH_HABITAT_BACKEND``), so teacher and envs agree.
    """
    from envs import get_task
    from envs.habitat.backend import resolve_backend
    from envs.habitat.settings import HabitatSettings, load_layout
    if config.naming not in (None, "plain"):
        raise ValueError(f"Habitat sentences use naming 'plain', got '{config.naming}'")
    settings = HabitatSettings.from_kwargs(**get_task(config.task).kwargs)
    layout = load_layout(settings, resolve_backend())
    names = EntityNames(layout)
    planner = Planner(source, parse=lambda text: parse_habitat_plan(text, layout, names))
    return HabitatTeacher(planner, layout, names, num_envs, mode=mode, seed=seed)
