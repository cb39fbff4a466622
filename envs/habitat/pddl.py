"""A habitat-lab PDDL definition read as plain data, and the grounded options it allows.

habitat-lab describes a rearrangement task with two YAML files: the *domain* (entity types, constant
entities such as cabinet push points, predicates, and actions with typed parameters; e.g.
``habitat/tasks/rearrange/multi_task/domain_configs/replica_cad.yaml``) and the *task spec* (the episode's
objects, goal and solution; e.g. ``habitat/config/habitat/task/rearrange/pddl/rearrange_easy.yaml``).
This module reads both without importing habitat, so the option list and the observation layout can be
built (and tested) on machines without the simulator. The rules follow habitat-lab's ``PddlDomain``:

* Types: habitat-lab always defines ``entity_type`` with the children ``movable_entity_type``,
  ``static_receptacle_entity_type``, ``art_receptacle_entity_type``, ``goal_entity_type`` and
  ``robot_entity_type``; the domain's ``types: {parent: [child, ...]}`` then adds types or re-parents
  existing ones, in file order.
* Entities: the task spec's ``objects`` plus the domain's ``constants``, ordered by name (the order of
  ``PddlDomain.get_ordered_entities_list``, which ``pddl_apply_action`` indexes into).
* A parameter accepts an entity whose type is the parameter's type or one of its descendants.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Mapping

BASE_TYPE = "entity_type"
SIMULATOR_TYPES = ("movable_entity_type", "static_receptacle_entity_type", "art_receptacle_entity_type",
                   "goal_entity_type", "robot_entity_type")
MOVABLE, GOAL, ROBOT = "movable_entity_type", "goal_entity_type", "robot_entity_type"
RECEPTACLE_TYPES = ("art_receptacle_entity_type", "static_receptacle_entity_type")


class PddlError(ValueError):
    """The PDDL definition is malformed or lacks something the task needs."""


@dataclass(frozen=True)
class Entity:
    """A named PDDL entity and its type, e.g. ``Entity("goal0|0", "movable_entity_type")``."""

    name: str
    type: str


@dataclass(frozen=True)
class ActionSchema:
    """An action of the domain: its name and ``(parameter name, parameter type)`` pairs."""

    name: str
    params: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class GroundOption:
    """An action with entities bound to all its parameters: one discrete choice of the student."""

    action: str
    args: tuple[str, ...]

    @property
    def compact(self) -> str:
        """``nav(goal0|0,robot_0)``: the spelling of habitat-lab's ``PddlAction.compact_str``."""
        return f"{self.action}({','.join(self.args)})"


class PddlDefinition:
    """Types, entities, predicates and actions of one domain + task spec (no simulator involved).

    Args:
        parents: type name -> parent type name (None for the root ``entity_type``).
        entities: every entity of the task, any order (kept sorted by name).
        predicates: predicate name -> parameter types.
        actions: action name -> schema.
    """

    def __init__(self, parents: dict[str, str | None], entities: list[Entity],
                 predicates: dict[str, tuple[str, ...]], actions: dict[str, ActionSchema]):
        self.parents = parents
        self.entities = sorted(entities, key=lambda e: e.name)
        self.predicates = predicates
        self.actions = actions
        self._by_name = {e.name: e for e in self.entities}

    @classmethod
    def from_yaml(cls, domain: Mapping, task_spec: Mapping) -> "PddlDefinition":
        """Build from the parsed domain and task-spec YAML mappings (habitat-lab's file format)."""
        try:
            parents: dict[str, str | None] = {BASE_TYPE: None, **{t: BASE_TYPE for t in SIMULATOR_TYPES}}
            for parent, children in (domain.get("types") or {}).items():
                parents.setdefault(parent, BASE_TYPE)
                for child in children or ():
                    parents[child] = parent
            entities = [Entity(o["name"], o["expr_type"]) for o in (task_spec.get("objects") or ())]
            entities += [Entity(c["name"], c["expr_type"]) for c in (domain.get("constants") or ())]
            predicates = {p["name"]: tuple(a["expr_type"] for a in (p.get("args") or ()))
                          for p in (domain.get("predicates") or ())}
            actions = {a["name"]: ActionSchema(a["name"], tuple((p["name"], p["expr_type"])
                                                                for p in (a.get("parameters") or ())))
                       for a in (domain.get("actions") or ())}
        except (KeyError, TypeError, AttributeError) as err:
            raise PddlError(f"PDDL definition is not in habitat-lab's format ({type(err).__name__}: {err})") from None
        definition = cls(parents, entities, predicates, actions)
        definition._check_types()
        return definition

    def _check_types(self) -> None:
        used = {e.type for e in self.entities} | {t for types in self.predicates.values() for t in types}
        used |= {t for a in self.actions.values() for _, t in a.params}
        unknown = sorted(used - set(self.parents))
        if unknown:
            raise PddlError(f"PDDL definition uses undeclared types: {', '.join(unknown)}")
        names = [e.name for e in self.entities]
        if len(names) != len(set(names)):
            raise PddlError("PDDL definition names an entity twice")

    def entity(self, name: str) -> Entity:
        """The entity called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise PddlError(f"no PDDL entity '{name}'; entities: {', '.join(self._by_name)}") from None

    def is_subtype(self, type_name: str, ancestor: str) -> bool:
        """Whether ``type_name`` is ``ancestor`` or descends from it."""
        seen = set()
        while type_name is not None and type_name not in seen:
            if type_name == ancestor:
                return True
            seen.add(type_name)
            type_name = self.parents.get(type_name)
        return False

    def entities_of(self, type_name: str) -> list[Entity]:
        """Entities of ``type_name`` (or a descendant), by name."""
        return [e for e in self.entities if self.is_subtype(e.type, type_name)]

    def accepts(self, param_types: tuple[str, ...], names: tuple[str, ...]) -> bool:
        """Whether entities ``names`` fit parameters of ``param_types`` (same count, compatible types)."""
        return len(param_types) == len(names) and all(
            self.is_subtype(self.entity(n).type, t) for n, t in zip(names, param_types))


def goal_of(definition: PddlDefinition, obj: str) -> str | None:
    """The goal entity of movable object ``obj``: habitat-lab names it ``TARGET_<obj>``."""
    name = f"TARGET_{obj}"
    match = [g for g in definition.entities_of(GOAL) if g.name == name]
    return match[0].name if match else None


def list_options(definition: PddlDefinition, allowed_actions: tuple[str, ...], robot: str) -> list[GroundOption]:
    """Every grounding of the allowed actions for ``robot``: the student's discrete action space.

    Order: actions in ``allowed_actions`` order; within an action, parameter bindings in entity-name order.
    A parameter of robot type is bound to ``robot`` only; one entity never fills two parameters; an
    action taking both a movable object and a goal only pairs the object with its own goal (as
    habitat-baselines' high-level policy does with ``allow_other_place: False``).
    """
    if robot not in {e.name for e in definition.entities_of(ROBOT)}:
        raise PddlError(f"robot '{robot}' is not a robot entity of the PDDL definition")
    missing = [name for name in allowed_actions if name not in definition.actions]
    if missing:
        raise PddlError(f"PDDL domain has no action(s) {', '.join(missing)}; it has: {', '.join(definition.actions)}")
    options: list[GroundOption] = []
    for name in allowed_actions:
        schema = definition.actions[name]
        candidates = []
        for _, param_type in schema.params:
            if definition.is_subtype(param_type, ROBOT):
                candidates.append([robot])
            else:
                candidates.append([e.name for e in definition.entities_of(param_type)
                                   if not definition.is_subtype(e.type, ROBOT)])
        for args in itertools.product(*candidates):
            if len(set(args)) != len(args) or not _pairs_own_goal(definition, schema, args):
                continue
            options.append(GroundOption(name, tuple(args)))
    if not options:
        raise PddlError(f"the actions {', '.join(allowed_actions)} have no grounding in this PDDL definition")
    return options


def _pairs_own_goal(definition: PddlDefinition, schema: ActionSchema, args: tuple[str, ...]) -> bool:
    types = [t for _, t in schema.params]
    objects = [a for a, t in zip(args, types) if t == MOVABLE]
    goals = [a for a, t in zip(args, types) if t == GOAL]
    if not objects or not goals:
        return True
    return all(goal_of(definition, obj) in goals for obj in objects)
