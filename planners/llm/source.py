"""Soft LLM teacher: turn sampled LLM answers into a distribution over plans.

For one observation sentence the LLM is asked ``n_samples`` times; identical
plans are counted to give each plan a probability (the paper's "soft"
teacher).  Answers are cached, so the same question is never sent twice.

Failures, by design:

* an answer without a readable ``Action: {...}`` (or longer than the client's
  answer limit) is re-asked, then counts as ``explore``; if the LLM answers
  *nothing* readable for several questions in a row it is speaking garbage and
  :class:`LLMGarbageError` stops the run;
* a configuration error (:class:`~planners.llm.client.LLMConfigError`: wrong
  URL, model or key) always stops the run: retrying or falling back would
  only hide it;
* a server that has not answered once in this run and fails is taken to be
  misconfigured too (wrong ``--llm_url``, server not started): its error stops
  the run, so a wrong address never silently turns into recorded answers;
* a server that answered before and then fails
  (:class:`~planners.llm.client.LLMTransientError`, after the client's retries)
  is an outage, handled as ``on_outage`` says: ``"stop"`` raises
  :class:`LLMOutageError`; ``"fallback"`` answers from the ``fallback`` source
  (the recorded plans) or with ``explore``, keeps the LLM off for
  ``outage_cooldown`` seconds, then asks it again.  The time spent waiting on
  a failing server is bounded per outage by ``outage_budget`` seconds (a
  question asked during an outage gets only what is left of it); once spent,
  the LLM is not asked again in this run.  Stand-in answers are neither
  cached on disk nor remembered by the planner.
* with no client (offline replay) only the cache answers; a sentence missing
  from it is :class:`LLMOfflineMissError` with ``on_outage="stop"``, a
  stand-in answer with ``"fallback"``.
"""

from __future__ import annotations

import logging
import threading
import time

from planners.llm.answers import extract_plan
from planners.llm.cache import AnswerCache, CacheKey
from planners.llm.client import DroppedAnswer, LLMConfigError, LLMTransientError
from planners.llm.prompts import ChatPrompt

__all__ = ["LLMPlanSource", "LLMGarbageError", "LLMOutageError", "LLMOfflineMissError", "TemporaryAnswer",
           "FALLBACK_PLAN", "ON_OUTAGE"]

log = logging.getLogger(__name__)

# What an answer that stays unparseable after re-asking is taken to mean.
FALLBACK_PLAN = "explore"
ON_OUTAGE = ("fallback", "stop")


class LLMGarbageError(RuntimeError):
    """The LLM keeps answering without any parseable plan; the message shows one answer."""


class LLMOutageError(RuntimeError):
    """The LLM server failed mid-run and the outage policy says to stop."""


class LLMOfflineMissError(LLMConfigError):
    """Offline replay met a sentence the answer cache does not hold, and the policy says to stop."""


class TemporaryAnswer(list):
    """A stand-in distribution given while the LLM is unreachable: not to be remembered."""

    temporary = True


class _OutageClock:
    """Seconds lost waiting on a failing server in the current outage (overlapping waits counted once)."""

    def __init__(self):
        self.lost = 0.0
        self.total = 0.0
        self._counted_until = float("-inf")

    def add(self, started: float, ended: float) -> float:
        gained = max(0.0, ended - max(started, self._counted_until))
        self._counted_until = max(self._counted_until, ended)
        self.lost += gained
        self.total += gained
        return self.lost

    def reset(self) -> None:
        self.lost = 0.0


class LLMPlanSource:
    """Plan distributions from a live LLM, memoised in an :class:`AnswerCache`.

    Args:
        client: a :mod:`planners.llm.client` client of the prompt's API (anything
            with ``complete(query, n)``, ``temperature`` and optionally
            ``requests_made`` and ``model``), or None to replay the cache only.
        cache: where answers are looked up first and stored afterwards.
        prompt: how a sentence becomes a question (:mod:`planners.llm.prompts`: the chat form or the
            few-shot completions form); a plain text is the chat form's system message.
        n_samples: answers asked per observation.
        max_reasks: how many extra rounds unparseable answers are re-asked.
        model_name: model name for cache keys; defaults to ``client.model`` (required without a client).
        temperature: sampling temperature for cache keys; defaults to ``client.temperature``
            (required without a client).
        task: task name stored with cache entries (for export to the recorded format).
        fallback: source answering while the server is down (e.g. the recorded plans).
        garbage_limit: consecutive questions without any parseable answer before giving up.
        outage_cooldown: seconds to keep the LLM off after it failed.
        on_outage: "fallback" or "stop" (see the module docstring).
        outage_budget: most seconds spent waiting on a failing server per outage (fallback policy).
        seed: sampling seed: answer ``i`` of a question is asked with ``seed + i`` (re-asks go on counting),
            so a server that honours seeds answers the same again; part of the cache key when set.

    Counters: ``llm_calls`` (HTTP requests), ``cache_hits``, ``cache_misses``,
    ``live_answers`` (sentences answered by the server), ``outage_answers``
    (stand-in answers), ``fallbacks`` (live answers that became ``"explore"``),
    ``oversized_answers`` (answers dropped for their size), ``outage_seconds``
    (time spent waiting on a failing server) and ``teacher_seconds`` (wall time
    of the LLM requests, summed: concurrent requests each count, so this
    bounds the time training waited from above).
    """

    name = "llm"
    concurrent = True  # the planner may ask about several sentences from threads at once

    def __init__(
        self,
        client,
        cache: AnswerCache,
        prompt,
        n_samples: int = 10,
        max_reasks: int = 2,
        model_name: str | None = None,
        task: str | None = None,
        fallback=None,
        garbage_limit: int = 3,
        outage_cooldown: float = 30.0,
        on_outage: str = "fallback",
        outage_budget: float = 60.0,
        temperature: float | None = None,
        seed: int | None = None,
    ):
        if n_samples < 1 or max_reasks < 0:
            raise ValueError("need n_samples >= 1 and max_reasks >= 0")
        if on_outage not in ON_OUTAGE:
            raise ValueError(f"on_outage must be one of {ON_OUTAGE}, got {on_outage!r}")
        if client is None and (model_name is None or temperature is None):
            raise ValueError("without a client, model_name and temperature are needed for the cache keys")
        self.client = client
        self.cache = cache
        self.prompt = ChatPrompt(prompt) if isinstance(prompt, str) else prompt
        self.n_samples = int(n_samples)
        self.max_reasks = int(max_reasks)
        self.model_name = model_name if model_name is not None else client.model
        self.temperature = float(temperature if temperature is not None else client.temperature)
        self.task = task
        self.seed = seed
        self.fallback = fallback
        self.garbage_limit = garbage_limit
        self.outage_cooldown = outage_cooldown
        self.on_outage = on_outage
        self.outage_budget = float(outage_budget)
        self._garbage_streak = 0
        self._understood_once = False
        self._reached_server = False
        self._down_until = 0.0
        self._given_up = False
        self._clock = _OutageClock()
        self._warned_offline = False
        self._lock = threading.Lock()
        self._requests_at_start = getattr(client, "requests_made", None)
        self._calls_counted = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.live_answers = 0
        self.outage_answers = 0
        self.fallbacks = 0
        self.oversized_answers = 0
        self.teacher_seconds = 0.0

    @property
    def offline(self) -> bool:
        """True when only the cache answers (no client)."""
        return self.client is None

    @property
    def llm_calls(self) -> int:
        """HTTP requests sent to the LLM by this source (the client's own count when it keeps one)."""
        if self._requests_at_start is not None:
            return self.client.requests_made - self._requests_at_start
        return self._calls_counted

    def key_for(self, sentence: str) -> CacheKey:
        """Return the cache key this source uses for ``sentence``."""
        return CacheKey.build(self.model_name, self.prompt.cache_text, sentence, self.temperature, self.n_samples,
                              self.seed)

    def counters(self) -> dict:
        """Return the counters as a dict (for logs and config/summary files), by the names of
        ``planners.teacher.LLMCounters`` (the planner's own ``fallbacks`` is another counter, so the answers
        that became "explore" are ``unparsed_answers`` here)."""
        return {
            "llm_calls": self.llm_calls,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "live_answers": self.live_answers,
            "unparsed_answers": self.fallbacks,
            "outage_answers": self.outage_answers,
            "oversized_answers": self.oversized_answers,
            "outage_seconds": round(self._clock.total, 3),
            "llm_seconds": round(self.teacher_seconds, 3),
        }

    def close(self) -> None:
        """Close the answer cache and the HTTP client."""
        self.cache.close()
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    def plan_distribution(self, sentence: str) -> list[tuple[str, float]]:
        """Return (plan, probability) pairs for ``sentence``, most likely first; they sum to 1.

        Raises:
            LLMConfigError: a setting is wrong, or the server never answered in this run.
            LLMOutageError: the server failed mid-run and ``on_outage`` is "stop".
            LLMOfflineMissError: offline, the sentence is not cached and ``on_outage`` is "stop".
            LLMGarbageError: the LLM keeps answering nothing parseable.
        """
        key = self.key_for(sentence)
        cached = self.cache.get(key)
        if cached is not None:
            with self._lock:
                self.cache_hits += 1
            return self._distribution(cached.parsed_plans)
        if self.client is None:
            return self._offline_miss(sentence)
        allowed, timeout = self._may_ask()
        if not allowed:
            return self._stand_in(sentence)
        with self._lock:
            self.cache_misses += 1
        started = time.monotonic()
        try:
            raw, parsed = self._ask(sentence, timeout)
        except LLMTransientError as err:
            return self._outage(sentence, err, started)
        with self._lock:
            self._reached_server = True
            self._clock.reset()
            self.oversized_answers += sum(isinstance(answer, DroppedAnswer) for answer in raw)
        unparsed = sum(plan is None for plan in parsed)
        with self._lock:
            self.fallbacks += unparsed
        if unparsed == len(parsed):
            self._garbage_streak += 1
            # Nothing readable from the very first question, or from several in a row: not a usable teacher.
            if not self._understood_once or self._garbage_streak >= self.garbage_limit:
                dropped = isinstance(raw[-1], DroppedAnswer)
                raise LLMGarbageError(
                    f"the LLM at {getattr(self.client, 'url', '?')} gave no parseable 'Action: {{...}}' in "
                    f"{self._garbage_streak} questions in a row (last answer: {' '.join(raw[-1].split())[:120]!r}); "
                    + ("raise --llm_max_answer_chars if such long answers are expected, or "
                       if dropped else "") + "check --llm_model and that the model follows the prompt")
            return self._distribution(parsed)  # remembered in this run, but not written to the cache
        self._garbage_streak = 0
        self._understood_once = True
        with self._lock:
            self.live_answers += 1
        stored = self.cache.put_first(key, raw, parsed, task=self.task)
        if stored.raw_answers != raw:
            log.info("another run stored its answers for %r first; using those", sentence)
        return self._distribution(stored.parsed_plans)

    # -- outages ------------------------------------------------------------------------------------
    def _may_ask(self) -> tuple[bool, float | None]:
        """Whether the LLM may be asked now, and the deadline for the question (None = the client's)."""
        with self._lock:
            if self._given_up or time.monotonic() < self._down_until:
                return False, None
            if self._clock.lost > 0:  # in an outage: only what is left of its budget
                return True, max(self.outage_budget - self._clock.lost, 0.001)
            return True, None

    def _outage(self, sentence: str, err: LLMTransientError, started: float) -> TemporaryAnswer:
        with self._lock:
            lost = self._clock.add(started, time.monotonic())
            if not self._reached_server:
                raise err  # it never answered in this run: a wrong address or a server not started
            if self.on_outage == "stop":
                raise LLMOutageError(f"{err}; stopping because --llm_on_outage is stop") from None
            where = "recorded plans" if self.fallback else f"'{FALLBACK_PLAN}' plan"
            if lost >= self.outage_budget:
                if not self._given_up:
                    log.warning("%s; this outage has cost %.0fs of waiting (--llm_outage_budget %g): answering "
                                "from the %s for the rest of this run", err, lost, self.outage_budget, where)
                self._given_up = True
            else:
                log.warning("%s; answering from the %s for %gs, then asking again", err, where, self.outage_cooldown)
                self._down_until = time.monotonic() + self.outage_cooldown
        return self._stand_in(sentence)

    def _offline_miss(self, sentence: str) -> TemporaryAnswer:
        if self.on_outage == "stop":
            raise LLMOfflineMissError(
                f"--llm_offline: the answer cache {self.cache.path} has no answer for {sentence!r} with model "
                f"{self.model_name!r} and these prompt and sampling settings; run with the LLM server (without "
                f"--llm_offline), or pass --llm_on_outage fallback to answer such sentences from the recorded plans")
        with self._lock:
            first, self._warned_offline = not self._warned_offline, True
        if first:
            log.warning("--llm_offline: %r is not in the answer cache %s; sentences missing from it are answered "
                        "from the %s (counted as fallback answers)", sentence, self.cache.path,
                        "recorded plans" if self.fallback else f"'{FALLBACK_PLAN}' plan")
        return self._stand_in(sentence)

    def _stand_in(self, sentence: str) -> TemporaryAnswer:
        with self._lock:
            self.outage_answers += 1
        answer = self.fallback.plan_distribution(sentence) if self.fallback is not None else None
        return TemporaryAnswer(answer or [(FALLBACK_PLAN, 1.0)])

    # -- asking -------------------------------------------------------------------------------------
    @staticmethod
    def _distribution(parsed: list[str | None]) -> list[tuple[str, float]]:
        return AnswerCache.distribution([FALLBACK_PLAN if plan is None else plan for plan in parsed])

    def _complete(self, query, n: int, cap: float | None, asked: int = 0) -> list[str]:
        """Ask the client, keeping the HTTP-request and wall-time counters; answers read back in full form.

        ``cap`` (a monotonic time, or None) bounds the whole question, re-asks included; with a seed, the
        answers are seeded from ``seed + asked`` (``asked``: answers this question asked for before).
        """
        start = time.perf_counter()
        options = {} if self.seed is None else {"seed": self.seed + asked}
        if cap is not None:
            options["timeout"] = max(cap - time.monotonic(), 0.001)
        try:
            texts = self.client.complete(query, n, **options)
            return [self.prompt.answer(text) for text in texts]
        finally:
            with self._lock:
                self.teacher_seconds += time.perf_counter() - start
                self._calls_counted += 1

    def _ask(self, sentence: str, timeout: float | None = None) -> tuple[list[str], list[str | None]]:
        """Sample answers, re-asking the unparseable ones in batches.

        Returns the final raw answer of every slot and its plan (None if it
        never parsed), index-aligned.
        """
        query = self.prompt.request(sentence)
        cap = None if timeout is None else time.monotonic() + timeout
        raw = list(self._complete(query, self.n_samples, cap))
        parsed = [extract_plan(answer) for answer in raw]
        asked = self.n_samples
        for _ in range(self.max_reasks):
            failed = [i for i, plan in enumerate(parsed) if plan is None]
            if not failed:
                break
            log.info("re-asking %d unparseable answers for %r", len(failed), sentence)
            answers = self._complete(query, len(failed), cap, asked)
            asked += len(failed)
            for i, answer in zip(failed, answers):
                raw[i] = answer
                parsed[i] = extract_plan(answer)
        unparsed = sum(plan is None for plan in parsed)
        if unparsed:
            log.warning("%d of %d answers for %r stayed unparseable; using %r",
                        unparsed, len(parsed), sentence, FALLBACK_PLAN)
        return raw, parsed

