"""The teacher: a batch of observations -> a batch of action distributions (numpy, never torch).

For each environment: the mediator describes the observation, the planner gives a distribution over
plans, and each plan is executed as option skills to get the primitive action it recommends now.

* ``soft``: the action distribution mixes every plan's action by the plan's probability (the paper's
  uncertainty-aware teacher).
* ``hard``: one plan is sampled when the sentence changes (a new decision) and followed, one-hot, until the
  sentence changes again or the episode ends.

A plan runs its options in order, skipping those already achieved. If an option cannot be carried out (an
object never seen, an unknown instruction) the teacher explores instead; if there is nothing left to
explore either, it has no advice and returns a uniform distribution over turning and moving forward.
Every row returned sums to 1.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from planners.mediator import Plan, describe
from planners.planner import Planner
from planners.skills.minigrid_skills import INVALID, SkillContext, explore
from planners.skills.navigation import FORWARD, LEFT, RIGHT, DistanceFieldCache

NUM_ACTIONS = 7
TEACHER_MODES = ("soft", "hard")


def no_advice() -> np.ndarray:
    """The distribution used when the teacher has nothing to recommend."""
    probs = np.zeros(NUM_ACTIONS, dtype=np.float32)
    probs[[LEFT, RIGHT, FORWARD]] = 1.0 / 3.0
    return probs


_NO_ADVICE = no_advice()


def plan_action(plan: Plan, ctx: SkillContext) -> int | None:
    """The primitive action ``plan`` recommends in ``ctx``; None when there is no advice."""
    for option in plan:
        result = ctx.run(option)
        if result is None:
            continue
        if result == INVALID:
            break
        return result
    return explore(ctx)


class Teacher:
    """Action distributions for a batch of environments from one planner.

    Args:
        planner: sentence -> plan distribution.
        naming: object naming style of the task's sentences (see :mod:`planners.mediator`).
        num_envs: batch size; the hard teacher keeps one committed plan per env.
        mode: "soft" or "hard".
        seed: seeds the hard teacher's plan sampling.
    """

    def __init__(self, planner: Planner, naming: str, num_envs: int, mode: str = "soft", seed: int | None = None,
                 cache_size: int = 50_000):
        if mode not in TEACHER_MODES:
            raise ValueError(f"teacher mode must be one of {TEACHER_MODES}, got '{mode}'")
        self.planner = planner
        self.naming = naming
        self.mode = mode
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)
        self.paths = DistanceFieldCache()
        self._committed: list[tuple[str, Plan] | None] = [None] * num_envs
        self._answers: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self.answer_cache_hits = 0
        self.steps = 0

    def reset(self, env_index: int) -> None:
        """Forget the committed plan of an env whose episode ended."""
        self._committed[env_index] = None

    def action_probs(self, observations: np.ndarray) -> np.ndarray:
        """``(num_envs, 7)`` float32 action distributions for a batch of observations."""
        probs = np.empty((len(observations), NUM_ACTIONS), dtype=np.float32)
        pending = []
        for i, obs in enumerate(observations):
            # The soft teacher is a pure function of the observation: remember recent answers.
            key = obs.tobytes() if self.mode == "soft" else None
            cached = self._answers.get(key) if key is not None else None
            if cached is not None:
                self.answer_cache_hits += 1
                probs[i] = cached
            else:
                pending.append((i, obs, key, describe(obs, self.naming)))
        # New sentences from several envs go to the planner together (concurrent LLM requests).
        self.planner.prefetch([scene.sentence for _, _, _, scene in pending])
        for i, obs, key, scene in pending:
            probs[i] = self._probs_for(i, obs, key, scene)
        self.steps += len(observations)
        return probs

    def _probs_for(self, env_index: int, obs: np.ndarray, key: bytes | None, scene) -> np.ndarray:
        ctx = SkillContext(obs, scene, self.paths)
        if self.mode == "soft":
            probs = np.zeros(NUM_ACTIONS, dtype=np.float32)
            for plan, weight in self.planner.plans_for(scene.sentence):
                action = plan_action(plan, ctx)
                if action is None:
                    probs += weight * _NO_ADVICE
                else:
                    probs[action] += weight
            probs /= probs.sum()
            self._answers[key] = probs
            if len(self._answers) > self._cache_size:
                self._answers.popitem(last=False)
            return probs
        committed = self._committed[env_index]
        if committed is None or committed[0] != scene.sentence:
            plans = self.planner.plans_for(scene.sentence)
            choice = self.rng.choice(len(plans), p=np.array([w for _, w in plans], dtype=np.float64))
            committed = self._committed[env_index] = (scene.sentence, plans[choice][0])
        action = plan_action(committed[1], ctx)
        if action is None:
            return _NO_ADVICE
        probs = np.zeros(NUM_ACTIONS, dtype=np.float32)
        probs[action] = 1.0
        return probs
