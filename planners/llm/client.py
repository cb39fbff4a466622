"""HTTP clients for servers that speak the OpenAI format: chat completions and (text) completions.

:class:`ChatCompletionsClient` posts chat messages to ``/v1/chat/completions`` (chat models, as in the
paper); :class:`CompletionsClient` posts a text prompt to ``/v1/completions`` with stop sequences (base
models prompted with worked examples).  Everything else is shared.

The LLM teacher needs ``n`` sampled answers per question.  Servers differ in
whether they honour the ``n`` request field (vLLM and OpenAI do, many
proxies and llama.cpp's server silently return one choice), so the client
asks for ``n`` once, notices when fewer choices come back, and from then on
fetches the answers with concurrent single-answer requests
(``max_concurrency`` in flight).

Every HTTP request has one deadline, ``timeout`` seconds from when it is
sent, that covers everything it does: connecting, sending, every read, its
retries and the waits between them (see :mod:`planners.llm.transport`).
The deadline is per request, not per question, because a server that
answers one request at a time (llama.cpp's) takes ``n`` times as long for
``n`` single answers: a per-question deadline would turn a slow but working
server into an outage as soon as ``n`` grows.  A request waits for the
others in flight on such a server, so ``timeout`` must allow for
``max_concurrency`` answers.  Once one request of a question fails, the
question's remaining requests are not sent, so a server that hangs costs
one ``timeout`` per question whatever ``n`` is.  A caller may also cap the
whole question (``complete(..., timeout=)``: the outage budget does).
Failures come in two kinds:

* :class:`LLMTransientError` - timeouts, HTTP 408/429/5xx, refused or broken
  connections.  Retried with exponential backoff (``Retry-After`` honoured up
  to a cap) while the deadline allows, then raised: the caller's outage
  policy decides what happens next.
* :class:`LLMConfigError` - HTTP 400/401/403/404 and other 4xx, a malformed
  URL, a reply that is not chat-completions JSON.  Never retried: a setting
  is wrong, and the one-line message names it.

Answers longer than ``max_answer_chars`` are replaced by a
:class:`DroppedAnswer` (a short note that holds no plan), and the reply body is
read with a byte cap sized from ``n`` and that limit, so an endless answer
never reaches memory whole.  The API key is read from an environment
variable and never appears in logs, exceptions, ``repr()`` or
:meth:`ChatCompletionsClient.settings`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from planners.llm.transport import (BadURL, BodyTooLarge, ConnectFailed, ConnectionLost, DeadlineExceeded,
                                    Reply, exchange, split_url)

__all__ = ["ChatCompletionsClient", "CompletionsClient", "build_client", "API_DEFAULT_MAX_TOKENS", "LLMServerError", "LLMConfigError", "LLMTransientError", "DroppedAnswer",
           "DEFAULT_API_KEY_ENV", "DEFAULT_MAX_ANSWER_CHARS"]

log = logging.getLogger(__name__)

DEFAULT_API_KEY_ENV = "LLM4TEACH_API_KEY"
DEFAULT_MAX_ANSWER_CHARS = 4000
# Answer length when --llm_max_tokens is 0: a chat answer may reason before its plan (the prompt asks it to think
# briefly); a completion is the plan alone, cut by the stop sequences.
API_DEFAULT_MAX_TOKENS = {"chat": 256, "completions": 48}
# Servers that reject n > 1 outright (instead of ignoring it) answer with one of these.
_N_REJECTED_STATUSES = frozenset({400, 422})
# A refused connection means nothing is listening; waiting longer rarely helps.
_MAX_CONNECT_RETRIES = 2
_CONNECT_BACKOFF_CAP = 0.5
_CONNECT_TIMEOUT_CAP = 10.0
# Reply-size cap: JSON may spell a character in up to 12 bytes (an escaped surrogate pair); plus per-choice
# and per-reply room for the rest of the JSON.
_BYTES_PER_CHAR = 12
_CHOICE_SLACK = 4096
_REPLY_SLACK = 65536
_UPPER_WORD = re.compile(r"[A-Z0-9_]+")


class LLMServerError(RuntimeError):
    """The LLM server could not produce an answer; the one-line message says why and what to check."""


class LLMConfigError(LLMServerError):
    """A setting is wrong (URL, model, API key): retrying cannot help."""


class LLMTransientError(LLMServerError):
    """The server failed in a way that may pass (timeout, overload, restart): an outage."""


class DroppedAnswer(str):
    """Stands in for an answer refused for its size: a short note that holds no plan."""


def is_transient_status(status: int) -> bool:
    """HTTP statuses worth retrying: request timeout, rate limit and server-side failures."""
    return status in (408, 429) or status >= 500


class _Secret:
    """Holds the API key so that printing or inspecting the client never shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None):
        self._value = value

    def reveal(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "<hidden>" if self._value else "<unset>"

    __str__ = __repr__


def _one_line(text: str, limit: int = 200) -> str:
    """Squash ``text`` onto one line and cut it to ``limit`` characters."""
    text = " ".join(str(text)[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _endpoint(base_url: str, path: str) -> str:
    """Return the URL of ``/v1/<path>`` for ``base_url`` given with or without ``/v1`` (or a full endpoint)."""
    base = base_url.strip().rstrip("/")
    for suffix in ("/chat/completions", "/completions", "/v1"):
        if base.endswith(suffix):
            base = base[: -len(suffix)].rstrip("/")
    return f"{base}/v1/{path}"


def _error_message(reply: Reply) -> str:
    """The server's own explanation of an error reply (OpenAI's ``error.message`` when present)."""
    text = reply.text()
    try:
        payload = json.loads(text)
    except ValueError:
        return text
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        for field in ("detail", "message", "error"):
            if isinstance(payload.get(field), str):
                return payload[field]
    return text


def _named_key_variable(message: str) -> str | None:
    """An environment variable like ``ZHIPUAI_API_KEY`` that an error message names, if any."""
    for word in _UPPER_WORD.findall(message[:4000]):
        if word.endswith("_API_KEY") and word[0].isalpha():
            return word
    return None


class _OpenAIClient:
    """What both APIs share: retries, deadlines, the ``n`` detection, size caps and the API key.

    Subclasses say where to post (``path``), how a question becomes a request body (:meth:`_body`) and
    where a choice's text is (:meth:`_choice_text`).

    Args:
        base_url: server root, with or without a trailing ``/v1``.
        model: model name sent in every request.
        temperature: sampling temperature.
        timeout: deadline in seconds for one request: connect, all reads, its retries and waits
            (the connect step alone is capped at 10 s).
        max_retries: retries after the first attempt for 408/429/5xx/timeouts/dropped connections
            (refused connections get at most 2 short retries); the deadline may cut them short.
        backoff_base: first retry delay in seconds; doubles on every retry.
        max_backoff: cap in seconds for any single wait, including ``Retry-After``.
        max_concurrency: most requests in flight at once when filling answers.
        max_tokens: answer length limit sent to the server.
        api_key_env: name of the environment variable holding the API key;
            sent as ``Authorization: Bearer ...`` only when set.
        max_answer_chars: longest answer kept; longer ones become :class:`DroppedAnswer`.

    Raises:
        LLMConfigError: ``base_url`` is not a usable http(s) URL.
    """

    api = ""
    path = ""
    form = ""  # the reply format, in error messages

    def __init__(
        self,
        base_url: str,
        model: str,
        temperature: float = 0.7,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff_base: float = 1.0,
        max_backoff: float = 30.0,
        max_concurrency: int = 8,
        max_tokens: int = 256,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
    ):
        if max_retries < 0 or max_concurrency < 1 or not timeout > 0 or max_answer_chars < 1:
            raise ValueError("need max_retries >= 0, max_concurrency >= 1, timeout > 0 and max_answer_chars >= 1")
        self.base_url = base_url
        self.url = _endpoint(base_url, self.path)
        try:
            split_url(self.url)
        except BadURL as exc:
            raise LLMConfigError(f"--llm_url {base_url!r} is not usable: {exc}; give the server root, "
                                 f"e.g. http://localhost:8000") from None
        self.model = model
        self.temperature = float(temperature)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.max_backoff = float(max_backoff)
        self.max_concurrency = int(max_concurrency)
        self.max_tokens = int(max_tokens)
        self.max_answer_chars = int(max_answer_chars)
        self.api_key_env = api_key_env
        self._api_key = _Secret(os.environ.get(api_key_env) or None)
        # None until the first n > 1 request tells us whether the server honours n.
        self.server_honours_n: bool | None = None
        self.requests_made = 0
        self.dropped_answers = 0
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, model={self.model!r})"

    def settings(self) -> dict:
        """Return the non-secret settings as a JSON-able dict (for config.json)."""
        return {
            "api": self.api,
            "base_url": self.base_url,
            "url": self.url,
            "model": self.model,
            "temperature": self.temperature,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "backoff_base": self.backoff_base,
            "max_backoff": self.max_backoff,
            "max_concurrency": self.max_concurrency,
            "max_tokens": self.max_tokens,
            "max_answer_chars": self.max_answer_chars,
            "api_key_env": self.api_key_env,
            "api_key_set": self._api_key.reveal() is not None,
        }

    def close(self) -> None:
        """Nothing to release: every request uses its own connection, closed when it ends."""

    def __enter__(self) -> "_OpenAIClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ public

    def complete(self, query, n: int, timeout: float | None = None, seed: int | None = None) -> list[str]:
        """Return ``n`` answer texts for ``query`` (chat messages or a prompt text, by the API).

        Each request gets the client's ``timeout``; ``timeout`` given here caps the whole question too.
        With ``seed``, answer ``i`` is asked with seed ``seed + i`` (one request asking for ``n`` sends ``seed``).
        Answers over ``max_answer_chars`` come back as :class:`DroppedAnswer` notes.

        Raises:
            LLMConfigError: a setting is wrong (not retried).
            LLMTransientError: the server stayed unreachable, kept failing or ran out of time.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        cap = None if timeout is None else time.monotonic() + float(timeout)
        answers: list[str] = []
        if n == 1 or self.server_honours_n is not False:
            answers = self._ask_with_n(query, n, cap, seed)
        missing = n - len(answers)
        if missing > 0:
            answers += self._ask_singly(query, missing, cap, None if seed is None else seed + len(answers))
        if len(answers) < n:
            raise self._fail(
                LLMConfigError,
                f"replies carried {len(answers)} of {n} requested answers (empty 'choices')",
                f"check that the server really serves {self.form} for --llm_model {self.model!r}",
            )
        return answers[:n]

    # ----------------------------------------------------------------- helpers

    def _deadline(self, cap: float | None) -> tuple[float, float]:
        """(deadline, its length in seconds) of a request sent now: the client's timeout, within ``cap``."""
        now = time.monotonic()
        deadline = now + self.timeout if cap is None else min(now + self.timeout, cap)
        return deadline, max(deadline - now, 0.0)

    def _ask_with_n(self, query, n: int, cap: float | None, seed: int | None) -> list[str]:
        """One request asking for ``n`` choices; learns whether ``n`` is honoured."""
        try:
            answers = self._post(query, n, *self._deadline(cap), seed=seed)
        except _NRejected:
            log.info("%s rejected n=%d; asking for answers one at a time", self.url, n)
            self.server_honours_n = False
            return []
        if n > 1 and len(answers) < n:
            log.info("%s returned %d of %d requested choices; asking for the rest one at a time",
                     self.url, len(answers), n)
            self.server_honours_n = False
        elif n > 1:
            self.server_honours_n = True
        return answers

    def _ask_singly(self, query, count: int, cap: float | None, seed: int | None) -> list[str]:
        """Get ``count`` answers with concurrent single-answer requests, each with its own deadline (and
        seed ``seed + i``).

        Once one request fails, the ones not yet sent are skipped and its error is raised.
        """
        failed = threading.Event()

        def one(i: int) -> list[str]:
            if failed.is_set():
                return []
            try:
                return self._post(query, 1, *self._deadline(cap), seed=None if seed is None else seed + i)
            except BaseException:
                failed.set()
                raise

        workers = min(self.max_concurrency, count)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm") as pool:
            futures = [pool.submit(one, i) for i in range(count)]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        # A server may hand out more than one choice even when asked for one.
        return [answer for future in futures for answer in future.result()][:count]

    def _headers(self) -> dict:
        key = self._api_key.reveal()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _count_request(self) -> None:
        with self._count_lock:
            self.requests_made += 1

    def _wait(self, attempt: int, retry_after: str | None = None, cap: float | None = None) -> float:
        """Seconds to sleep before retry number ``attempt`` (0-based)."""
        cap = self.max_backoff if cap is None else min(cap, self.max_backoff)
        delay = self.backoff_base * (2 ** attempt)
        if retry_after is not None:
            try:
                delay = max(float(retry_after), 0.0)
            except ValueError:  # an HTTP date; fall back to our own backoff
                pass
        return min(delay, cap)

    def _fail(self, kind: type, what: str, hint: str) -> LLMServerError:
        return kind(f"LLM server at {self.url}: {what}; {hint}")

    def _max_body(self, n: int) -> int:
        return n * (self.max_answer_chars * _BYTES_PER_CHAR + _CHOICE_SLACK) + _REPLY_SLACK

    def _body(self, query, n: int) -> dict:
        raise NotImplementedError

    def _choice_text(self, choice: dict):
        raise NotImplementedError

    def _post(self, query, n: int, deadline: float, budget: float, seed: int | None = None) -> list[str]:
        """POST one request (with retries, within ``deadline``) and return the answer texts it carried."""
        body = json.dumps({"model": self.model, **self._body(query, n), "temperature": self.temperature, "n": n,
                           "max_tokens": self.max_tokens, **({"seed": seed} if seed is not None else {})}
                          ).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self._headers()}
        check_server = (
            f"check that the server is running, that --llm_url is right "
            f"and that it serves --llm_model {self.model!r}"
        )
        attempt = 0
        connect_failures = 0
        while True:
            self._count_request()
            try:
                reply = exchange("POST", self.url, body=body, headers=headers, deadline=deadline,
                                 max_body=self._max_body(n), connect_timeout=min(self.timeout, _CONNECT_TIMEOUT_CAP))
            except BadURL as exc:
                raise self._fail(LLMConfigError, str(exc), "fix --llm_url") from None
            except BodyTooLarge as exc:
                log.warning("%s: %s; the %d answers count as invalid", self.url, exc, n)
                return [self._dropped(None) for _ in range(n)]
            except DeadlineExceeded:
                raise self._fail(LLMTransientError,
                                 f"no complete answer within the {budget:g}s deadline of one request ({attempt} "
                                 f"retries)", self._slow_hint() + "; " + check_server) from None
            except ConnectFailed as exc:
                connect_failures += 1
                problem = str(exc)
                if connect_failures > min(self.max_retries, _MAX_CONNECT_RETRIES):
                    raise self._fail(LLMTransientError, f"{problem} after {connect_failures - 1} retries",
                                     check_server) from None
                delay = self._wait(attempt, cap=_CONNECT_BACKOFF_CAP)
            except ConnectionLost as exc:
                problem = _one_line(exc, 160)
                if attempt >= self.max_retries:
                    raise self._fail(LLMTransientError, f"{problem} after {attempt} retries", check_server) from None
                delay = self._wait(attempt)
            else:
                status = reply.status
                if status < 300:
                    return self._parse(reply, n, check_server)
                detail = _one_line(_error_message(reply), 160)
                if n > 1 and status in _N_REJECTED_STATUSES:
                    # Possibly a server that refuses n > 1; single requests will tell.
                    raise _NRejected()
                if not is_transient_status(status):
                    raise self._fail(LLMConfigError, f"HTTP {status} ({detail})", self._hint_for(status, reply))
                problem = f"HTTP {status}"
                if attempt >= self.max_retries:
                    raise self._fail(LLMTransientError, f"HTTP {status} after {attempt} retries ({detail})",
                                     check_server)
                delay = self._wait(attempt, reply.headers.get("retry-after"))
            if time.monotonic() + delay >= deadline:
                raise self._fail(LLMTransientError,
                                 f"{problem}, and the {budget:g}s deadline leaves no time for retry {attempt + 1}",
                                 self._slow_hint() + "; " + check_server)
            log.warning("%s: %s, retrying in %.2fs", self.url, problem, delay)
            attempt += 1
            time.sleep(delay)

    def _slow_hint(self) -> str:
        """What to change for a server too slow for the deadline (a server answering one request at a time
        makes each request wait for the others in flight)."""
        return (f"a slow server needs a larger --llm_timeout (now {self.timeout:g}s per request; one that answers "
                f"one request at a time needs the time of --llm_max_concurrency {self.max_concurrency} answers), "
                f"or shorter answers (--llm_max_tokens, now {self.max_tokens})")

    def _hint_for(self, status: int, reply: Reply) -> str:
        """What to fix for a configuration error ``status``: the setting or variable to look at."""
        if status in (401, 403):
            named = _named_key_variable(_error_message(reply))
            if named and named != self.api_key_env:
                return (f"the server reports that its own upstream key was refused: fix {named} in the environment "
                        f"where the server runs (the ChatGLM proxy reads ZHIPUAI_API_KEY)")
            if self._api_key.reveal() is None:
                return (f"no API key was sent: set the environment variable {self.api_key_env} "
                        f"(--llm_api_key_env names the variable)")
            return (f"check the API key in the environment variable {self.api_key_env} "
                    f"(--llm_api_key_env names the variable)")
        if status == 404:
            return (f"check that --llm_url points at the server root and that the server serves "
                    f"--llm_model {self.model!r}")
        return f"check --llm_model {self.model!r} and --llm_url: the server refused the request"

    def _dropped(self, length: int | None) -> DroppedAnswer:
        with self._count_lock:
            self.dropped_answers += 1
        size = f"of {length:,} characters " if length is not None else ""
        return DroppedAnswer(f"[answer {size}dropped: over the {self.max_answer_chars:,}-character limit]")

    def _parse(self, reply: Reply, n: int, check_server: str) -> list[str]:
        """Return the answer texts of a reply (oversized ones dropped)."""
        try:
            choices = json.loads(reply.body)["choices"]
            texts = [_content(self._choice_text(choice)) for choice in choices]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise self._fail(
                LLMConfigError,
                f"reply is not in {self.form} format ({_one_line(reply.text(), 120)})",
                "check that --llm_url points at an OpenAI-compatible server and that --llm_api "
                f"{self.api} is an API it serves; " + check_server,
            ) from None
        return [self._dropped(len(text)) if len(text) > self.max_answer_chars else text for text in texts]


class ChatCompletionsClient(_OpenAIClient):
    """Thread-safe client for ``POST {base_url}/v1/chat/completions``: ``complete(messages, n)``.

    Takes the arguments of :class:`_OpenAIClient`.
    """

    api = "chat"
    path = "chat/completions"
    form = "chat-completions"

    def _body(self, messages: list[dict], n: int) -> dict:
        return {"messages": messages}

    def _choice_text(self, choice: dict):
        return (choice.get("message") or {}).get("content")


class CompletionsClient(_OpenAIClient):
    """Thread-safe client for ``POST {base_url}/v1/completions``: ``complete(prompt_text, n)``.

    Generation ends at any of ``stop`` (the server leaves the stop text out of the answer). Takes the other
    arguments of :class:`_OpenAIClient`.
    """

    api = "completions"
    path = "completions"
    form = "completions"

    def __init__(self, base_url: str, model: str, stop: tuple[str, ...] = (), **settings):
        super().__init__(base_url, model, **settings)
        self.stop = tuple(stop)

    def settings(self) -> dict:
        return {**super().settings(), "stop": list(self.stop)}

    def _body(self, prompt: str, n: int) -> dict:
        return {"prompt": prompt, **({"stop": list(self.stop)} if self.stop else {})}

    def _choice_text(self, choice: dict):
        return choice["text"]  # a choice without it (say, a chat reply) is a reply in the wrong format


def build_client(api: str, base_url: str, model: str, stop: tuple[str, ...] = (), **settings) -> _OpenAIClient:
    """The client of ``api`` ("chat" or "completions"); ``stop`` is for completions only."""
    if api == "chat":
        return ChatCompletionsClient(base_url, model, **settings)
    if api == "completions":
        return CompletionsClient(base_url, model, stop=stop, **settings)
    raise ValueError(f"unknown LLM API {api!r}; choose chat or completions")


def _content(content) -> str:
    """A message's text: a string, or the text parts of a list of parts; anything else counts as empty."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content
                       if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


class _NRejected(Exception):
    """Internal signal: the server refused a request with n > 1."""
