"""The planner: sentence -> distribution over parsed plans, from any plan source, cached per sentence.

Colours are abstracted before a source is asked: the first colour mentioned becomes ``color1``, the second
``color2`` (the form of the recorded ColoredDoorKey answers), and the plans' placeholders are mapped back.
So one answer serves every colour combination, and an LLM is asked once per situation, not per colour.
A sentence the source cannot answer falls back to ``explore``; such sentences are counted and reported.
"""
from __future__ import annotations

import logging
import re

from typing import Callable

from planners.mediator import COLOR_NAMES, Option, Plan, parse_plan

log = logging.getLogger(__name__)
_COLOR_WORD = re.compile(r"\b(" + "|".join(COLOR_NAMES) + r")\b")
_PLACEHOLDER = re.compile(r"\bcolor(\d+)\b")
EXPLORE_PLAN: Plan = (Option("explore", None),)


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
        abstract_color_words: replace colours by color1/color2 before asking (ColoredDoorKey).
        parse: plan text -> options (the MiniGrid parser by default; Habitat brings its own).
    """

    def __init__(self, source, abstract_color_words: bool = False, parse: Callable[[str], Plan] = parse_plan):
        self.source = source
        self.abstract_color_words = abstract_color_words
        self.parse = parse
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

    def prefetch(self, sentences: list[str]) -> None:
        """Ask about several new sentences at once when the source can take concurrent questions."""
        new = [s for s in dict.fromkeys(sentences) if s not in self._cache]
        if len(new) > 1 and getattr(self.source, "concurrent", False):
            from concurrent.futures import ThreadPoolExecutor
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
            return [(EXPLORE_PLAN, 1.0)], False
        merged: dict[Plan, float] = {}
        for text, prob in answer:
            plan = self.parse(restore_colors(text, colors)) or EXPLORE_PLAN
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
