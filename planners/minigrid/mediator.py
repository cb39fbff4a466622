"""The mediator: translates between the student's observation and the LLM's language.

* :func:`describe` turns a remembered-map observation into a :class:`Scene`: where the agent is, what it
  holds, which keys and doors it has seen (with their cells), and the sentence the LLM is asked about, e.g.
  ``Agent sees <key>, <door>, holds <nothing>.``
* :func:`parse_plan` turns a plan such as ``go to <key>, pick up <key>`` into a tuple of :class:`Option`.

Object naming follows the recorded Vicuna-33B answers: ``plain`` (``<key>``, ``<door>``), ``colored``
(``<red key>``) and ``numbered`` (``<door1>``, ``<door2>``). Keys are listed before doors, each in the
order of their cells (x, then y), the order the recorded sentences were made with.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, IDX_TO_COLOR, OBJECT_TO_IDX

from envs.remembered_map import AGENT_CHANNEL, COLOR_CHANNEL, OBJECT_CHANNEL, STATE_CHANNEL
from planners.tokens import first_angle_token

NAMING_STYLES = ("plain", "colored", "numbered")
KEY, DOOR = OBJECT_TO_IDX["key"], OBJECT_TO_IDX["door"]
COLOR_NAMES = tuple(COLOR_TO_IDX)


@dataclass(frozen=True)
class Scene:
    """What the teacher knows about one observation."""

    sentence: str
    agent_pos: tuple[int, int]
    agent_dir: int
    carrying: str | None                     # name of the carried object, e.g. "key" or "red key"
    objects: dict[str, tuple[int, int]]       # seen, not carried: name -> cell


@dataclass(frozen=True)
class Option:
    """One step of a plan: a skill and the object it applies to (as named in the sentence)."""

    skill: str          # "explore", "go_to", "pick_up", "drop", "open" or "unknown"
    target: str | None  # e.g. "key", "red door", "door1"; None for explore

    def __str__(self) -> str:
        return self.skill if self.target is None else f"{self.skill} <{self.target}>"


Plan = tuple[Option, ...]


def describe(obs: np.ndarray, naming: str = "plain") -> Scene:
    """Describe a ``(4, width, height)`` remembered-map observation (see ``envs/remembered_map.py``)."""
    # flatnonzero + divmod rather than argwhere: this runs for every env step and argwhere is several times slower
    height = obs.shape[2]
    agent_cells = np.flatnonzero(obs[AGENT_CHANNEL])
    if len(agent_cells) != 1:
        raise ValueError(f"observation must show exactly one agent, found {len(agent_cells)}")
    ax, ay = divmod(int(agent_cells[0]), height)
    agent_dir = int(obs[AGENT_CHANNEL, ax, ay]) - 1
    objects_channel = obs[OBJECT_CHANNEL]
    colors = obs[COLOR_CHANNEL]

    carrying = None
    if objects_channel[ax, ay] in (KEY, DOOR):
        carrying = _object_name(objects_channel[ax, ay], colors[ax, ay], naming, index=None)

    seen: list[tuple[str, tuple[int, int]]] = []
    for kind in (KEY, DOOR):
        cells = [divmod(int(flat), height) for flat in np.flatnonzero(objects_channel == kind)]
        cells = [cell for cell in cells if cell != (ax, ay)]
        for number, (x, y) in enumerate(cells, start=1):
            index = number if kind == DOOR else None
            seen.append((_object_name(kind, colors[x, y], naming, index), (x, y)))

    listed = ", ".join(f"<{name}>" for name, _ in seen) or "<nothing>"
    sentence = f"Agent sees {listed}, holds <{carrying or 'nothing'}>."
    return Scene(sentence, (ax, ay), agent_dir, carrying, dict(seen))


def door_is_open(obs: np.ndarray, cell: tuple[int, int]) -> bool:
    """Whether the remembered map shows an open door at ``cell``."""
    return obs[OBJECT_CHANNEL][cell] == DOOR and obs[STATE_CHANNEL][cell] == 0


def _object_name(kind: int, color: int, naming: str, index: int | None) -> str:
    noun = "key" if kind == KEY else "door"
    if naming == "colored":
        return f"{IDX_TO_COLOR[int(color)]} {noun}"
    if naming == "numbered" and index is not None:
        return f"{noun}{index}"
    return noun


_VERBS = (  # (pattern at the start of an option, skill); first match wins
    (re.compile(r"^explore\b"), "explore"),
    (re.compile(r"^(go|move|walk|navigate)( over)? to\b"), "go_to"),
    (re.compile(r"^(pick up|pickup|pick|grab|take|get)\b"), "pick_up"),
    (re.compile(r"^(drop|put down|release)\b"), "drop"),
    (re.compile(r"^(open|unlock|toggle)\b"), "open"),
)


def parse_plan(text: str) -> Plan:
    """Parse ``"go to <key>, pick up <key>"`` into options; options it cannot read become ``unknown``.

    The first ``<...>`` of an option is its target (``open <door> with <key>`` targets the door).
    """
    options = []
    for part in text.split(","):
        part = " ".join(part.strip().lower().split())
        if not part:
            continue
        skill = next((name for pattern, name in _VERBS if pattern.search(part)), "unknown")
        target = first_angle_token(part)
        if skill == "explore":
            target = None
        elif target is None:
            # "go to east" names no object we know: keep the words so the option is reported, not lost.
            skill, target = "unknown", part
        options.append(Option(skill, target))
    return tuple(options)
