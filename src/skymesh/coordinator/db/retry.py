"""Which database failures a transaction may be run again after, and how long to wait.

A conflict (SQLSTATE 40001 serialization failure, 40P01 deadlock) means PostgreSQL
rolled the transaction back so that concurrent transactions stay serializable: running
the whole transaction again is correct and usually succeeds. A lost connection is
told apart by SQLAlchemy (``connection_invalidated``): before COMMIT was sent the
transaction cannot have committed; during COMMIT nobody knows whether it did.
"""

from __future__ import annotations

import random

import sqlalchemy as sa

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
CONFLICTS = frozenset({SERIALIZATION_FAILURE, DEADLOCK_DETECTED})

#: Tries of a transaction that keeps conflicting, the first included.
MAX_ATTEMPTS = 12
BACKOFF_BASE = 0.002  # seconds, doubled per try up to BACKOFF_CAP
BACKOFF_CAP = 0.25


class ConnectionLost(Exception):
    """The connection failed before the transaction could commit: running it again
    on a fresh connection is safe."""


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error wrapped by SQLAlchemy, if it has one."""
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, sa.exc.DBAPIError) and sqlstate(exc) in CONFLICTS


def is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated


def backoff(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1``: full jitter, so racing writers spread."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
