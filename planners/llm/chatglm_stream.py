"""Server-sent events for the ChatGLM proxy: n upstream GLM streams merged into one OpenAI stream.

The OpenAI chat-completions stream is a sequence of ``data: <chunk JSON>`` events, each chunk an
object ``chat.completion.chunk`` whose ``choices`` carry a ``delta`` (the new text) and, at the end
of each choice, a ``finish_reason``; the stream ends with ``data: [DONE]``.  A failure after the
response has started is sent as ``data: {"error": {...}}`` and the stream ends without ``[DONE]``
(the OpenAI SDK raises ``APIError`` on such an event).

Each of the ``n`` choices is one upstream GLM stream, read by a worker thread (at most
``max_parallel`` at once) into a bounded queue; the generator here turns queue items into events.
Each choice must finish within ``timeout`` seconds of its opening (the socket timeout alone would
let an upstream that trickles one token at a time go on for ever): past it the stream ends with a
504 error event.  A client that goes away stops the workers.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Iterator

import anyio.to_thread

from planners.llm.chatglm_errors import ProxyError

__all__ = ["sse_event", "merged_stream", "finish_reason", "until_disconnect"]

log = logging.getLogger("chatglm_api")

_QUEUE_SIZE = 64
_POLL = 0.1  # seconds between checks of the stop flag while blocked on the queue


def finish_reason(value: str | None) -> str | None:
    """Translate a GLM finish reason to OpenAI's; GLM's generation failure becomes an error."""
    if value == "sensitive":  # GLM's content filter
        return "content_filter"
    if value == "network_error":
        raise ProxyError(502, "upstream_error", "GLM API reported a failure while generating "
                         "(finish_reason network_error)", "upstream_error")
    return value or None


def sse_event(payload: Any) -> bytes:
    """One server-sent event carrying ``payload`` as JSON (or ``[DONE]`` verbatim)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def merged_stream(
    first: tuple[Iterator[Any], Any],
    open_choice: Callable[[int], Any],
    translate: Callable[[Exception], ProxyError],
    *,
    n: int,
    model: str,
    completion_id: str,
    include_usage: bool,
    opened_at: float,
    timeout: float,
    max_parallel: int,
    on_close: Callable[[Any], None] = lambda stream: None,
    stop: threading.Event | None = None,
) -> Iterator[bytes]:
    """Yield the OpenAI events for ``n`` choices, the first of which is already open.

    Args:
        first: choice 0's upstream chunk iterator and its first chunk (read before the HTTP
            status was committed, so that upstream errors could still become a status code).
        open_choice: opens the upstream stream for choice ``i`` (``i >= 1``).
        translate: turns an SDK exception into a :class:`ProxyError`.
        opened_at: ``time.monotonic()`` when choice 0 was opened.
        timeout: seconds each choice may take from its opening to its last chunk.
        on_close: called with each upstream stream object when its reader stops, to free it.
        stop: set it (from any thread) to make the readers quit, e.g. when the client has gone.
    """
    created = int(time.time())
    items: queue.Queue = queue.Queue(maxsize=_QUEUE_SIZE)
    stop = stop if stop is not None else threading.Event()
    parallel = max(1, min(max_parallel, n))
    waves = -(-n // parallel)
    # Choices run in waves of ``parallel``; the whole stream gets each wave's time and a little slack.
    deadline = opened_at + waves * timeout + 1.0

    def put(item) -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                items.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def timed_out() -> ProxyError:
        return ProxyError(504, "upstream_timeout", f"GLM API stream did not finish within {timeout:g} s "
                          "(--upstream_timeout)", "timeout")

    def read(index: int) -> None:
        stream = None
        try:
            if index == 0:
                choice_deadline = opened_at + timeout
                stream, pending = first[0], [first[1]]
            else:
                choice_deadline = time.monotonic() + timeout
                stream, pending = open_choice(index), []
            received = bool(pending)
            for chunk in itertools.chain(pending, stream):
                if stop.is_set():
                    return
                received = True
                put(("chunk", index, chunk))
                if time.monotonic() > choice_deadline:
                    raise timed_out()
            if not received:
                raise ProxyError(502, "upstream_error", "GLM API answered a streamed request with no chunks",
                                 "upstream_error")
            put(("done", index, None))
        except ProxyError as err:
            put(("error", index, err))
        except Exception as exc:  # the SDK and httpx raise many types mid-stream
            put(("error", index, translate(exc)))
        finally:
            if stream is not None:
                on_close(stream)

    def chunk(choices: list[dict], usage: dict | None = None) -> dict:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": choices}
        if include_usage:
            body["usage"] = usage
        return body

    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    started: set[int] = set()
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="glm-stream")
    for index in range(n):
        pool.submit(read, index)
    try:
        unfinished = n
        while unfinished:
            try:
                kind, index, value = items.get(timeout=max(0.01, min(_POLL * 5, deadline - time.monotonic())))
            except queue.Empty:
                if stop.is_set():
                    return
                if time.monotonic() > deadline:
                    raise timed_out() from None
                continue
            if kind == "error":
                raise value
            if kind == "done":
                unfinished -= 1
                continue
            upstream_usage = getattr(value, "usage", None)
            if upstream_usage is not None:
                for field in usage:
                    usage[field] += int(getattr(upstream_usage, field, 0) or 0)
            for upstream_choice in getattr(value, "choices", None) or []:
                delta_in = getattr(upstream_choice, "delta", None)
                content = getattr(delta_in, "content", None) or ""
                reason = finish_reason(getattr(upstream_choice, "finish_reason", None))
                if index not in started:
                    started.add(index)
                    delta = {"role": "assistant", "content": content}
                elif content:
                    delta = {"content": content}
                elif reason is None:
                    continue
                else:
                    delta = {}
                yield sse_event(chunk([{"index": index, "delta": delta, "logprobs": None,
                                        "finish_reason": reason}]))
        if include_usage:
            yield sse_event(chunk([], usage))
        yield sse_event("[DONE]")
    except ProxyError as err:
        log.warning("stream failed -> %s: %s", err.status, err.message)
        yield sse_event(err.body())
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)


async def until_disconnect(events: Iterator[bytes], stop: threading.Event) -> AsyncIterator[bytes]:
    """Serve a blocking event iterator from worker threads; set ``stop`` however the response ends.

    Starlette would iterate a plain generator in threads too, but when the client disconnects it
    never closes that generator, so the upstream readers would go on until their deadline.
    """
    try:
        while True:
            event = await anyio.to_thread.run_sync(next, events, None)
            if event is None:
                return
            yield event
    finally:
        stop.set()
