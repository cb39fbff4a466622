"""HTTP client for any server that speaks the OpenAI chat-completions format.

The LLM teacher needs ``n`` sampled answers per question.  Servers differ in
whether they honour the ``n`` request field (vLLM and OpenAI do, many
proxies and llama.cpp-style servers silently return one choice), so
:class:`ChatCompletionsClient` asks for ``n`` once, notices when fewer
choices come back, and from then on fetches the answers with concurrent
single-answer requests.

Failures are retried a bounded number of times with exponential backoff
(connection errors, timeouts, HTTP 429 and 5xx; ``Retry-After`` is honoured
up to a cap) and then surface as one :class:`LLMServerError` whose one-line
message names the URL, what went wrong and what to check.  The API key is
read from an environment variable and never appears in logs, exceptions,
``repr()`` or :meth:`ChatCompletionsClient.settings`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

__all__ = ["ChatCompletionsClient", "LLMServerError", "DEFAULT_API_KEY_ENV"]

log = logging.getLogger(__name__)

DEFAULT_API_KEY_ENV = "LLM4TEACH_API_KEY"
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Servers that reject n > 1 outright (instead of ignoring it) answer with one of these.
_N_REJECTED_STATUSES = frozenset({400, 422})
# A refused connection means nothing is listening; waiting longer rarely helps.
_MAX_CONNECT_RETRIES = 2
_CONNECT_BACKOFF_CAP = 0.5


class LLMServerError(RuntimeError):
    """The LLM server could not produce an answer; the message says why and what to check."""


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
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _endpoint(base_url: str) -> str:
    """Return the chat-completions URL for ``base_url`` given with or without ``/v1``."""
    base = base_url.strip().rstrip("/")
    for suffix in ("/chat/completions", "/v1"):
        if base.endswith(suffix):
            base = base[: -len(suffix)].rstrip("/")
    return base + "/v1/chat/completions"


class ChatCompletionsClient:
    """Thread-safe client for ``POST {base_url}/v1/chat/completions``.

    Args:
        base_url: server root, with or without a trailing ``/v1``.
        model: model name sent in every request.
        temperature: sampling temperature.
        timeout: seconds allowed for one HTTP request (connect timeout is capped at 10 s).
        max_retries: retries after the first attempt for 429/5xx/timeouts
            (refused connections get at most 2 short retries).
        backoff_base: first retry delay in seconds; doubles on every retry.
        max_backoff: cap in seconds for any single wait, including ``Retry-After``.
        max_concurrency: most requests in flight at once when filling answers.
        max_tokens: answer length limit sent to the server.
        api_key_env: name of the environment variable holding the API key;
            sent as ``Authorization: Bearer ...`` only when set.
    """

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
    ):
        if max_retries < 0 or max_concurrency < 1 or timeout <= 0:
            raise ValueError("need max_retries >= 0, max_concurrency >= 1 and timeout > 0")
        self.base_url = base_url
        self.url = _endpoint(base_url)
        self.model = model
        self.temperature = float(temperature)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.max_backoff = float(max_backoff)
        self.max_concurrency = int(max_concurrency)
        self.max_tokens = int(max_tokens)
        self.api_key_env = api_key_env
        self._api_key = _Secret(os.environ.get(api_key_env) or None)
        # None until the first n > 1 request tells us whether the server honours n.
        self.server_honours_n: bool | None = None
        self.requests_made = 0
        self._count_lock = threading.Lock()
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            limits=httpx.Limits(max_connections=self.max_concurrency),
        )

    def __repr__(self) -> str:
        return f"ChatCompletionsClient(url={self.url!r}, model={self.model!r})"

    def settings(self) -> dict:
        """Return the non-secret settings as a JSON-able dict (for config.json)."""
        return {
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
            "api_key_env": self.api_key_env,
            "api_key_set": self._api_key.reveal() is not None,
        }

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._http.close()

    def __enter__(self) -> "ChatCompletionsClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ public

    def complete(self, messages: list[dict], n: int) -> list[str]:
        """Return ``n`` answer texts for the chat ``messages``.

        Raises:
            LLMServerError: the server stayed unreachable or kept failing.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        answers: list[str] = []
        if n == 1 or self.server_honours_n is not False:
            answers = self._ask_with_n(messages, n)
        missing = n - len(answers)
        if missing > 0:
            answers += self._ask_singly(messages, missing)
        if len(answers) < n:
            raise self._fail(
                f"replies carried {len(answers)} of {n} requested answers (empty 'choices')",
                f"check that the server really serves chat completions for model {self.model!r}",
            )
        return answers[:n]

    def check_reachable(self) -> None:
        """Fail fast, with the one-line error, if nothing answers at the server's address.

        Sends ``GET /v1/models`` (cheap; no generation). Any HTTP answer, even 404 from a server without
        that route, counts as reachable; only connection failures and timeouts raise.
        """
        models_url = self.url[: -len("/chat/completions")] + "/models"
        try:
            self._http.get(models_url, headers=self._headers(), timeout=min(self.timeout, 10.0))
        except httpx.ConnectError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else "cannot connect"
            raise self._fail(f"{reason} ({_one_line(exc, 120)})",
                             "check that the server is running and that --llm_url is right") from None
        except httpx.TimeoutException:
            raise self._fail("no answer to GET /v1/models within 10s",
                             "check that the server is running and that --llm_url is right") from None

    # ----------------------------------------------------------------- helpers

    def _ask_with_n(self, messages: list[dict], n: int) -> list[str]:
        """One request asking for ``n`` choices; learns whether ``n`` is honoured."""
        try:
            answers = self._post(messages, n)
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

    def _ask_singly(self, messages: list[dict], count: int) -> list[str]:
        """Get ``count`` answers with concurrent single-answer requests."""
        workers = min(self.max_concurrency, count)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm") as pool:
            results = list(pool.map(lambda _: self._post(messages, 1), range(count)))
        # A server may hand out more than one choice even when asked for one.
        return [answer for batch in results for answer in batch][:count]

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

    def _fail(self, what: str, hint: str) -> "LLMServerError":
        return LLMServerError(f"LLM server at {self.url}: {what}; {hint}")

    def _post(self, messages: list[dict], n: int) -> list[str]:
        """POST one request (with retries) and return the answer texts it carried."""
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "n": n,
            "max_tokens": self.max_tokens,
        }
        check_server = (
            f"check that the server is running, that --llm_url is right "
            f"and that it serves model {self.model!r}"
        )
        attempt = 0
        connect_failures = 0
        while True:
            self._count_request()
            try:
                response = self._http.post(self.url, json=body, headers=self._headers())
            except httpx.ConnectError as exc:
                connect_failures += 1
                if connect_failures > min(self.max_retries, _MAX_CONNECT_RETRIES):
                    reason = "connection refused" if "refused" in str(exc).lower() else "cannot connect"
                    raise self._fail(
                        f"{reason} after {connect_failures - 1} retries ({_one_line(exc, 120)})",
                        check_server,
                    ) from None
                delay = self._wait(attempt, cap=_CONNECT_BACKOFF_CAP)
                log.warning("%s: cannot connect, retrying in %.2fs", self.url, delay)
            except httpx.TimeoutException:
                if attempt >= self.max_retries:
                    raise self._fail(
                        f"no answer within {self.timeout:g}s after {attempt} retries",
                        "check that the server is not overloaded or raise --llm_timeout; " + check_server,
                    ) from None
                delay = self._wait(attempt)
                log.warning("%s: timed out, retrying in %.2fs", self.url, delay)
            except httpx.HTTPError as exc:  # protocol errors, dropped connections
                if attempt >= self.max_retries:
                    raise self._fail(
                        f"{type(exc).__name__} after {attempt} retries ({_one_line(exc, 120)})",
                        check_server,
                    ) from None
                delay = self._wait(attempt)
                log.warning("%s: %s, retrying in %.2fs", self.url, type(exc).__name__, delay)
            else:
                status = response.status_code
                if status < 300:
                    return self._parse(response, check_server)
                detail = _one_line(response.text, 160)
                if n > 1 and status in _N_REJECTED_STATUSES:
                    # Possibly a server that refuses n > 1; single requests will tell.
                    raise _NRejected()
                if status not in _RETRY_STATUSES:
                    raise self._fail(f"HTTP {status} ({detail})", self._hint_for(status, check_server))
                if attempt >= self.max_retries:
                    raise self._fail(f"HTTP {status} after {attempt} retries ({detail})", check_server)
                delay = self._wait(attempt, response.headers.get("Retry-After"))
                log.warning("%s: HTTP %d, retrying in %.2fs", self.url, status, delay)
            attempt += 1
            time.sleep(delay)

    def _hint_for(self, status: int, check_server: str) -> str:
        if status in (401, 403):
            return f"check the API key in environment variable {self.api_key_env}"
        if status == 404:
            return f"check that --llm_url points at the server root and that it serves model {self.model!r}"
        return check_server

    def _parse(self, response: httpx.Response, check_server: str) -> list[str]:
        """Return the message contents of a chat-completions response."""
        try:
            choices = response.json()["choices"]
            return [(choice.get("message") or {}).get("content") or "" for choice in choices]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise self._fail(
                f"reply is not in chat-completions format ({_one_line(response.text, 120)})",
                check_server,
            ) from None


class _NRejected(Exception):
    """Internal signal: the server refused a request with n > 1."""
