"""Soft LLM teacher: turn sampled LLM answers into a distribution over plans.

For one observation sentence the LLM is asked ``n_samples`` times; identical
plans are counted to give each plan a probability (the paper's "soft"
teacher).  Answers are cached, so the same question is never sent twice.

Failures, by design:

* an answer without a readable ``Action: {...}`` is re-asked, then counts as
  ``explore``; if the LLM answers *nothing* readable for several questions in
  a row it is speaking garbage and :class:`LLMGarbageError` stops the run;
* if the server goes away mid-run (:class:`LLMServerError` after the client's
  retries), the source answers from the ``fallback`` source (the recorded
  plans) or with ``explore``, warns once, and keeps the LLM off for
  ``outage_cooldown`` seconds before trying again.  Such stand-in answers are
  neither cached on disk nor remembered by the planner, so the LLM is asked
  again once it is back.
"""

from __future__ import annotations

import logging
import threading
import time

from planners.llm.cache import AnswerCache, CacheKey
from planners.llm.client import LLMServerError
from planners.llm.answers import extract_plan

__all__ = ["LLMPlanSource", "LLMGarbageError", "TemporaryAnswer", "FALLBACK_PLAN", "system_prompt"]

log = logging.getLogger(__name__)

# What an answer that stays unparseable after re-asking is taken to mean.
FALLBACK_PLAN = "explore"


class LLMGarbageError(RuntimeError):
    """The LLM keeps answering without any parseable plan; the message shows one answer."""


class TemporaryAnswer(list):
    """A stand-in distribution given while the LLM is unreachable: not to be remembered."""

    temporary = True


class LLMPlanSource:
    """Plan distributions from a live LLM, memoised in an :class:`AnswerCache`.

    Args:
        client: a :class:`planners.llm.client.ChatCompletionsClient` (anything
            with ``complete(messages, n)``, ``temperature`` and optionally
            ``requests_made`` and ``model``).
        cache: where answers are looked up first and stored afterwards.
        system_prompt: the teacher prompt (task description and examples).
        n_samples: answers asked per observation.
        max_reasks: how many extra rounds unparseable answers are re-asked.
        model_name: model name for cache keys; defaults to ``client.model``.
        task: task name stored with cache entries (for export to the recorded format).
        fallback: source answering while the server is down (e.g. the recorded plans).
        garbage_limit: consecutive questions without any parseable answer before giving up.
        outage_cooldown: seconds to keep the LLM off after it failed.

    Counters: ``llm_calls`` (HTTP requests), ``cache_hits``, ``cache_misses``,
    ``fallbacks`` (live answers that became ``"explore"``) and
    ``teacher_seconds`` (wall time of the LLM requests, summed: concurrent requests each count, so
    this bounds the time training waited from above).
    """

    name = "llm"
    concurrent = True  # the planner may ask about several sentences from threads at once

    def __init__(
        self,
        client,
        cache: AnswerCache,
        system_prompt: str,
        n_samples: int = 10,
        max_reasks: int = 2,
        model_name: str | None = None,
        task: str | None = None,
        fallback=None,
        garbage_limit: int = 3,
        outage_cooldown: float = 30.0,
    ):
        if n_samples < 1 or max_reasks < 0:
            raise ValueError("need n_samples >= 1 and max_reasks >= 0")
        self.client = client
        self.cache = cache
        self.system_prompt = system_prompt
        self.n_samples = int(n_samples)
        self.max_reasks = int(max_reasks)
        self.model_name = model_name if model_name is not None else client.model
        self.task = task
        self.fallback = fallback
        self.garbage_limit = garbage_limit
        self.outage_cooldown = outage_cooldown
        self._garbage_streak = 0
        self._understood_once = False
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.outage_answers = 0
        self._requests_at_start = getattr(client, "requests_made", None)
        self._calls_counted = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.fallbacks = 0
        self.teacher_seconds = 0.0

    @property
    def llm_calls(self) -> int:
        """HTTP requests sent to the LLM by this source (the client's own count when it keeps one)."""
        if self._requests_at_start is not None:
            return self.client.requests_made - self._requests_at_start
        return self._calls_counted

    def key_for(self, sentence: str) -> CacheKey:
        """Return the cache key this source uses for ``sentence``."""
        return CacheKey.build(
            self.model_name, self.system_prompt, sentence, self.client.temperature, self.n_samples
        )

    def counters(self) -> dict:
        """Return the counters as a dict (for logs and config/summary files)."""
        return {
            "llm_calls": self.llm_calls,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "fallbacks": self.fallbacks,
            "outage_answers": self.outage_answers,
            "teacher_seconds": round(self.teacher_seconds, 3),
        }

    def close(self) -> None:
        """Close the answer cache and the HTTP client."""
        self.cache.close()
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    def plan_distribution(self, sentence: str) -> list[tuple[str, float]]:
        """Return (plan, probability) pairs for ``sentence``, most likely first; they sum to 1."""
        key = self.key_for(sentence)
        cached = self.cache.get(key)
        if cached is not None:
            self.cache_hits += 1
            return self._distribution(cached.parsed_plans)
        if time.monotonic() < self._down_until:
            return self._stand_in(sentence)
        self.cache_misses += 1
        try:
            raw, parsed = self._ask(sentence)
        except LLMServerError as err:
            log.warning("%s; answering from the %s until it is back", err,
                        "recorded plans" if self.fallback else f"'{FALLBACK_PLAN}' plan")
            self._down_until = time.monotonic() + self.outage_cooldown
            return self._stand_in(sentence)
        unparsed = sum(plan is None for plan in parsed)
        self.fallbacks += unparsed
        if unparsed == len(parsed):
            self._garbage_streak += 1
            # Nothing readable from the very first question, or from several in a row: not a usable teacher.
            if not self._understood_once or self._garbage_streak >= self.garbage_limit:
                raise LLMGarbageError(
                    f"the LLM at {getattr(self.client, 'url', '?')} gave no parseable 'Action: {{...}}' in "
                    f"{self._garbage_streak} questions in a row (last answer: {' '.join(raw[-1].split())[:120]!r}); "
                    f"check --llm_model and that the model follows the prompt")
            return self._distribution(parsed)  # remembered in this run, but not written to the cache
        self._garbage_streak = 0
        self._understood_once = True
        self.cache.put(key, raw, parsed, task=self.task)
        return self._distribution(parsed)

    def _stand_in(self, sentence: str) -> TemporaryAnswer:
        self.outage_answers += 1
        answer = self.fallback.plan_distribution(sentence) if self.fallback is not None else None
        return TemporaryAnswer(answer or [(FALLBACK_PLAN, 1.0)])

    @staticmethod
    def _distribution(parsed: list[str | None]) -> list[tuple[str, float]]:
        return AnswerCache.distribution([FALLBACK_PLAN if plan is None else plan for plan in parsed])

    def _complete(self, messages: list[dict], n: int) -> list[str]:
        """Ask the client, keeping the HTTP-request and wall-time counters."""
        start = time.perf_counter()
        try:
            return self.client.complete(messages, n)
        finally:
            with self._lock:
                self.teacher_seconds += time.perf_counter() - start
                self._calls_counted += 1

    def _ask(self, sentence: str) -> tuple[list[str], list[str | None]]:
        """Sample answers, re-asking the unparseable ones in batches.

        Returns the final raw answer of every slot and its plan (None if it
        never parsed), index-aligned.
        """
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": sentence},
        ]
        raw = list(self._complete(messages, self.n_samples))
        parsed = [extract_plan(answer) for answer in raw]
        for _ in range(self.max_reasks):
            failed = [i for i, plan in enumerate(parsed) if plan is None]
            if not failed:
                break
            log.info("re-asking %d unparseable answers for %r", len(failed), sentence)
            for i, answer in zip(failed, self._complete(messages, len(failed))):
                raw[i] = answer
                parsed[i] = extract_plan(answer)
        unparsed = sum(plan is None for plan in parsed)
        if unparsed:
            log.warning("%d of %d answers for %r stayed unparseable; using %r",
                        unparsed, len(parsed), sentence, FALLBACK_PLAN)
        return raw, parsed


def system_prompt(prompt: dict | None) -> str:
    """The system message: the task description followed by one worked example."""
    if not prompt or not prompt.get("description"):
        raise ValueError("the task config has no prompt: add prompt.description and prompt.example to its yaml")
    text = prompt["description"].strip()
    if prompt.get("example"):
        text += "\n\nExample:\n" + prompt["example"].strip()
    return text
