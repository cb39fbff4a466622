"""Plan sources: sentence -> distribution over plan texts.

A source answers with ``[(plan_text, probability), ...]`` (probabilities summing to 1), or None when it has
no answer for the sentence. Sentences reach a source in canonical form (colours replaced by
``color1``/``color2``, see :mod:`planners.planner`).

* :class:`RecordedPlanSource` replays recorded LLM answers (``planners/data/recorded_vicuna33b_plans.json``).
* The scripted controls (oracle, adversarial) know their task family's sentences: they live with the family
  (:mod:`planners.minigrid.scripted`, :mod:`planners.habitat.mediator`).
* The live LLM source lives in :mod:`planners.llm.source`.
"""
from __future__ import annotations

import json
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
