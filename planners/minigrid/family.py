"""The MiniGrid part of the teacher: sentences from the remembered map, plans run as option skills.

Two skill sets (``--skills``):

* ``paper`` (:mod:`planners.minigrid.paper_skills`): behaves like the skills published with the paper's
  code, lava-walking go-to and greedy explore included; options that cannot run emit ``done``.
* ``safe`` (:mod:`planners.minigrid.safe_skills`): shortest paths that never enter lava, frontier
  exploration, approach before pick up/open; an option that cannot run makes the teacher explore, and with
  nothing left to explore it has no advice.
"""
from __future__ import annotations

import numpy as np

from planners.minigrid import paper_skills, safe_skills
from planners.minigrid.mediator import describe, parse_plan
from planners.minigrid.navigation import FORWARD, LEFT, RIGHT, DistanceFieldCache
from planners.teacher import PlanStep

NUM_ACTIONS = 7
SKILL_SETS = ("paper", "safe")


def no_advice() -> np.ndarray:
    """The row used when the teacher has nothing to recommend: uniform over turning and moving forward."""
    probs = np.zeros(NUM_ACTIONS, dtype=np.float32)
    probs[[LEFT, RIGHT, FORWARD]] = 1.0 / 3.0
    return probs


def safe_plan_step(plan, ctx: safe_skills.SkillContext) -> PlanStep:
    """The first not-yet-achieved option's action; explore when an option cannot run or none is left."""
    runnable = True
    for option in plan:
        result = ctx.run(option)
        if result is None:
            continue
        if result == safe_skills.INVALID:
            runnable = False
            break
        return PlanStep(result)
    return PlanStep(safe_skills.explore(ctx), runnable)


class MiniGridFamily:
    """Mediator and skills for the MiniGrid rooms.

    Args:
        naming: object naming style of the task's sentences (see :mod:`planners.minigrid.mediator`).
        skills: "paper" or "safe".
    """

    num_actions = NUM_ACTIONS
    parse = staticmethod(parse_plan)

    def __init__(self, naming: str = "plain", skills: str = "paper"):
        if skills not in SKILL_SETS:
            raise ValueError(f"skills must be one of {SKILL_SETS}, got '{skills}'")
        self.naming, self.skills = naming, skills
        self.no_advice = no_advice()
        self._paths = paper_skills.StatePathCache() if skills == "paper" else DistanceFieldCache()

    def check(self, observations: np.ndarray) -> None:
        if observations.ndim != 4 or observations.shape[1] != 4:
            raise ValueError(f"the MiniGrid teacher expects observations of shape (N, 4, W, H), "
                             f"got {observations.shape}")

    def describe(self, obs: np.ndarray):
        return describe(obs, self.naming)

    def context(self, obs: np.ndarray, scene):
        if self.skills == "paper":
            return paper_skills.PaperSkillContext(obs, scene, self._paths)
        return safe_skills.SkillContext(obs, scene, self._paths)

    def plan_step(self, plan, context) -> PlanStep:
        if self.skills == "paper":
            action, runnable = paper_skills.plan_action(plan, context)
            return PlanStep(action, runnable)
        return safe_plan_step(plan, context)
