"""The planner: sentence -> distribution over parsed plans, from any plan source, cached per sentence.

Colours can be abstracted before a source is asked: the first colour mentioned becomes ``color1``, the
second ``color2`` (the form of the recorded ColoredDoorKey answers), and the plans' placeholders are mapped
back. So one answer serves every colour combination, and an LLM is asked once per situation, not per colour.
A sentence the source cannot answer falls back to the plan ``explore``; such sentences are counted.
"""
from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from minigrid.core.constants import COLOR_NAMES

log = logging.getLogger(__name__)
_COLOR_WORD = re.compile(r"\b(" + "|".join(COLOR_NAMES) + r")\b")
_PLACEHOLDER = re.compile(r"\bcolor(\d+)\b")
FALLBACK_PLAN_TEXT = "explore"
Plan = tuple


def abstract_colors(sentence: str) -> tuple[str, list[str]]:
    """Replace colour words by ``color1``, ``color2``... in order of first mention; returns (text, colours)."""
    colors: list[str] = []
    for word in _COLOR_WORD.findall(sentence):
        if word not in colors:
            colors.append(word)
    text = _COLOR_WORD.sub(lambda m: f"color{colors.index(m.group(1)) + 1}", sentence)
    return text, colors


def restore_colors(text: str, colors: list[str]) -> str:
    """Inverse of :func:`abstract_colors` for a plan; unknown placeholders are left as they are."""
    def back(match: re.Match) -> str:
        index = int(match.group(1)) - 1
        return colors[index] if 0 <= index < len(colors) else match.group(0)
    return _PLACEHOLDER.sub(back, text)


class Planner:
    """Asks a plan source about sentences and remembers the parsed answers.

    Args:
        source: anything with ``plan_distribution(sentence) -> [(plan_text, probability)] | None``.
        parse: plan text -> a plan (a tuple of options), the task family's parser.
        abstract_color_words: replace colours by color1/color2 before asking (ColoredDoorKey).
    """

    def __init__(self, source, parse: Callable[[str], Plan], abstract_color_words: bool = False):
        self.source = source
        self.abstract_color_words = abstract_color_words
        self.parse = parse
        self.fallback_plan = parse(FALLBACK_PLAN_TEXT)
        self._cache: dict[str, list[tuple[Plan, float]]] = {}
        self.unanswered_sentences: dict[str, int] = {}
        self.unknown_options: dict[str, int] = {}
        self.queries = 0

    def plans_for(self, sentence: str) -> list[tuple[Plan, float]]:
        """Distribution over plans for ``sentence``; probabilities sum to 1."""
        plans = self._cache.get(sentence)
        if plans is None:
            plans, temporary = self._ask(sentence)
            if not temporary:  # stand-in answers during an LLM outage are asked again later
                self._cache[sentence] = plans
        if sentence in self.unanswered_sentences:
            self.unanswered_sentences[sentence] += 1
        return plans

    def settled(self, sentence: str) -> bool:
        """Whether the answer for ``sentence`` is final (not a stand-in given during an LLM outage)."""
        return sentence in self._cache

    def prefetch(self, sentences: list[str]) -> None:
        """Ask about several new sentences at once when the source can take concurrent questions."""
        new = [s for s in dict.fromkeys(sentences) if s not in self._cache]
        if len(new) > 1 and getattr(self.source, "concurrent", False):
            with ThreadPoolExecutor(max_workers=min(len(new), 8)) as pool:
                list(pool.map(self.plans_for, new))

    def _ask(self, sentence: str) -> tuple[list[tuple[Plan, float]], bool]:
        self.queries += 1
        colors: list[str] = []
        asked = sentence
        if self.abstract_color_words:
            asked, colors = abstract_colors(sentence)
        answer = self.source.plan_distribution(asked)
        if not answer:
            log.warning("no plan for %r from the %s planner: falling back to explore",
                        asked, getattr(self.source, "name", "plan"))
            self.unanswered_sentences[sentence] = 0
            return [(self.fallback_plan, 1.0)], False
        merged: dict[Plan, float] = {}
        for text, prob in answer:
            plan = self.parse(restore_colors(text, colors)) or self.fallback_plan
            for option in plan:
                if option.skill == "unknown":
                    self.unknown_options[option.target] = self.unknown_options.get(option.target, 0) + 1
            merged[plan] = merged.get(plan, 0.0) + prob
        total = sum(merged.values())
        return [(plan, prob / total) for plan, prob in merged.items()], getattr(answer, "temporary", False)

    @property
    def fallback_count(self) -> int:
        """How many times a sentence without an answer was met (each meeting counts)."""
        return sum(self.unanswered_sentences.values())
