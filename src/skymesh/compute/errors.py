"""Errors of the compute path, each with the HTTP status it crosses the wire with."""

from __future__ import annotations

from skymesh.errors import BadRequest, NotFound, SkymeshError, Unavailable


class Overloaded(SkymeshError):
    """The node's queue is full; retry after ``retry_after`` seconds or on another node."""

    code = "Overloaded"
    status = 429

    def __init__(self, message: str = "", *, retry_after: float = 1.0, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ModelNotFound(NotFound):
    """No node serves this model (or this node does not)."""

    code = "ModelNotFound"


class RuntimeMissing(Unavailable):
    """The inference runtime for this model is not installed: ``pip install 'skymesh[ai]'``."""

    code = "RuntimeMissing"


class ContextTooLong(BadRequest):
    """The input does not fit the model's context."""

    code = "ContextTooLong"


class InvalidRequest(BadRequest):
    """A request field that cannot be honoured; ``param`` names it (OpenAI's ``param``).

    Raised by :mod:`skymesh.compute.requests`, the one parser of inference bodies that
    the gateway (interactive requests) and the nodes (batch lines) share; each maps
    it to its own wire: an OpenAI error at the gateway, an error line in a batch.
    """

    code = "invalid_value"

    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str = "invalid_value",
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)  # status: as rpc rebuilds errors
        self.param = param
