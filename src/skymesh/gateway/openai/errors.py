"""OpenAI-style errors: ``{"error": {"message", "type", "param", "code"}}`` with the right status.

The OpenAI clients read ``type`` and ``code`` to decide what went wrong (and the
status to decide whether to retry), so every error of the OpenAI routes leaves
through :func:`error_response`, mapped once here.
"""

from __future__ import annotations

from aiohttp import web

from skymesh.compute.errors import ContextTooLong, InvalidRequest, ModelNotFound, Overloaded
from skymesh.errors import SkymeshError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class OpenAIError(SkymeshError):
    """An error in OpenAI's shape: a type, the offending parameter, a machine code."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code or "", status=status)
        self.param = param
        self.retry_after = retry_after

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "server_error" if self.status >= 500 else "api_error")

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code or None,
            }
        }


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> OpenAIError:
    return OpenAIError(message, status=400, code=code, param=param)


def from_error(e: SkymeshError) -> OpenAIError:
    """The OpenAI shape of any skymesh error (from a node, the coordinator or ourselves)."""
    if isinstance(e, OpenAIError):
        return e
    if isinstance(e, InvalidRequest):  # a field of the body (compute.requests)
        return OpenAIError(e.message, status=400, code=e.code, param=e.param)
    if isinstance(e, ModelNotFound):
        return OpenAIError(e.message, status=404, code="model_not_found", param="model")
    if isinstance(e, ContextTooLong):
        return OpenAIError(e.message, status=400, code="context_length_exceeded")
    if isinstance(e, Overloaded):
        return OpenAIError(e.message, status=429, code="overloaded", retry_after=e.retry_after)
    if e.status >= 500:
        return OpenAIError(e.message, status=e.status, code="backend_unavailable")
    return OpenAIError(e.message, status=e.status, code=e.code)


def error_response(e: OpenAIError) -> web.Response:
    resp = web.json_response(e.body(), status=e.status)
    if e.retry_after is not None:
        resp.headers["Retry-After"] = str(max(1, round(e.retry_after)))
    return resp
