"""The Habitat part of the teacher: the student's actions are the task's options.

The same planners (recorded, live LLM, oracle) and the same soft/hard logic (:mod:`planners.teacher`)
teach here: the Habitat mediator turns each observation vector into a sentence, and a plan's next option is
the first of its steps not yet achieved in the observed state:

* navigate to X: achieved when the robot is next to X;
* pick X: when X is held;  place X on G: when X is at its goal and not held;
* open R / close R: when R is open / closed.

A plan with nothing left to do, or whose next step is unknown, gives no advice: a uniform distribution
over all options.
"""
from __future__ import annotations

import numpy as np

from envs.habitat.layout import LayoutState, TaskLayout
from planners.habitat.mediator import EntityNames, HabitatStep, describe, parse_habitat_plan
from planners.teacher import PlanStep


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


class HabitatFamily:
    """Mediator and option logic for the Habitat rearrangement tasks (actions are the task's options).

    Args:
        layout: the task layout (options and observation slots), the same the envs use.
        names: plain entity names of the layout.
    """

    def __init__(self, layout: TaskLayout, names: EntityNames):
        self.layout, self.names = layout, names
        self.num_actions = len(layout.options)
        self.no_advice = np.full(self.num_actions, 1.0 / self.num_actions, dtype=np.float32)

    def parse(self, text: str) -> tuple:
        return parse_habitat_plan(text, self.layout, self.names)

    def check(self, observations: np.ndarray) -> None:
        if observations.ndim != 2 or observations.shape[1] != self.layout.size:
            raise ValueError(f"the Habitat teacher expects observations of shape (N, {self.layout.size}), "
                             f"got {observations.shape}")

    def describe(self, obs: np.ndarray):
        return describe(obs, self.layout, self.names)

    def context(self, obs: np.ndarray, scene) -> LayoutState:
        return scene.state

    def plan_step(self, plan: tuple, state: LayoutState) -> PlanStep:
        """The plan's next option; no advice when nothing is left or an unknown step comes next."""
        for step in plan:
            if not isinstance(step, HabitatStep) or step.option is None:
                return PlanStep(None, runnable=False)  # "unknown" steps, and the planner's "explore" fallback
            if not option_achieved(self.layout, step.option, state):
                return PlanStep(step.option)
        return PlanStep(None)


def build_habitat_family(task: str, naming: str | None) -> HabitatFamily:
    """The Habitat family of ``task``.

    The layout comes from the task's registration kwargs through the same backend the envs use (the real
    habitat-lab, or the one named by ``LLM4TEACH_HABITAT_BACKEND``), so teacher and envs agree.
    """
    from envs import get_task
    from envs.habitat.backend import resolve_backend
    from envs.habitat.settings import HabitatSettings, load_layout
    if naming not in (None, "plain"):
        raise ValueError(f"Habitat sentences use naming 'plain', got '{naming}'")
    layout = load_layout(HabitatSettings.from_kwargs(**get_task(task).kwargs), resolve_backend())
    return HabitatFamily(layout, EntityNames(layout))
