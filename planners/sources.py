"""Plan sources: sentence -> distribution over plan texts.

A source answers with ``[(plan_text, probability), ...]`` (probabilities summing to 1), or None when it has
no answer for the sentence. Sentences reach a source in canonical form (colours replaced by
``color1``/``color2``, see :mod:`planners.planner`).

* :class:`RecordedPlanSource` replays recorded LLM answers (``planners/data/recorded_vicuna33b_plans.json``).
* :class:`OraclePlanSource` writes the correct plan for any sentence: a control without LLM errors.
* The live LLM source lives in :mod:`planners.llm_source`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

RECORDED_PLANS_PATH = Path(__file__).parent / "data" / "recorded_vicuna33b_plans.json"


def normalise_distribution(pairs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Merge identical plans (after trimming spaces) and rescale probabilities to sum to exactly 1."""
    merged: dict[str, float] = {}
    for plan, prob in pairs:
        if prob < 0:
            raise ValueError(f"negative probability {prob} for plan '{plan}'")
        key = " ".join(plan.split())
        merged[key] = merged.get(key, 0.0) + float(prob)
    total = sum(merged.values())
    if total <= 0:
        raise ValueError("plan probabilities sum to zero")
    return [(plan, prob / total) for plan, prob in merged.items()]


class RecordedPlanSource:
    """Replays the plan distributions recorded for one task's table."""

    name = "recorded"

    def __init__(self, table: str, path: Path = RECORDED_PLANS_PATH):
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read recorded plans from {path}: {err}") from None
        if table not in data:
            raise ValueError(f"recorded plans file {path} has no table '{table}'; it has: {', '.join(data)}")
        self.table = table
        self._plans = {entry["observation"]: normalise_distribution(
                           [(p["plan"], p["probability"]) for p in entry["plans"]])
                       for entry in data[table]}

    def plan_distribution(self, sentence: str) -> list[tuple[str, float]] | None:
        return self._plans.get(sentence)

    def sentences(self) -> list[str]:
        """All sentences with a recorded answer."""
        return list(self._plans)


_SENTENCE = re.compile(r"^Agent sees (?P<seen>.*), holds <(?P<held>[^<>]*)>\.$")
_OBJECT = re.compile(r"<([^<>]+)>")


class OraclePlanSource:
    """Scripted correct plans: fetch the key that opens a seen door, open that door, explore otherwise."""

    name = "oracle"

    def plan_distribution(self, sentence: str) -> list[tuple[str, float]] | None:
        match = _SENTENCE.match(sentence)
        if match is None:
            return None
        seen = [name for name in _OBJECT.findall(match["seen"]) if name != "nothing"]
        held = None if match["held"] == "nothing" else match["held"]
        keys = [name for name in seen if name.endswith("key")]
        doors = [name for name in seen if "door" in name]
        return [(self._plan(keys, doors, held), 1.0)]

    @staticmethod
    def _opens(key: str, door: str) -> bool:
        key_color, door_color = key.rsplit(" ", 1)[0:-1], door.rsplit(" ", 1)[0:-1]
        return key_color == door_color  # plain "key"/"door1" have no colour and always match

    def _plan(self, keys: list[str], doors: list[str], held: str | None) -> str:
        if held is not None:
            door = next((d for d in doors if self._opens(held, d)), None)
            if door:
                return f"go to <{door}>, open <{door}>"
            right_key = next((k for k in keys for d in doors if self._opens(k, d)), None)
            if right_key:
                return f"drop <{held}>, go to <{right_key}>, pick up <{right_key}>"
            return "explore"
        if doors:
            right_key = next((k for k in keys for d in doors if self._opens(k, d)), None)
        else:  # no door seen yet: a key is surely right only when keys carry no colour
            right_key = next((k for k in keys if k == "key"), None)
        return f"go to <{right_key}>, pick up <{right_key}>" if right_key else "explore"
