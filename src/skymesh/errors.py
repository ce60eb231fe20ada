"""One error root for skymesh.

Every error we raise on purpose derives from :class:`SkymeshError`, so callers can
catch ours apart from bugs. Each carries a stable ``code`` that crosses the wire
(see :class:`skymesh.wire.base.ErrorBody`) and the HTTP ``status`` a server
answers with. S3 error codes live with the gateway, which maps these once, at its
edge.
"""

from __future__ import annotations


class SkymeshError(Exception):
    """Root of all deliberate skymesh errors."""

    code: str = "InternalError"
    status: int = 500

    def __init__(self, message: str = "", *, code: str | None = None, status: int | None = None):
        super().__init__(message or self.__class__.__doc__ or self.code)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(SkymeshError, ValueError):
    """The configuration is invalid."""

    code = "InvalidConfig"
    status = 500


class CodecError(SkymeshError, ValueError):
    """Data could not be encoded or decoded."""

    code = "CodecError"
    status = 500


class IntegrityError(CodecError):
    """Data failed an integrity check (AEAD tag, Merkle root, erasure decode)."""

    code = "IntegrityError"
    status = 502


class SchemeError(CodecError):
    """A redundancy scheme is invalid for what was asked of it."""

    code = "InvalidScheme"
    status = 400


class BadRequest(SkymeshError, ValueError):
    """The request is malformed."""

    code = "BadRequest"
    status = 400


class Unauthorized(SkymeshError, PermissionError):
    """The caller did not prove who it is."""

    code = "Unauthorized"
    status = 401


class Forbidden(SkymeshError, PermissionError):
    """The caller may not do this (bad, expired, replayed or misdirected order...)."""

    code = "Forbidden"
    status = 403


class NotFound(SkymeshError, LookupError):
    """The thing asked for does not exist."""

    code = "NotFound"
    status = 404


class Conflict(SkymeshError):
    """The request conflicts with the current state."""

    code = "Conflict"
    status = 409


class PreconditionFailed(SkymeshError):
    """A condition the caller set does not hold."""

    code = "PreconditionFailed"
    status = 412


class TooLarge(SkymeshError):
    """The body exceeds what the order or the limits allow."""

    code = "TooLarge"
    status = 413


class InsufficientStorage(SkymeshError):
    """The node or the network has no room for this."""

    code = "InsufficientStorage"
    status = 507


class Unavailable(SkymeshError):
    """Not enough healthy nodes answered to do this now; retry later."""

    code = "Unavailable"
    status = 503
