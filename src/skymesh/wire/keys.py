"""The network's coordinator keys: the signed statement nodes follow, and the admin view.

Every coordinator has its own Ed25519 identity; the keys of those not retired are
the network's *current* keys (``coordinator_keys``, one row per coordinator, kept by
the coordinators over their shared database). A coordinator answers every join and
heartbeat with a :class:`CoordinatorKeys` statement it signs; a node that trusts the
signer takes the statement's keys as exactly the coordinators whose orders it
honours (``node/trust.py``, ``docs/spec/node-protocol.md`` §6).
"""

from __future__ import annotations

from skymesh.wire.base import Base

#: The most keys a statement may list (a node refuses a longer one).
MAX_STATEMENT_KEYS = 64


class CoordinatorKey(Base, frozen=True):
    """One current coordinator key."""

    coordinator_id: str  # id_from_public_key(public_key)
    public_key: bytes
    url: str = ""  # where the coordinator said it serves when it last started (informative)


class CoordinatorKeys(Base, frozen=True):
    """The current coordinator keys, signed by the coordinator that answers.

    ``version`` orders statements: it counts the key rows plus the retired ones, and
    rows are never deleted nor a retirement undone, so every key added or retired
    raises it by one, whichever coordinator made the change and whatever its clock
    says. A node takes a statement only when its version is above the last it took.
    """

    keys: list[CoordinatorKey]
    version: int
    issued_at: float  # the signing coordinator's clock (for logs and the trust file)


class CoordinatorKeyInfo(Base, frozen=True):
    """One row of ``GET /v1/admin/coordinator-keys``."""

    coordinator_id: str
    public_key: bytes
    url: str
    added_at: float
    retired_at: float | None = None  # None while current


class CoordinatorKeyList(Base, frozen=True):
    """Every coordinator key ever registered, current ones first, and the set's version."""

    keys: list[CoordinatorKeyInfo]
    version: int
