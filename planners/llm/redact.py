"""Remove secrets (API keys, tokens) from text before it is shown to a client or logged.

A plain ``text.replace(key, "***")`` misses the ways an upstream error can carry a key:
cut off by a length limit, escaped inside a JSON string (``\\/``, ``\\u0061``, doubled
backslashes), or URL-encoded (``%2F``).  :func:`redact` decodes those escapes into a
character view of the text, finds every run of at least ``min_run`` characters that also
occurs in a secret, and replaces the original spelling of that run with ``***``.  So a
whole key, a truncated key (its first ``min_run`` characters are enough) and an escaped
key are all removed; a fragment shorter than ``min_run`` is left, which is the price of
not masking ordinary words.

Run time is linear in the text (times ``min_run``); no regular expression backtracks.
"""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["redact", "clip", "MASK", "MIN_RUN"]

MASK = "***"
MIN_RUN = 8

# One "unit" of the text: an escape sequence that stands for one character, or one raw character.
# A run of backslashes is one unit whatever follows it (possessive, escape optional), so the
# pattern never fails part-way and a long run of backslashes cannot make the engine backtrack.
_UNIT = re.compile(
    r"(?P<bs>\\++)(?:u(?P<u>[0-9a-fA-F]{4})|x(?P<x>[0-9a-fA-F]{2})|(?P<c>[^\\]))?"
    r"|%(?P<pct>[0-9a-fA-F]{2})"
    r"|(?P<raw>.)",
    re.DOTALL,
)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _units(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Decode ``text`` into one character per unit, with each unit's span in ``text``."""
    chars: list[str] = []
    spans: list[tuple[int, int]] = []
    for match in _UNIT.finditer(text):
        if match.group("u") is not None:
            char = chr(int(match.group("u"), 16))
        elif match.group("x") is not None:
            char = chr(int(match.group("x"), 16))
        elif match.group("c") is not None:
            escaped = match.group("c")
            char = _SIMPLE_ESCAPES.get(escaped, escaped)
        elif match.group("pct") is not None:
            char = chr(int(match.group("pct"), 16))
        elif match.group("bs") is not None:  # backslashes with nothing escapable after them
            char = "\\"
        else:
            char = match.group("raw")
        chars.append(char)
        spans.append(match.span())
    return chars, spans


def redact(text: str, secrets: Iterable[str | None], min_run: int = MIN_RUN) -> str:
    """Return ``text`` with every secret, whole, truncated or escaped, replaced by ``***``.

    Args:
        text: any text (an upstream error body, an exception message, a log line).
        secrets: the values to hide; ``None`` and empty strings are skipped.
        min_run: shortest piece of a secret that is masked (a secret shorter than this is
            masked only whole).
    """
    secrets = [s for s in secrets if s]
    if not secrets or not text:
        return text
    chars, spans = _units(text)
    covered = [False] * len(chars)
    decoded = "".join(chars)
    for secret in secrets:
        width = min(min_run, len(secret))
        windows = {secret[i:i + width] for i in range(len(secret) - width + 1)}
        for start in range(len(decoded) - width + 1):
            if decoded[start:start + width] in windows:
                for i in range(start, start + width):
                    covered[i] = True
    if not any(covered):
        return text
    pieces: list[str] = []
    position = 0  # next unmasked offset in ``text``
    i = 0
    while i < len(chars):
        if not covered[i]:
            i += 1
            continue
        j = i
        while j < len(chars) and covered[j]:
            j += 1
        pieces.append(text[position:spans[i][0]])
        pieces.append(MASK)
        position = spans[j - 1][1]
        i = j
    pieces.append(text[position:])
    return "".join(pieces)


def clip(text: object, secrets: Iterable[str | None], limit: int = 300) -> str:
    """One line of at most ``limit`` characters, with secrets masked before the cut."""
    # Masking looks at a generous prefix only (it is linear but not free); a secret cut by
    # this first cut is still masked, since any long enough piece of it is.
    masked = redact(str(text)[: 8 * limit + 64], list(secrets))
    line = " ".join(masked.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
