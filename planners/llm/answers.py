"""Pull the plan out of an LLM teacher's free-text answer.

The teacher prompt asks the model to end its answer with a line such as
``Action: {go to <key>, pick up <key>}``.  Real models decorate that line
with markdown, change its case, write a preamble in another language, drop
the braces, or restate the prompt's worked example before giving their own
answer.  :func:`extract_plan` copes with all of these using plain string
matching; model text is never evaluated as code.

Which block wins: when an answer contains several ``Action:`` blocks, the
LAST one is the answer.  Models that restate the prompt's example do so
before answering, and models that "think aloud" put their final answer at
the end.  A last block in braces is decisive: if it is empty the answer is
unparseable (None), rather than silently falling back to an earlier,
probably restated, example.  An ``Action:`` label followed by prose instead
of plan steps (no braces, no ``<...>`` token) is treated as a mere mention
and skipped in favour of the block before it.

Everything runs in time linear in the answer's length (answers come from a
server we do not control): no pattern can backtrack, and a block without
braces ends at the end of its line or at the next ``Action:`` label, so the
blocks examined never overlap.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from planners.tokens import angle_spans

__all__ = ["extract_plan", "normalise_plan"]

# "Action:", "ACTIONS :", "action：" (full-width colon, common after Chinese text).
_ACTION_LABEL = re.compile(r"\bactions?\s*[:：]", re.IGNORECASE)
# Markdown decoration that may wrap the label or the plan.
_MARKDOWN = re.compile(r"```[a-zA-Z0-9_-]*|`|\*\*|__")
_FULLWIDTH = str.maketrans({"，": ",", "；": ";", "｛": "{", "｝": "}", "。": ".", "：": ":"})
_SPACE = re.compile(r"\s+")
_HORIZONTAL_SPACE = re.compile(r"[ \t]*")
_LIST_NUMBER = re.compile(r"^(?:\d+[.)]|[-*•])\s+")
# A brace-less plan must look like plan steps, not prose: it needs a <token>
# or must be one of the bare skills that take no object.
_BARE_SKILLS = {"explore"}
# Options are separated by commas; semicolons and line breaks (numbered lists) count too.
_OPTION_SEPARATOR = re.compile(r"[,;\n]")
_STRIP_CHARS = " \t.\"'[](){}"


def normalise_plan(text: str) -> str:
    """Return ``text`` in the canonical plan spelling used everywhere.

    Lower-case, single spaces, ``<...>`` tokens kept (inner spaces trimmed),
    options (split at commas, semicolons and line breaks) joined by ``", "``, list numbering, quotes and trailing periods
    removed, empty options dropped.  Used for recorded and live plans alike so
    identical plans compare equal.
    """
    text = _tidy_tokens(text.translate(_FULLWIDTH).lower())
    options = []
    for option in _OPTION_SEPARATOR.split(text):
        option = _SPACE.sub(" ", option).strip(_STRIP_CHARS)
        option = _LIST_NUMBER.sub("", option).strip(_STRIP_CHARS)
        if option:
            options.append(option)
    return ", ".join(options)


def _tidy_tokens(text: str) -> str:
    """Trim the spaces inside every ``<...>`` token and squash its inner runs of spaces to one."""
    parts, done = [], 0
    for start, end in angle_spans(text):
        parts += [text[done:start], "<", " ".join(text[start + 1:end].split()), ">"]
        done = end + 1
    parts.append(text[done:])
    return "".join(parts)


def _next_at_or_after(positions: list[int], index: int, default: int) -> int:
    """The first of the sorted ``positions`` that is >= ``index``, else ``default``."""
    found = bisect_left(positions, index)
    return positions[found] if found < len(positions) else default


def _block_after(text: str, start: int, stop: int, closes: list[int], newlines: list[int]) -> tuple[str, bool] | None:
    """Return the plan text that follows an ``Action:`` label ending at ``start``.

    The flag says whether the plan was wrapped in braces.  A brace-less plan
    ends at the end of its line or at ``stop`` (where the next label starts);
    an opening brace without a closing one is treated like a brace-less plan.
    """
    begin = _HORIZONTAL_SPACE.match(text, start).end()
    if begin < len(text) and text[begin] == "{":
        close = _next_at_or_after(closes, begin, -1)
        if close != -1:
            return text[begin + 1:close], True
        begin += 1
    end = min(_next_at_or_after(newlines, begin, len(text)), stop)
    line = text[begin:end]
    return (line, False) if line.strip() else None


def _looks_like_plan(plan: str) -> bool:
    """Tell plan steps from prose for plans written without braces."""
    if "<" in plan and ">" in plan:
        return True
    return all(option in _BARE_SKILLS for option in plan.split(", "))


def extract_plan(answer: str) -> str | None:
    """Return the normalised plan in ``answer``, or None if there is none.

    See the module docstring for the accepted spellings and for why the last
    ``Action:`` block wins.
    """
    if not answer:
        return None
    text = _MARKDOWN.sub("", answer.translate(_FULLWIDTH))
    labels = list(_ACTION_LABEL.finditer(text))
    closes = [match.start() for match in re.finditer("}", text)]
    newlines = [match.start() for match in re.finditer("\n", text)]
    for number in range(len(labels) - 1, -1, -1):
        stop = labels[number + 1].start() if number + 1 < len(labels) else len(text)
        block = _block_after(text, labels[number].end(), stop, closes, newlines)
        if block is None:
            continue
        raw, braced = block
        plan = normalise_plan(raw)
        if braced:
            return plan or None
        if plan and _looks_like_plan(plan):
            return plan
    return None
