"""Scripted plan sources for MiniGrid sentences: controls that need no LLM.

* :class:`OraclePlanSource` (``--planner oracle``): the correct plan for any sentence.
* :class:`AdversarialPlanSource` (``--planner adversarial``): a plausible but wrong plan wherever the
  situation calls for acting on an object: head for a door before fetching its key, pick up the key that
  does not fit (or ignore the one that does), drop the right key before opening. Where nothing useful is in
  sight it explores, as the oracle does. Its plans never pick up a key that opens a seen door and always
  drop such a key when it is held, so a teacher following them never opens a door: a control for whether
  the annealed distillation frees the student from a wrong teacher.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE = re.compile(r"^Agent sees (?P<seen>.*), holds <(?P<held>[^<>]*)>\.$")
_OBJECT = re.compile(r"<([^<>]+)>")


@dataclass(frozen=True)
class Situation:
    """What a MiniGrid sentence says: the keys and doors in sight and what is held."""

    keys: list[str]
    doors: list[str]
    held: str | None

    @classmethod
    def read(cls, sentence: str) -> "Situation | None":
        match = _SENTENCE.match(sentence)
        if match is None:
            return None
        seen = [name for name in _OBJECT.findall(match["seen"]) if name != "nothing"]
        held = None if match["held"] == "nothing" else match["held"]
        return cls([n for n in seen if n.endswith("key")], [n for n in seen if "door" in n], held)

    def opens(self, key: str, door: str) -> bool:
        """Whether ``key`` opens ``door``: same colour words (plain names carry none and always match)."""
        return key.split()[:-1] == door.split()[:-1]

    def right_key(self) -> str | None:
        """A key in sight that opens a door in sight (with no door in sight: a plain, colourless key)."""
        if self.doors:
            return next((k for k in self.keys for d in self.doors if self.opens(k, d)), None)
        return next((k for k in self.keys if k == "key"), None)

    def door_for(self, key: str) -> str | None:
        return next((d for d in self.doors if self.opens(key, d)), None)


class ScriptedPlanSource:
    """A plan source giving one scripted plan (probability 1) per readable sentence; subclasses write ``plan``."""

    name = "scripted"

    def plan_distribution(self, sentence: str) -> list[tuple[str, float]] | None:
        situation = Situation.read(sentence)
        return None if situation is None else [(self.plan(situation), 1.0)]

    @staticmethod
    def plan(s: Situation) -> str:
        raise NotImplementedError


class OraclePlanSource(ScriptedPlanSource):
    """Scripted correct plans: fetch the key that opens a seen door, open that door, explore otherwise."""

    name = "oracle"

    @staticmethod
    def plan(s: Situation) -> str:
        if s.held is not None:
            door = s.door_for(s.held)
            if door:
                return f"go to <{door}>, open <{door}>"
            right_key = s.right_key()
            if right_key:
                return f"drop <{s.held}>, go to <{right_key}>, pick up <{right_key}>"
            return "explore"
        right_key = s.right_key()
        return f"go to <{right_key}>, pick up <{right_key}>" if right_key else "explore"


class AdversarialPlanSource(ScriptedPlanSource):
    """Scripted wrong plans (see the module docstring); explores where nothing useful is in sight."""

    name = "adversarial"

    @staticmethod
    def plan(s: Situation) -> str:
        if s.held is not None:
            if s.door_for(s.held) or not s.doors:  # the right key (or maybe right): put it down
                door = s.doors[0] if s.doors else None
                return f"drop <{s.held}>, go to <{door}>, open <{door}>" if door else f"drop <{s.held}>, explore"
            return f"go to <{s.doors[0]}>, open <{s.doors[0]}>"  # a key that fits no door in sight: try anyway
        wrong_keys = [k for k in s.keys if k != s.right_key() and not any(s.opens(k, d) for d in s.doors)]
        if wrong_keys and s.doors:
            return f"go to <{wrong_keys[0]}>, pick up <{wrong_keys[0]}>"
        if s.doors:
            return f"go to <{s.doors[0]}>, open <{s.doors[0]}>"  # the door before its key
        return "explore"  # keys without a door in sight are left where they are
