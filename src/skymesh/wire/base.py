"""The root of every wire struct, and the error body every role answers with."""

from __future__ import annotations

import msgspec


class Base(msgspec.Struct, frozen=True, kw_only=True):
    """Common base: immutable, keyword-only, unknown fields ignored (forward compatible)."""


class ErrorBody(Base, frozen=True):
    """What every role answers on error, with the error's HTTP status."""

    code: str
    message: str


class Empty(Base, frozen=True):
    """An answer with nothing in it: ``{}``."""


class Health(Base, frozen=True):
    """``GET /healthz``: the role answers and its database does."""

    status: str
