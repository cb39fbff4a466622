"""OpenAI-compatible HTTP front for Zhipu's ChatGLM/GLM models.

Run it, then point LLM4Teach's ``--llm_url`` at it::

    export ZHIPUAI_API_KEY=...
    python -m utils.chatglm_api --host 127.0.0.1 --port 8000 --model glm-4-flash

It serves ``POST /v1/chat/completions`` and ``GET /v1/models`` in the OpenAI
shapes and forwards each request to the GLM API through the ``zhipuai`` SDK.
The GLM API returns one answer per call, so a request for ``n`` answers makes
``n`` upstream calls (a few in parallel).  Upstream failures come back in
OpenAI's error shape ``{"error": {"message", "type", "code"}}``: bad key ->
401/403, rate limit -> 429, upstream down or 5xx -> 502, upstream timeout ->
504.  ``--upstream_base_url`` (or ``ZHIPUAI_BASE_URL``) replaces the SDK's
endpoint, which is how the tests point it at a local fake.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

__all__ = ["create_app", "make_zhipu_client_factory", "main", "UpstreamError"]

log = logging.getLogger("chatglm_api")

DEFAULT_MODEL = "glm-4-flash"
API_KEY_ENV = "ZHIPUAI_API_KEY"
BASE_URL_ENV = "ZHIPUAI_BASE_URL"


class ChatMessage(BaseModel):
    """One chat turn."""

    role: str
    content: str


class ChatRequest(BaseModel):
    """The subset of an OpenAI chat-completions request that is forwarded."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    n: int = Field(default=1, ge=1, le=64)
    max_tokens: int | None = Field(default=None, ge=1)


class UpstreamError(Exception):
    """An upstream failure already translated into an HTTP status and OpenAI error fields."""

    def __init__(self, status: int, err_type: str, message: str, code: str | None = None,
                 retry_after: str | None = None):
        super().__init__(message)
        self.status = status
        self.err_type = err_type
        self.message = message
        self.code = code
        self.retry_after = retry_after


def _one_line(text: Any, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_body(message: str, err_type: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": err_type, "code": code}}


def translate_upstream_error(exc: Exception, secret: str | None = None) -> UpstreamError:
    """Map a ``zhipuai`` SDK exception to the HTTP error this server returns."""
    import zhipuai

    def clean(text: Any) -> str:
        text = _one_line(text)
        return text.replace(secret, "***") if secret else text

    # APITimeoutError subclasses APIConnectionError, so test it first.
    if isinstance(exc, zhipuai.APITimeoutError):
        return UpstreamError(504, "upstream_timeout", "GLM API did not answer in time", "timeout")
    if isinstance(exc, zhipuai.APIConnectionError):
        return UpstreamError(502, "upstream_unavailable",
                             f"cannot reach the GLM API ({clean(exc)})", "upstream_unavailable")
    if isinstance(exc, zhipuai.APIStatusError):
        status = exc.status_code
        detail = clean(getattr(exc.response, "text", "") or exc)
        if status in (401, 403):
            return UpstreamError(status, "authentication_error",
                                 f"GLM API refused the key (HTTP {status}): {detail}; check {API_KEY_ENV}",
                                 "invalid_api_key")
        if status == 429:
            return UpstreamError(429, "rate_limit_error", f"GLM API rate limit: {detail}", "rate_limit",
                                 retry_after=exc.response.headers.get("Retry-After"))
        if status == 404:
            return UpstreamError(404, "invalid_request_error", f"GLM API: not found: {detail}", "not_found")
        if 400 <= status < 500:
            return UpstreamError(400, "invalid_request_error", f"GLM API rejected the request: {detail}",
                                 "invalid_request")
        return UpstreamError(502, "upstream_error", f"GLM API failed with HTTP {status}: {detail}",
                             "upstream_error")
    return UpstreamError(502, "upstream_error", f"GLM API call failed: {clean(exc)}", "upstream_error")


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


def create_app(
    client_factory: Callable[[], Any],
    default_model: str = DEFAULT_MODEL,
    max_parallel: int = 4,
) -> FastAPI:
    """Build the FastAPI app.

    Args:
        client_factory: returns an object with ``chat.completions.create(...)``
            like ``zhipuai.ZhipuAI``; called once, on the first request.
        default_model: model used when a request names none; listed by ``/v1/models``.
        max_parallel: most upstream calls in flight for one request with ``n > 1``.
    """
    app = FastAPI(title="LLM4Teach ChatGLM proxy")
    state: dict[str, Any] = {}
    state_lock = threading.Lock()

    def upstream():
        with state_lock:
            if "client" not in state:
                state["client"] = client_factory()
            return state["client"]

    def error_response(err: UpstreamError) -> JSONResponse:
        headers = {"Retry-After": err.retry_after} if err.retry_after else None
        return JSONResponse(_error_body(err.message, err.err_type, err.code), status_code=err.status,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
        )
        return JSONResponse(_error_body(f"invalid request: {_one_line(details)}", "invalid_request_error",
                                        "invalid_request"), status_code=400)

    @app.get("/v1/models")
    def list_models() -> dict:
        return {"object": "list",
                "data": [{"id": default_model, "object": "model", "created": 0, "owned_by": "zhipuai"}]}

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatRequest):
        model = request.model or default_model
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": [m.model_dump() for m in request.messages],
        }
        for name in ("temperature", "top_p", "max_tokens"):
            value = getattr(request, name)
            if value is not None:
                kwargs[name] = value

        def one_call(_index: int):
            try:
                client = upstream()
            except Exception as exc:
                raise UpstreamError(500, "server_error", f"proxy cannot create the GLM client: {_one_line(exc)}",
                                    "proxy_misconfigured") from exc
            try:
                return client.chat.completions.create(**kwargs)
            except Exception as exc:  # the SDK raises many types; all become HTTP errors
                raise translate_upstream_error(exc, getattr(client, "api_key", None)) from exc

        try:
            if request.n == 1:
                replies = [one_call(0)]
            else:
                with ThreadPoolExecutor(max_workers=min(max_parallel, request.n)) as pool:
                    replies = list(pool.map(one_call, range(request.n)))
        except UpstreamError as err:
            log.warning("upstream error -> HTTP %d: %s", err.status, err.message)
            return error_response(err)

        choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        have_usage = False
        for reply in replies:
            for choice in reply.choices:
                choices.append({
                    "index": len(choices),
                    "message": {"role": "assistant", "content": choice.message.content or ""},
                    "finish_reason": choice.finish_reason or "stop",
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
            "choices": choices[: request.n],
        }
        if have_usage:
            body["usage"] = usage
        return body

    return app


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="OpenAI-compatible proxy for Zhipu GLM models.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model used when a request names none")
    parser.add_argument("--upstream_base_url", default=None,
                        help=f"GLM API base URL (default: ${BASE_URL_ENV} or the SDK's own)")
    parser.add_argument("--upstream_timeout", type=float, default=120.0, help="seconds per upstream call")
    parser.add_argument("--upstream_retries", type=int, default=0, help="retries inside the zhipuai SDK")
    parser.add_argument("--max_parallel", type=int, default=4, help="parallel upstream calls per request")
    parser.add_argument("--log_level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; exits with code 2 if the API key is missing or the SDK is unusable."""
    args = _parse_args(argv)
    api_key = os.environ.get(API_KEY_ENV)
    if not api_key:
        print(f"chatglm_api: environment variable {API_KEY_ENV} is not set; "
              f"export your Zhipu API key in it and start again", file=sys.stderr)
        raise SystemExit(2)
    base_url = args.upstream_base_url or os.environ.get(BASE_URL_ENV) or None
    factory = make_zhipu_client_factory(api_key, base_url, args.upstream_timeout, args.upstream_retries)
    try:
        client = factory()  # fail at startup, not on the first request
    except Exception as exc:
        print(f"chatglm_api: cannot create the zhipuai client ({_one_line(exc, 200).replace(api_key, '***')}); "
              f"check that the zhipuai package (and its sniffio dependency) is installed", file=sys.stderr)
        raise SystemExit(2) from None
    import uvicorn

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(lambda: client, default_model=args.model, max_parallel=args.max_parallel)
    log.info("serving %s on http://%s:%d/v1 (upstream: %s)", args.model, args.host, args.port,
             base_url or "zhipuai SDK default")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())


if __name__ == "__main__":
    main()
