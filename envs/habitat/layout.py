"""The task layout: the option list and the observation vector, both derived from the PDDL definition.

The observation is the truth value (0.0 or 1.0) of a fixed list of PDDL predicates, grouped in slots:

=========  ============================================  =========================================
kind       one slot per                                  predicate (replica_cad domain)
=========  ============================================  =========================================
near       object, goal and articulated receptacle e     ``robot_at(e, robot)`` (within 2 m)
holding    movable object m                              ``holding(m, robot)``
at_goal    movable object m with a goal                  ``object_at(m, TARGET_m)``
inside     movable object m x receptacle r               ``in(m, r)``
open       receptacle r with an ``opened_*`` predicate   ``opened_cab(r)`` / ``opened_fridge(r)``
=========  ============================================  =========================================

Why this vector: the options are executed by habitat-lab's oracle skills, so what decides the outcome of
an option is exactly these predicates (they are the options' pre- and post-conditions, and the task's goal
``object_at(m, TARGET_m) and not_holding`` is made of them). They are evaluated by habitat-lab's own
predicate functions, the vector is small (19 numbers for rearrange_easy), and the teacher can decode it
without the simulator. Raw images, joint angles or coordinates would add nothing an option-level policy
can use. Slots whose predicate the domain does not define (or does not allow for those entities) are
left out, so the layout adapts to other domains.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from envs.habitat.pddl import (GOAL, MOVABLE, RECEPTACLE_TYPES, Entity, GroundOption, PddlDefinition, PddlError,
                               goal_of, list_options)

SLOT_KINDS = ("near", "holding", "at_goal", "inside", "open")


@dataclass(frozen=True)
class Slot:
    """One observation entry: what it is about and the predicate whose truth it holds."""

    kind: str               # one of SLOT_KINDS
    args: tuple[str, ...]   # the entities it is about, e.g. ("goal0|0",) or ("goal0|0", "cab_push_point_5")
    predicate: str          # e.g. "robot_at(goal0|0,robot_0)", as habitat-lab's parse_predicate reads it


@dataclass(frozen=True)
class LayoutState:
    """A decoded observation."""

    near: frozenset[str]
    holding: str | None
    at_goal: frozenset[str]
    inside: frozenset[tuple[str, str]]
    open: frozenset[str]


@dataclass(frozen=True)
class TaskLayout:
    """Entities by role, the options (action space) and the observation slots of one task."""

    robot: str
    objects: tuple[str, ...]
    goals: tuple[str, ...]
    receptacles: tuple[Entity, ...]
    goal_of: dict[str, str] = field(hash=False)   # movable object -> its goal entity
    options: tuple[GroundOption, ...]
    slots: tuple[Slot, ...]

    @property
    def size(self) -> int:
        """Length of the observation vector."""
        return len(self.slots)

    def encode(self, is_true: Callable[[str], bool]) -> np.ndarray:
        """The observation vector, asking ``is_true(predicate)`` for each slot."""
        return np.array([1.0 if is_true(slot.predicate) else 0.0 for slot in self.slots], dtype=np.float32)

    def decode(self, obs: np.ndarray) -> LayoutState:
        """The state an observation vector describes (values above 0.5 count as true)."""
        obs = np.asarray(obs).reshape(-1)
        if obs.shape[0] != self.size:
            raise ValueError(f"a Habitat observation has {self.size} entries for this task, got {obs.shape[0]}")
        true = [slot for slot, value in zip(self.slots, obs) if value > 0.5]
        held = [s.args[0] for s in true if s.kind == "holding"]
        return LayoutState(near=frozenset(s.args[0] for s in true if s.kind == "near"),
                           holding=held[0] if held else None,
                           at_goal=frozenset(s.args[0] for s in true if s.kind == "at_goal"),
                           inside=frozenset((s.args[0], s.args[1]) for s in true if s.kind == "inside"),
                           open=frozenset(s.args[0] for s in true if s.kind == "open"))

    def option_index(self, action: str, args: tuple[str, ...]) -> int | None:
        """Index of the option ``action(args)`` in the action space, or None."""
        wanted = GroundOption(action, tuple(args))
        return next((i for i, option in enumerate(self.options) if option == wanted), None)


def build_layout(definition: PddlDefinition, allowed_actions: tuple[str, ...], robot: str) -> TaskLayout:
    """Options and observation slots for ``robot`` from a PDDL definition."""
    objects = tuple(e.name for e in definition.entities_of(MOVABLE))
    goals = tuple(e.name for e in definition.entities_of(GOAL))
    receptacles = tuple(e for e in definition.entities if any(definition.is_subtype(e.type, t) for t in RECEPTACLE_TYPES))
    if not objects:
        raise PddlError("the task spec has no movable object to rearrange")
    goal_map = {obj: goal for obj in objects if (goal := goal_of(definition, obj)) is not None}

    def slot(kind: str, about: tuple[str, ...], predicate: str, args: tuple[str, ...]) -> Slot | None:
        types = definition.predicates.get(predicate)
        if types is None or not definition.accepts(types, args):
            return None
        return Slot(kind, about, f"{predicate}({','.join(args)})")

    candidates: list[Slot | None] = []
    for name in objects + goals + tuple(r.name for r in receptacles):
        candidates.append(slot("near", (name,), "robot_at", (name, robot)))
    for obj in objects:
        candidates.append(slot("holding", (obj,), "holding", (obj, robot)))
    for obj, goal in goal_map.items():
        candidates.append(slot("at_goal", (obj,), "object_at", (obj, goal)))
    for obj in objects:
        for recep in receptacles:
            candidates.append(slot("inside", (obj, recep.name), "in", (obj, recep.name)))
    for recep in receptacles:
        opened = [name for name in definition.predicates if name.startswith("opened_")]
        found = [s for s in (slot("open", (recep.name,), name, (recep.name,)) for name in opened) if s is not None]
        candidates.extend(found[:1])
    slots = tuple(s for s in candidates if s is not None)

    covered = {(s.kind, s.args[0]) for s in slots}
    lacking = [f"robot_at({n},{robot})" for n in objects + goals if ("near", n) not in covered]
    lacking += [f"holding({n},{robot})" for n in objects if ("holding", n) not in covered]
    if lacking:
        raise PddlError(f"the PDDL domain cannot express {', '.join(lacking)}, which the observation needs")
    options = tuple(list_options(definition, allowed_actions, robot))
    return TaskLayout(robot, objects, goals, receptacles, goal_map, options, slots)
