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
"""

from __future__ import annotations

import re

__all__ = ["extract_plan", "normalise_plan"]

# "Action:", "ACTIONS :", "action：" (full-width colon, common after Chinese text).
_ACTION_LABEL = re.compile(r"\bactions?\s*[:：]", re.IGNORECASE)
# Markdown decoration that may wrap the label or the plan.
_MARKDOWN = re.compile(r"```[a-zA-Z0-9_-]*|`|\*\*|__")
_FULLWIDTH = str.maketrans({"，": ",", "；": ";", "｛": "{", "｝": "}", "。": ".", "：": ":"})
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"<\s*([^<>]*?)\s*>")
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
    text = text.translate(_FULLWIDTH).lower()
    text = _TOKEN.sub(lambda m: "<" + _SPACE.sub(" ", m.group(1)) + ">", text)
    options = []
    for option in _OPTION_SEPARATOR.split(text):
        option = _SPACE.sub(" ", option).strip(_STRIP_CHARS)
        option = _LIST_NUMBER.sub("", option).strip(_STRIP_CHARS)
        if option:
            options.append(option)
    return ", ".join(options)


def _block_after(text: str, start: int) -> tuple[str, bool] | None:
    """Return the plan text that follows an ``Action:`` label ending at ``start``.

    The flag says whether the plan was wrapped in braces.  An opening brace
    without a closing one is treated like a brace-less plan on that line.
    """
    rest = text[start:].lstrip(" \t")
    if rest.startswith("{"):
        close = rest.find("}")
        if close != -1:
            return rest[1:close], True
        return rest[1:].split("\n", 1)[0], False
    line = rest.split("\n", 1)[0]
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
    for label in reversed(list(_ACTION_LABEL.finditer(text))):
        block = _block_after(text, label.end())
        if block is None:
            continue
        raw, braced = block
        plan = normalise_plan(raw)
        if braced:
            return plan or None
        if plan and _looks_like_plan(plan):
            return plan
    return None
