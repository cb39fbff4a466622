"""``<...>`` tokens in plan texts and sentences, found in linear time.

Plans come from LLM answers, so nothing here may backtrack: a pattern like ``<\\s*([^<>]*?)\\s*>`` takes
cubic time on ``"<" + many spaces``.  A token is a ``<`` and the next ``>`` with no bracket between
them (as the old pattern had it); its text is what lies between, trimmed.
"""
from __future__ import annotations

import re

__all__ = ["angle_spans", "angle_tokens", "first_angle_token"]

_BRACKET = re.compile(r"[<>]")


def angle_spans(text: str) -> list[tuple[int, int]]:
    """(index of ``<``, index of ``>``) of every token in ``text``, in order; one pass over the brackets."""
    spans = []
    opened = -1
    for match in _BRACKET.finditer(text):
        if match.group() == "<":
            opened = match.start()
        elif opened >= 0:
            spans.append((opened, match.start()))
            opened = -1
    return spans


def angle_tokens(text: str) -> list[str]:
    """The trimmed text of every ``<...>`` token in ``text``, in order."""
    return [text[start + 1:end].strip() for start, end in angle_spans(text)]


def first_angle_token(text: str) -> str | None:
    """The trimmed text of the first ``<...>`` token whose text is not blank, or None."""
    for token in angle_tokens(text):
        if token:
            return token
    return None
