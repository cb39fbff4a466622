"""OpenAI-compatible HTTP front for Zhipu's ChatGLM/GLM models.

Run it, then point LLM4Teach's ``--llm_url`` at it::

    export ZHIPUAI_API_KEY=...
    python -m utils.chatglm_api --host 127.0.0.1 --port 8000 --model glm-4-flash

It serves ``POST /v1/chat/completions`` (plain or ``stream: true``) and ``GET /v1/models`` in the
OpenAI shapes and forwards each request to the GLM API through the ``zhipuai`` SDK.

What is forwarded: ``model``, ``messages`` (content as a string, or as a list of text parts which
are joined with newlines), ``temperature`` (0..1, GLM's range), ``top_p``, ``max_tokens`` (or
``max_completion_tokens``), ``stop`` (one sequence: the GLM API takes a single stop word),
``seed`` (choice ``i`` gets ``seed + i`` so that ``n`` choices are not ``n`` copies) and
``stream``/``stream_options.include_usage``.  Any other parameter with a non-null value is refused
with HTTP 400 naming it, as is a non-text content part; nothing is dropped silently.

The GLM API returns one answer per call, so a request for ``n`` answers makes ``n`` paid upstream
calls (``max_parallel`` at a time); ``n`` above ``--max_n`` is refused.  Upstream failures come back
in OpenAI's error shape ``{"error": {"message", "type", "param", "code"}}``: bad key -> 401/403,
rate limit -> 429, upstream down or 5xx -> 502, upstream timeout -> 504.  Every message that leaves
the proxy (to a client or to the log) has the keys masked, even when cut short or JSON-escaped.
``--upstream_base_url`` (or ``ZHIPUAI_BASE_URL``) replaces the SDK's endpoint, which is how the
tests point it at a local fake.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import math
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from planners.llm.chatglm_errors import ProxyError
from planners.llm.chatglm_request import ChatRequest, bad_request, upstream_arguments
from planners.llm.chatglm_stream import finish_reason, merged_stream, until_disconnect
from planners.llm.redact import clip, redact

__all__ = ["create_app", "make_zhipu_client_factory", "main", "ProxyError", "translate_upstream_error",
           "MaskingFormatter"]

log = logging.getLogger("chatglm_api")

DEFAULT_MODEL = "glm-4-flash"
API_KEY_ENV = "ZHIPUAI_API_KEY"
BASE_URL_ENV = "ZHIPUAI_BASE_URL"
LOOPBACK_NAMES = {"localhost"}

def translate_upstream_error(exc: Exception, secrets: list[str | None] | str | None = None) -> ProxyError:
    """Map a ``zhipuai`` SDK exception to the HTTP error this server returns, with secrets masked."""
    import zhipuai

    secrets = [secrets] if isinstance(secrets, str) or secrets is None else secrets

    def clean(text: Any) -> str:
        return clip(text, secrets)

    # APITimeoutError subclasses APIConnectionError, so test it first.
    if isinstance(exc, zhipuai.APITimeoutError):
        return ProxyError(504, "upstream_timeout", "GLM API did not answer in time", "timeout")
    if isinstance(exc, zhipuai.APIConnectionError):
        return ProxyError(502, "upstream_unavailable", f"cannot reach the GLM API ({clean(exc)})",
                          "upstream_unavailable")
    if isinstance(exc, zhipuai.APIStatusError):
        status = exc.status_code
        detail = clean(getattr(exc.response, "text", "") or exc)
        if status in (401, 403):
            return ProxyError(status, "authentication_error",
                              f"GLM API refused the key (HTTP {status}): {detail}; check {API_KEY_ENV} "
                              "where the proxy runs", "invalid_api_key")
        if status == 429:
            return ProxyError(429, "rate_limit_error", f"GLM API rate limit: {detail}", "rate_limit",
                              retry_after=exc.response.headers.get("Retry-After"))
        if status == 404:
            return ProxyError(404, "invalid_request_error", f"GLM API: not found: {detail}", "not_found")
        if 400 <= status < 500:
            return ProxyError(400, "invalid_request_error", f"GLM API rejected the request: {detail}",
                              "invalid_request")
        return ProxyError(502, "upstream_error", f"GLM API failed with HTTP {status}: {detail}", "upstream_error")
    return ProxyError(502, "upstream_error", f"GLM API call failed: {clean(exc)}", "upstream_error")


def make_zhipu_client_factory(
    api_key: str, base_url: str | None = None, timeout: float = 120.0, max_retries: int = 0
) -> Callable[[], Any]:
    """Return a factory for a ``zhipuai.ZhipuAI`` client with the given endpoint and limits.

    Upstream retries default to 0: the LLM4Teach client retries on its own,
    and stacked retries would multiply the wait on a dead upstream.
    """

    def factory():
        from zhipuai import ZhipuAI

        return ZhipuAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)

    return factory


def _close_stream(stream: Any) -> None:
    """Release an upstream stream's HTTP response (the SDK's stream has no ``close`` of its own)."""
    response = getattr(stream, "response", None)
    closer = getattr(response, "close", None) or getattr(stream, "close", None)
    if closer is not None:
        try:
            closer()
        except Exception:  # closing is best effort; the reader may be using it
            pass


def create_app(
    client_factory: Callable[[], Any],
    default_model: str = DEFAULT_MODEL,
    max_parallel: int = 4,
    max_n: int = 10,
    client_token: str | None = None,
    client_token_env: str | None = None,
    stream_timeout: float = 120.0,
    secrets: tuple[str, ...] = (),
) -> FastAPI:
    """Build the FastAPI app.

    Args:
        client_factory: returns an object with ``chat.completions.create(...)``
            like ``zhipuai.ZhipuAI``; called once, on the first request.
        default_model: model used when a request names none; listed by ``/v1/models``.
        max_parallel: most upstream calls in flight for one request with ``n > 1``.
        max_n: largest ``n`` accepted (each choice is a paid upstream call).
        client_token: when set, every request must carry ``Authorization: Bearer <client_token>``.
        client_token_env: the variable ``client_token`` came from, named in the 401 message.
        stream_timeout: seconds one streamed choice may take from opening to its last chunk.
        secrets: extra values to mask in messages (the upstream key is also taken from the client).
    """
    app = FastAPI(title="LLM4Teach ChatGLM proxy")
    state: dict[str, Any] = {}
    state_lock = threading.Lock()
    hidden: list[str | None] = [*secrets, client_token]

    def upstream():
        with state_lock:
            if "client" not in state:
                state["client"] = client_factory()
                hidden.append(getattr(state["client"], "api_key", None))
            return state["client"]

    def error_response(err: ProxyError) -> JSONResponse:
        headers = {"Retry-After": err.retry_after} if err.retry_after else None
        if err.status == 401 and err.code == "missing_client_token":
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    def translate(exc: Exception) -> ProxyError:
        return translate_upstream_error(exc, hidden)

    if client_token:
        source = f"${client_token_env}" if client_token_env else "the token the proxy was started with"
        refusal = error_response(ProxyError(
            401, "authentication_error", f"this proxy needs 'Authorization: Bearer <token>' with the value of "
            f"{source} (set with --api_key_env on the proxy)", "missing_client_token"))
        app.add_middleware(_BearerAuth, expected=f"Bearer {client_token}".encode(), refusal=refusal)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors)
        first = [str(p) for p in (errors[0].get("loc", ()) if errors else ()) if p != "body"]
        if any(tuple(e.get("loc", ())) == ("body",) for e in errors):
            details += " (send a JSON object with Content-Type: application/json)"
        return error_response(bad_request(".".join(first) or None,
                                           f"invalid request: {clip(details, hidden)}"))

    @app.get("/v1/models")
    def list_models() -> dict:
        return {"object": "list",
                "data": [{"id": default_model, "object": "model", "created": 0, "owned_by": "zhipuai"}]}

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatRequest):
        try:
            kwargs = upstream_arguments(request, default_model, max_n)
        except ProxyError as err:
            return error_response(err)
        n = request.n

        def call(index: int, stream: bool = False):
            try:
                client = upstream()
            except Exception as exc:
                raise ProxyError(500, "server_error", f"proxy cannot create the GLM client: {clip(exc, hidden)}",
                                 "proxy_misconfigured") from exc
            arguments = dict(kwargs)
            if request.seed is not None:
                arguments["seed"] = request.seed + index
            if stream:
                arguments["stream"] = True
            try:
                return client.chat.completions.create(**arguments)
            except Exception as exc:  # the SDK raises many types; all become HTTP errors
                raise translate(exc) from exc

        if request.stream:
            return _start_stream(call, kwargs["model"], n, request)
        try:
            if n == 1:
                replies = [call(0)]
            else:
                with ThreadPoolExecutor(max_workers=min(max_parallel, n)) as pool:
                    replies = list(pool.map(call, range(n)))
            body = _completion_body(replies, kwargs["model"], n)
        except ProxyError as err:
            log.warning("upstream error -> HTTP %d: %s", err.status, err.message)
            return error_response(err)
        return body

    def _start_stream(call, model: str, n: int, request: ChatRequest):
        """Open choice 0 and read its first chunk before committing to HTTP 200."""
        opened_at = time.monotonic()
        stream = None
        try:
            stream = call(0, stream=True)
            chunks = iter(stream)
            first = next(chunks, None)
            if first is None:
                raise ProxyError(502, "upstream_error", "GLM API answered a streamed request with no chunks",
                                 "upstream_error")
        except ProxyError as err:
            _close_stream(stream)
            log.warning("upstream error -> HTTP %d: %s", err.status, err.message)
            return error_response(err)
        except Exception as exc:
            _close_stream(stream)
            err = translate(exc)
            log.warning("upstream error -> HTTP %d: %s", err.status, err.message)
            return error_response(err)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        stop = threading.Event()
        events = merged_stream(
            (chunks, first), lambda index: call(index, stream=True), translate,
            n=n, model=model, completion_id=f"chatcmpl-{uuid.uuid4().hex}", include_usage=include_usage,
            opened_at=opened_at, timeout=stream_timeout, max_parallel=max_parallel, on_close=_close_stream,
            stop=stop)
        return StreamingResponse(until_disconnect(events, stop), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


class _BearerAuth:
    """ASGI middleware: every HTTP request must carry the expected ``Authorization`` header.

    It runs before routing and body parsing, so an unauthenticated client learns nothing else.
    """

    def __init__(self, app, expected: bytes, refusal: JSONResponse):
        self.app = app
        self.expected = expected
        self.refusal = refusal

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            given = next((value for key, value in scope["headers"] if key == b"authorization"), b"")
            if not hmac.compare_digest(given, self.expected):
                log.warning("refused a request to %s without the right bearer token", scope.get("path"))
                await self.refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _completion_body(replies: list[Any], model: str, n: int) -> dict:
    """One OpenAI ``chat.completion`` object from the upstream replies."""
    choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    have_usage = False
    for reply in replies:
        for choice in reply.choices:
            choices.append({
                "index": len(choices),
                "message": {"role": "assistant", "content": choice.message.content or ""},
                "finish_reason": finish_reason(choice.finish_reason) or "stop",
            })
        reply_usage = getattr(reply, "usage", None)
        if reply_usage is not None:
            have_usage = True
            for field in usage:
                usage[field] += int(getattr(reply_usage, field, 0) or 0)
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices[:n],
    }
    if have_usage:
        body["usage"] = usage
    return body


class MaskingFormatter(logging.Formatter):
    """A log formatter that masks the given secrets in the whole formatted record (tracebacks too)."""

    def __init__(self, fmt: str, secrets: list[str | None]):
        super().__init__(fmt)
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _positive(kind: type, name: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive {kind.__name__}, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{name} must be a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="OpenAI-compatible proxy for Zhipu GLM models.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; anything but loopback prints a warning")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model used when a request names none")
    parser.add_argument("--upstream_base_url", default=None,
                        help=f"GLM API base URL (default: ${BASE_URL_ENV} or the SDK's own)")
    parser.add_argument("--upstream_timeout", type=_positive(float, "--upstream_timeout"), default=120.0,
                        help="seconds per upstream call; a streamed choice must also end within it")
    parser.add_argument("--upstream_retries", type=int, default=0, help="retries inside the zhipuai SDK")
    parser.add_argument("--max_parallel", type=_positive(int, "--max_parallel"), default=4,
                        help="parallel upstream calls per request")
    parser.add_argument("--max_n", type=_positive(int, "--max_n"), default=10,
                        help="largest n a request may ask for (each choice is one paid upstream call)")
    parser.add_argument("--api_key_env", default=None, metavar="NAME",
                        help="require clients to send 'Authorization: Bearer <value of $NAME>'")
    parser.add_argument("--log_level", default="info",
                        help="debug, info, warning or error (keys are masked in every record)")
    return parser.parse_args(argv)


def _client_token(name: str | None) -> str | None:
    """The bearer token clients must send, read from ``$name``; exits 2 if it is unusable."""
    if name is None:
        return None
    if name == API_KEY_ENV:
        print(f"chatglm_api: --api_key_env must name a variable other than {API_KEY_ENV}, or every client "
              "would need the Zhipu key; export a separate token", file=sys.stderr)
        raise SystemExit(2)
    token = os.environ.get(name, "")
    if not token.strip():
        print(f"chatglm_api: --api_key_env {name}: environment variable {name} is not set; export the token "
              "clients must send and start again", file=sys.stderr)
        raise SystemExit(2)
    return token


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; exits with code 2 if a key is missing or the SDK is unusable."""
    args = _parse_args(argv)
    api_key = os.environ.get(API_KEY_ENV)
    if not api_key:
        print(f"chatglm_api: environment variable {API_KEY_ENV} is not set; "
              f"export your Zhipu API key in it and start again", file=sys.stderr)
        raise SystemExit(2)
    token = _client_token(args.api_key_env)
    secrets = [api_key, token]
    base_url = args.upstream_base_url or os.environ.get(BASE_URL_ENV) or None
    factory = make_zhipu_client_factory(api_key, base_url, args.upstream_timeout, args.upstream_retries)
    try:
        client = factory()  # fail at startup, not on the first request
    except Exception as exc:
        print(f"chatglm_api: cannot create the zhipuai client ({clip(exc, secrets, 200)}); "
              f"check that the zhipuai package (and its sniffio dependency) is installed", file=sys.stderr)
        raise SystemExit(2) from None
    if not is_loopback(args.host):
        advice = ("clients must send the token from $" + args.api_key_env if token
                  else "pass --api_key_env NAME to require a bearer token")
        print(f"chatglm_api: warning: --host {args.host} is not a loopback address, so other machines can "
              f"reach this proxy and spend your Zhipu credit; {advice}", file=sys.stderr)
    import uvicorn

    handler = logging.StreamHandler()
    handler.setFormatter(MaskingFormatter("%(asctime)s %(name)s %(levelname)s %(message)s", secrets))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(args.log_level.upper())
    app = create_app(lambda: client, default_model=args.model, max_parallel=args.max_parallel,
                     max_n=args.max_n, client_token=token, client_token_env=args.api_key_env,
                     stream_timeout=args.upstream_timeout, secrets=tuple(s for s in secrets if s))
    log.info("serving %s on http://%s:%d/v1 (upstream: %s%s)", args.model, args.host, args.port,
             base_url or "zhipuai SDK default", f"; clients need ${args.api_key_env}" if token else "")
    # log_config=None: uvicorn's loggers go through the masking root handler set up above.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower(), log_config=None)


if __name__ == "__main__":
    main()
