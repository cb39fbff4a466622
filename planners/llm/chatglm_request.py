"""The requests the ChatGLM proxy accepts, and what of them is forwarded to the GLM API.

Nothing is dropped silently: a parameter is either passed on to ``zhipuai``'s
``chat.completions.create`` or refused with HTTP 400 naming it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from planners.llm.chatglm_errors import ProxyError

__all__ = ["ChatMessage", "ChatRequest", "StreamOptions", "bad_request", "upstream_arguments"]

# Parameters the GLM API has no use for, accepted only at the value that means "off".
_NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "logprobs": False}


class ChatMessage(BaseModel):
    """One chat turn; ``content`` is a string or a list of ``{"type": "text", "text": ...}`` parts."""

    model_config = ConfigDict(extra="forbid")

    role: str
    content: str | list[dict[str, Any]]


class StreamOptions(BaseModel):
    """OpenAI's ``stream_options``."""

    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """An OpenAI chat-completions request; unknown fields are kept so they can be refused by name."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    top_p: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    n: int = Field(default=1, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None


def bad_request(param: str | None, message: str) -> ProxyError:
    """An HTTP 400 in OpenAI's shape naming ``param``."""
    return ProxyError(400, "invalid_request_error", message, "invalid_request", param=param)


def _message_text(message: ChatMessage, index: int) -> str:
    """The message's text; list content must be text parts only."""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for number, part in enumerate(message.content):
        where = f"messages[{index}].content[{number}]"
        kind = part.get("type")
        if kind != "text":
            raise bad_request(where, f"{where}: content part of type {kind!r} is not supported; "
                                      "this proxy forwards text parts only")
        if not isinstance(part.get("text"), str) or set(part) - {"type", "text"}:
            raise bad_request(where, f"{where}: a text part must be {{\"type\": \"text\", \"text\": <string>}}")
        texts.append(part["text"])
    return "\n".join(texts)


def upstream_arguments(request: ChatRequest, default_model: str, max_n: int) -> dict[str, Any]:
    """The keyword arguments for ``zhipuai``'s ``chat.completions.create`` (without ``seed``/``stream``).

    Raises:
        ProxyError: (400) naming the parameter that cannot be forwarded.
    """
    unknown = sorted(name for name, value in (request.model_extra or {}).items()
                     if value is not None and not (name in _NEUTRAL and value == _NEUTRAL[name]))
    if unknown:
        raise bad_request(unknown[0], f"parameter(s) {', '.join(unknown)} not supported by this proxy "
                                       "(the GLM API has no equivalent); remove them")
    if request.n > max_n:
        raise bad_request("n", f"n={request.n} is above this proxy's limit of {max_n} (--max_n); "
                                "each choice is one paid GLM call")
    if request.stream_options is not None and not request.stream:
        raise bad_request("stream_options", "stream_options is only allowed with stream: true")
    kwargs: dict[str, Any] = {
        "model": request.model or default_model,
        "messages": [{"role": m.role, "content": _message_text(m, i)} for i, m in enumerate(request.messages)],
    }
    for name in ("temperature", "top_p"):
        if getattr(request, name) is not None:
            kwargs[name] = getattr(request, name)
    limits = {request.max_tokens, request.max_completion_tokens} - {None}
    if len(limits) > 1:
        raise bad_request("max_completion_tokens", "max_tokens and max_completion_tokens disagree; send one")
    if limits:
        kwargs["max_tokens"] = limits.pop()
    if request.stop is not None:
        stop = [request.stop] if isinstance(request.stop, str) else list(request.stop)
        if len(stop) > 1:
            raise bad_request("stop", f"stop has {len(stop)} sequences; the GLM API takes a single stop word")
        if stop:
            kwargs["stop"] = stop
    return kwargs
