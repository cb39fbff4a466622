"""The Habitat mediator: observation vector -> sentence, plan text -> option ids, and a scripted oracle.

Sentences read like the MiniGrid ones, e.g. ``Robot sees <object>, <goal>, holds <nothing>.``: the robot
"sees" what it is next to (the ``robot_at`` predicate, within 2 m), and a receptacle is mentioned, with its
state, when it is next to the robot and holds a task object (``<closed cabinet2>``). Entity names are
made plain for the LLM (naming ``plain``):

* movable objects: ``object`` (or ``object1``, ``object2``... when there are several);
* goals: ``goal`` for the goal of ``object`` (``goal2`` for the goal of ``object2``);
* receptacles: ``cabinet1``..``cabinetN`` for the replica_cad ``cab_type`` push points, ``fridge``.

Plans are comma-separated steps: ``navigate to <object>, pick <object>, navigate to <goal>,
place <object> on <goal>``; also ``open <cabinet1>`` and ``close <cabinet1>``. A step the parser cannot map
to an option of the task becomes an ``unknown`` step (reported by the planner).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from envs.habitat.layout import LayoutState, TaskLayout
from planners.tokens import angle_tokens

RECEPTACLE_WORDS = {"cab_type": "cabinet", "fridge_type": "fridge"}
_STATE_WORDS = ("open ", "closed ")


class EntityNames:
    """Plain names of a layout's entities, both ways."""

    def __init__(self, layout: TaskLayout):
        self.layout = layout
        self._display: dict[str, str] = {}
        self._numbered("object", list(layout.objects))
        for obj, goal in layout.goal_of.items():  # the goal of object2 is goal2
            self._display[goal] = "goal" + self._display[obj][len("object"):]
        unmatched = [g for g in layout.goals if g not in self._display]
        if layout.goal_of:
            for number, goal in enumerate(unmatched, start=len(layout.goal_of) + 1):
                self._display[goal] = f"goal{number}"
        else:
            self._numbered("goal", unmatched)
        words: dict[str, list[str]] = {}
        for recep in layout.receptacles:
            words.setdefault(RECEPTACLE_WORDS.get(recep.type, "receptacle"), []).append(recep.name)
        for word, members in words.items():
            self._numbered(word, members)
        self._entity = {name: entity for entity, name in self._display.items()}

    def _numbered(self, word: str, entities: list[str]) -> None:
        """``word`` for a single entity, ``word1``, ``word2``... for several."""
        if len(entities) == 1:
            self._display[entities[0]] = word
            return
        for number, entity in enumerate(entities, start=1):
            self._display[entity] = f"{word}{number}"

    def display(self, entity: str) -> str:
        """The plain name of a PDDL entity, e.g. ``goal0|0`` -> ``object``."""
        return self._display[entity]

    def resolve(self, word: str) -> str | None:
        """The PDDL entity a plain name (state words such as ``closed`` allowed) refers to, or None."""
        word = " ".join(word.lower().split())
        for state in _STATE_WORDS:
            if word.startswith(state):
                word = word[len(state):]
        return self._entity.get(word)


@dataclass(frozen=True)
class HabitatScene:
    """What the teacher knows about one observation."""

    sentence: str
    state: LayoutState


def describe(obs: np.ndarray, layout: TaskLayout, names: EntityNames) -> HabitatScene:
    """Decode an observation vector and say it as a sentence."""
    state = layout.decode(obs)
    seen = [names.display(o) for o in layout.objects if o in state.near and o != state.holding]
    seen += [names.display(g) for g in layout.goals if g in state.near]
    for recep in layout.receptacles:
        holds_object = any((o, recep.name) in state.inside for o in layout.objects if o != state.holding)
        if recep.name in state.near and holds_object:
            seen.append(f"{'open' if recep.name in state.open else 'closed'} {names.display(recep.name)}")
    listed = ", ".join(f"<{name}>" for name in seen) or "<nothing>"
    held = names.display(state.holding) if state.holding else "nothing"
    return HabitatScene(f"Robot sees {listed}, holds <{held}>.", state)


@dataclass(frozen=True)
class HabitatStep:
    """One parsed plan step: its skill word, what it was about, and the option id it maps to."""

    skill: str               # "navigate", "pick", "place", "open", "close" or "unknown"
    target: str | None       # the plain target name, or the step's text for unknown steps
    option: int | None       # index into layout.options; None for unknown steps

    def __str__(self) -> str:
        return f"{self.skill} <{self.target}>"


_VERBS = (  # (pattern at the start of a step, skill); first match wins
    (re.compile(r"^(navigate|go|move|walk|head|return|drive)\b"), "navigate"),
    (re.compile(r"^(pick|grab|take|get|grasp|lift)\b"), "pick"),
    (re.compile(r"^(place|put|drop|release|set|deliver)\b"), "place"),
    (re.compile(r"^open\b"), "open"),
    (re.compile(r"^(close|shut)\b"), "close"),
)


def parse_habitat_plan(text: str, layout: TaskLayout, names: EntityNames) -> tuple[HabitatStep, ...]:
    """Parse ``"navigate to <object>, pick <object>"`` into steps with option ids."""
    steps = []
    for part in text.split(","):
        part = " ".join(part.strip().lower().split())
        if not part:
            continue
        skill = next((name for pattern, name in _VERBS if pattern.search(part)), None)
        targets = [names.resolve(token) for token in angle_tokens(part) if token]
        option = None
        if skill is not None and targets and None not in targets:
            option = _option_for(skill, targets, layout)
        if option is None:
            steps.append(HabitatStep("unknown", part, None))
        else:
            steps.append(HabitatStep(skill, names.display(targets[0]), option))
    return tuple(steps)


def _option_for(skill: str, targets: list[str], layout: TaskLayout) -> int | None:
    def first(prefix: str, args: tuple[str, ...]) -> int | None:
        return next((i for i, o in enumerate(layout.options)
                     if o.action.startswith(prefix) and o.args[:len(args)] == args), None)

    if skill == "navigate":
        return first("nav", (targets[0],))
    if skill == "pick":
        return next((i for i, o in enumerate(layout.options) if o.action == "pick" and o.args[0] == targets[0]), None)
    if skill == "place":  # place <object> [on <goal>], or place on <goal> (the object whose goal it is)
        obj = targets[0] if targets[0] in layout.objects else None
        destinations = [t for t in targets if t != obj]
        if destinations and destinations[0] not in layout.goals:
            return None  # e.g. "place <object> in <cabinet1>": no such option
        goal = destinations[0] if destinations else layout.goal_of.get(obj)
        if obj is None:
            obj = next((o for o, g in layout.goal_of.items() if g == goal), None)
        if obj is None or goal is None:
            return None
        return next((i for i, o in enumerate(layout.options) if o.action == "place" and o.args[:2] == (obj, goal)), None)
    return first(skill, (targets[0],))  # open / close: open_cab_by_name, close_fridge_by_name, ...


_SENTENCE = re.compile(r"^Robot sees (?P<seen>.*), holds <(?P<held>[^<>]*)>\.$")


def goal_name(object_name: str) -> str:
    """The plain name of an object's goal: ``object`` -> ``goal``, ``object2`` -> ``goal2``."""
    return "goal" + object_name[len("object"):]


class HabitatOraclePlanSource:
    """Scripted correct plans for Habitat sentences: a control without LLM errors.

    Holding an object: go to its goal and place it. Otherwise: open a closed receptacle that is in sight
    and holds the object, then fetch the object (the first one in sight, else ``object``/``object1``) and
    place it on its goal. Sentences do not say which objects are already placed, so with several objects
    the oracle may ask for a placed one again; rearrange_easy has one.
    """

    name = "oracle"

    def plan_distribution(self, sentence: str) -> list[tuple[str, float]] | None:
        match = _SENTENCE.match(sentence)
        if match is None:
            return None
        seen = [t for t in angle_tokens(match["seen"]) if t and t != "nothing"]
        held = match["held"]
        if held.startswith("object"):
            goal = goal_name(held)
            return [(f"navigate to <{goal}>, place <{held}> on <{goal}>", 1.0)]
        if held != "nothing":
            return None
        obj = next((t for t in seen if t.startswith("object")), "object")
        goal = goal_name(obj)
        closed = [t[len("closed "):] for t in seen if t.startswith("closed ")]
        opening = f"open <{closed[0]}>, " if closed else ""
        return [(f"{opening}navigate to <{obj}>, pick <{obj}>, navigate to <{goal}>, place <{obj}> on <{goal}>", 1.0)]
