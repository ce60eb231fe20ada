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
