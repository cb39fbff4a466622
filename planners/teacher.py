"""The teacher: a batch of observations -> a batch of action distributions (numpy, never torch).

:class:`Teacher` is the interface the trainer, the evaluator and the benchmarks use, and all they use.
:class:`PlanTeacher` is the one implementation: for each environment a task family's mediator describes
the observation as a sentence, the planner gives a distribution over plans, and the family's skills turn a
plan into the primitive action (or option) it recommends now.

* ``soft``: the rows mix every plan's action by the plan's probability (the paper's uncertainty-aware
  teacher). A pure function of the observation, so rows are remembered per observation.
* ``hard`` with ``hard_sampling="step"`` (the paper's code): a plan is drawn afresh at every step and its
  action given one-hot.
* ``hard`` with ``hard_sampling="commit"``: a plan is drawn when the sentence changes and followed until
  the sentence changes again, one of its options cannot run, or it stalls (``stall_limit`` steps in a row
  without an observation new to this commitment). A plan given up on is not drawn again for the same
  sentence while others remain, so a bad plan can never hold an episode until its time limit.

A plan with no advice (nothing left to do) gives the family's "no advice" row. Every row sums to 1.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np

from planners.planner import Planner

TEACHER_MODES = ("soft", "hard")
HARD_SAMPLING = ("step", "commit")


@runtime_checkable
class Teacher(Protocol):
    """What a trainer needs from a teacher."""

    num_actions: int

    def action_probs(self, observations: np.ndarray) -> np.ndarray:
        """``(N, num_actions)`` float32 distributions, one row per environment; rows sum to 1."""

    def reset(self, env_index: int) -> None:
        """Environment ``env_index`` started a new episode."""

    def stats(self) -> TeacherStats:
        """Counters for logs and summaries (fallbacks, re-plans, LLM calls...)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state needed to continue identically after a resume."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    def close(self) -> None:
        """Release files and connections (the LLM's answer cache and HTTP client)."""


@dataclass(frozen=True)
class LLMCounters:
    """What a live LLM plan source counted (``LLMPlanSource.counters()``, one name per counter)."""

    llm_calls: int  # HTTP requests sent
    cache_hits: int  # sentences answered from the on-disk answer cache
    cache_misses: int  # sentences the cache did not hold
    live_answers: int  # sentences answered by the server
    unparsed_answers: int  # answers with no readable plan (each became "explore")
    outage_answers: int  # stand-in answers given while the server was down (or offline and not cached)
    oversized_answers: int  # answers dropped for their size
    outage_seconds: float  # time spent waiting on a failing server
    llm_seconds: float  # wall time of the LLM requests, summed (concurrent ones each counted)


@dataclass(frozen=True)
class TeacherStats:
    """A teacher's counters since it was built: the planner's, and its LLM source's when it asks one."""

    fallbacks: int  # meetings of a sentence the plan source had no answer for (the planner said "explore")
    replans: int  # hard "commit" teacher: plans given up because they stalled or could not run
    llm: LLMCounters | None = None

    def flat(self) -> dict[str, float]:
        """Every counter by its own name (``llm`` unfolded): the names logged as ``teacher/<name>``."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "llm"}
        if self.llm is None:
            return own
        llm = asdict(self.llm)
        clashes = own.keys() & llm.keys()
        if clashes:
            raise ValueError(f"teacher counters {sorted(clashes)} are named twice")
        return {**own, **llm}


@dataclass(frozen=True)
class PlanStep:
    """What a plan recommends in one observation.

    ``action`` is an action index, or None for "no advice"; ``runnable`` is False when one of the plan's
    options could not be carried out (its object unseen, an unknown instruction).
    """

    action: int | None
    runnable: bool = True


class TaskFamily(Protocol):
    """The task-specific half of a teacher: sentences and skills of one family of tasks."""

    num_actions: int
    no_advice: np.ndarray  # the row given when a plan has no advice

    def check(self, observations: np.ndarray) -> None:
        """Raise ValueError for observations this family cannot read."""

    def describe(self, obs: np.ndarray):
        """A scene with at least ``.sentence``."""

    def context(self, obs: np.ndarray, scene) -> Any:
        """Whatever :meth:`plan_step` needs for this observation (shared by all plans of one step)."""

    def plan_step(self, plan: tuple, context) -> PlanStep:
        """The action ``plan`` recommends in ``context``."""


@dataclass
class _PlanChoice:
    """One plan of the distribution, evaluated in one observation."""

    plan: tuple
    probability: float
    row: np.ndarray
    runnable: bool


@dataclass
class _Evaluated:
    """An observation's sentence and every plan of its distribution, evaluated there."""

    sentence: str
    choices: list[_PlanChoice]
    mixture: np.ndarray | None = None  # the soft teacher's row, computed once

    def soft_row(self) -> np.ndarray:
        if self.mixture is None:
            row = sum(choice.probability * choice.row for choice in self.choices)
            self.mixture = (row / row.sum()).astype(np.float32)
        return self.mixture


@dataclass
class _Commitment:
    """The hard ``commit`` teacher's plan for one env, and what it has seen since choosing it."""

    sentence: str
    plan: tuple
    seen: set = field(default_factory=set)
    stale_steps: int = 0
    given_up: set = field(default_factory=set)  # plans abandoned for this sentence


class PlanTeacher:
    """Action distributions for a batch of environments from one planner and one task family.

    Args:
        planner: sentence -> plan distribution.
        family: the task family's mediator and skills.
        num_envs: batch size.
        mode: "soft" or "hard".
        hard_sampling: "step" (a fresh plan every step, as published) or "commit" (see module doc).
        stall_limit: commit only: steps without a new observation before the plan is given up.
        seed: seeds the hard teacher's plan sampling.
        cache_size: observations whose evaluated plans are remembered.
    """

    def __init__(self, planner: Planner, family: TaskFamily, num_envs: int, mode: str = "hard",
                 hard_sampling: str = "step", stall_limit: int = 8, seed: int | None = None,
                 cache_size: int = 50_000):
        if mode not in TEACHER_MODES:
            raise ValueError(f"teacher mode must be one of {TEACHER_MODES}, got '{mode}'")
        if hard_sampling not in HARD_SAMPLING:
            raise ValueError(f"hard sampling must be one of {HARD_SAMPLING}, got '{hard_sampling}'")
        if stall_limit < 1:
            raise ValueError(f"stall_limit must be >= 1, got {stall_limit}")
        self.planner, self.family = planner, family
        self.mode, self.hard_sampling, self.stall_limit = mode, hard_sampling, stall_limit
        self.num_envs = num_envs
        self.num_actions = family.num_actions
        self.rng = np.random.default_rng(seed)
        self._commitments: list[_Commitment | None] = [None] * num_envs
        self._evaluated: OrderedDict[bytes, _Evaluated] = OrderedDict()
        self._cache_size = cache_size
        self.steps = 0
        self.replans = 0  # commit: plans given up because they stalled or could not run

    # -- the Teacher interface --------------------------------------------------------------------
    def reset(self, env_index: int) -> None:
        self._commitments[env_index] = None

    def action_probs(self, observations: np.ndarray) -> np.ndarray:
        self.family.check(observations)
        probs = np.empty((len(observations), self.num_actions), dtype=np.float32)
        pending = []
        for i, obs in enumerate(observations):
            key = obs.tobytes()
            evaluated = self._evaluated.get(key)
            if evaluated is None:
                pending.append((i, obs, key, self.family.describe(obs)))
            else:
                self._evaluated.move_to_end(key)
                probs[i] = self._row(i, key, evaluated)
        # New sentences from several envs go to the planner together (concurrent LLM requests).
        self.planner.prefetch([scene.sentence for *_, scene in pending])
        for i, obs, key, scene in pending:
            probs[i] = self._row(i, key, self._evaluate(obs, key, scene))
        self.steps += len(observations)
        return probs

    def stats(self) -> TeacherStats:
        source_counters = getattr(self.planner.source, "counters", None)  # only a live LLM source counts
        return TeacherStats(fallbacks=self.planner.fallback_count, replans=self.replans,
                            llm=LLMCounters(**source_counters()) if source_counters is not None else None)

    def state_dict(self) -> dict[str, Any]:
        # Committed plans are not kept: episodes in progress restart on fresh layouts after a resume.
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def close(self) -> None:
        close = getattr(self.planner.source, "close", None)
        if close is not None:
            close()

    # -- internals --------------------------------------------------------------------------------
    def _evaluate(self, obs: np.ndarray, key: bytes, scene) -> _Evaluated:
        """Every plan of the sentence's distribution with the row it gives in ``obs``."""
        context = self.family.context(obs, scene)
        choices = []
        for plan, probability in self.planner.plans_for(scene.sentence):
            step = self.family.plan_step(plan, context)
            row = self.family.no_advice if step.action is None else _one_hot(step.action, self.num_actions)
            choices.append(_PlanChoice(plan, probability, row, step.runnable))
        evaluated = _Evaluated(scene.sentence, choices)
        if self.planner.settled(scene.sentence):  # stand-in answers during an LLM outage are not kept
            self._evaluated[key] = evaluated
            if len(self._evaluated) > self._cache_size:
                self._evaluated.popitem(last=False)
        return evaluated

    def _row(self, env_index: int, key: bytes, evaluated: _Evaluated) -> np.ndarray:
        if self.mode == "soft":
            return evaluated.soft_row()
        if self.hard_sampling == "step":
            return evaluated.choices[self._draw(evaluated.choices)].row
        return self._committed_row(env_index, key, evaluated)

    def _draw(self, choices: list[_PlanChoice], excluded: set = frozenset()) -> int:
        weights = np.array([0.0 if c.plan in excluded else c.probability for c in choices])
        if weights.sum() <= 0:  # every plan was given up on: start over
            weights = np.array([c.probability for c in choices])
        return int(self.rng.choice(len(choices), p=weights / weights.sum()))

    def _committed_row(self, env_index: int, key: bytes, evaluated: _Evaluated) -> np.ndarray:
        sentence, choices = evaluated.sentence, evaluated.choices
        commitment = self._commitments[env_index]
        if (commitment is None or commitment.sentence != sentence
                or not any(c.plan == commitment.plan for c in choices)):  # (the planner's answer changed)
            commitment = self._commit(env_index, sentence, choices, given_up=set())
        elif commitment.stale_steps >= self.stall_limit:
            commitment = self._give_up(env_index, commitment, choices)
        choice = next(c for c in choices if c.plan == commitment.plan)
        if not choice.runnable and len(choices) > 1:
            commitment = self._give_up(env_index, commitment, choices)
            choice = next(c for c in choices if c.plan == commitment.plan)
        if key in commitment.seen:
            commitment.stale_steps += 1
        else:
            commitment.seen.add(key)
            commitment.stale_steps = 0
        return choice.row

    def _commit(self, env_index: int, sentence: str, choices: list[_PlanChoice], given_up: set) -> _Commitment:
        plan = choices[self._draw(choices, given_up)].plan
        commitment = self._commitments[env_index] = _Commitment(sentence, plan, given_up=given_up)
        return commitment

    def _give_up(self, env_index: int, commitment: _Commitment, choices: list[_PlanChoice]) -> _Commitment:
        self.replans += 1
        return self._commit(env_index, commitment.sentence, choices, commitment.given_up | {commitment.plan})


def _one_hot(action: int, size: int) -> np.ndarray:
    row = np.zeros(size, dtype=np.float32)
    row[action] = 1.0
    return row
