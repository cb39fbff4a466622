"""The one error type of the ChatGLM proxy: a failure already in HTTP and OpenAI terms."""

from __future__ import annotations

__all__ = ["ProxyError"]


class ProxyError(Exception):
    """A failure already translated into an HTTP status and OpenAI error fields."""

    def __init__(self, status: int, err_type: str, message: str, code: str | None = None,
                 retry_after: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.err_type = err_type
        self.message = message
        self.code = code
        self.retry_after = retry_after
        self.param = param

    def body(self) -> dict:
        """The OpenAI error object for this failure."""
        return {"error": {"message": self.message, "type": self.err_type, "param": self.param,
                          "code": self.code}}
