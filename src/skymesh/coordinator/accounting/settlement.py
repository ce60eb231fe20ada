"""Nodes settle the ``get`` orders they served: the basis of egress pay.

A node sends a signed :class:`SettlementBatch` of its final tallies, each with the
order exactly as a coordinator signed it. A settlement counts only when the order
was signed by a current coordinator key, names the settling node, is a ``get``, is
settled within :data:`SETTLE_WINDOW` of its expiry, and claims ``0 < bytes <=
max_bytes``: a node cannot claim traffic no order allowed. Each serial counts
once (the row's key): a replayed settlement is a duplicate, never a second payment.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec
import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import settled_orders
from skymesh.coordinator.keyring import Keyring
from skymesh.coordinator.overlay.registry import MAX_CLOCK_SKEW, Registry
from skymesh.errors import Forbidden, SkymeshError
from skymesh.wire.accounting import (
    MAX_SETTLEMENTS,
    OrderSettlement,
    SettlementBatch,
    SettlementRefusal,
    SettlementResult,
)
from skymesh.wire.node import Order, PieceAction
from skymesh.wire.signing import Signed, open_signed

SETTLE_WINDOW = 7 * 86_400.0  # seconds after an order's expiry its settlement is taken
HOUR = 3600
_HEX = frozenset("0123456789abcdef")


def hour_of(t: float) -> int:
    """The unix second the hour holding ``t`` starts."""
    return math.floor(t / HOUR) * HOUR


class Settlements:
    """Verifies and records nodes' settlements."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        keyring: Keyring,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.registry = registry
        self.keyring = keyring
        self.clock = clock
        self.accepted = 0  # counters, for metrics
        self.duplicates = 0
        self.refused = 0

    async def settle(self, signed: Signed) -> SettlementResult:
        """Record a node's signed batch; Forbidden when the batch itself is not the node's."""
        node_id = signed.signer_id
        known = (await self.registry.lookup([node_id])).get(node_id)
        if known is None:
            raise Forbidden("settlements come from registered nodes only")
        batch = open_signed(signed, SettlementBatch, trusted=[known.public_key])
        now = self.clock()
        if batch.node_id != node_id:
            raise Forbidden("the settlement batch names another node than its signer")
        if abs(now - batch.timestamp) > MAX_CLOCK_SKEW:
            raise Forbidden(f"settlement timestamp is {now - batch.timestamp:+.0f}s off")
        if len(batch.settlements) > MAX_SETTLEMENTS:
            raise Forbidden(f"send at most {MAX_SETTLEMENTS} settlements at once")
        rows: dict[str, dict[str, object]] = {}
        refused: list[SettlementRefusal] = []
        for s in batch.settlements:
            try:
                order = await self.check(s, node_id, now)
            except SkymeshError as e:
                refused.append(SettlementRefusal(serial=_serial_of(s), reason=e.message))
                continue
            if order.serial in rows:
                continue  # twice in one batch: a duplicate of itself
            rows[order.serial] = {
                "serial": order.serial,
                "node_id": node_id,
                "project_id": order.project_id,
                "purpose": order.purpose,
                "bytes": s.served_bytes,
                "settled_at": now,
                "hour": hour_of(now),
            }
        fresh = await self.record(rows) if rows else 0
        duplicates = len(batch.settlements) - len(refused) - fresh
        self.accepted += fresh
        self.duplicates += duplicates
        self.refused += len(refused)
        return SettlementResult(accepted=fresh, duplicates=duplicates, refused=refused)

    async def check(self, s: OrderSettlement, node_id: str, now: float) -> Order:
        """The settlement's order if it allows what the node claims (else Forbidden)."""
        order = await self.keyring.open(s.order, Order)
        if order.node_id != node_id:
            raise Forbidden(f"the order is for node {order.node_id}, not the settling node")
        if len(order.serial) != 32 or not _HEX.issuperset(order.serial):
            raise Forbidden("the order has a malformed serial")
        if order.action is not PieceAction.GET:
            raise Forbidden(f"only get orders are settled, not {order.action.value}")
        if not 0 < s.served_bytes <= order.max_bytes:
            raise Forbidden(f"served_bytes must be 1..{order.max_bytes} under this order")
        if now > order.expires_at + SETTLE_WINDOW:
            raise Forbidden(f"the order expired over {SETTLE_WINDOW:.0f} s ago")
        return order

    async def record(self, rows: dict[str, dict[str, object]]) -> int:
        """Insert the serials not settled before; how many were new."""

        def txn(conn: sa.Connection) -> int:
            known = set(
                conn.execute(
                    sa.select(settled_orders.c.serial).where(
                        settled_orders.c.serial.in_(list(rows))
                    )
                ).scalars()
            )
            fresh = [r for serial, r in rows.items() if serial not in known]
            if fresh:
                conn.execute(settled_orders.insert(), fresh)
            return len(fresh)

        try:
            return await self.db.write(txn)
        except sa.exc.IntegrityError:  # another replica settled one of them first
            return await self.db.write(txn)


def _serial_of(s: OrderSettlement) -> str:
    """The serial a settlement claims, for its refusal (unverified: only an echo)."""
    try:
        body = msgspec.msgpack.decode(s.order.body)
    except msgspec.DecodeError:
        return ""
    return str(body.get("serial", ""))[:64] if isinstance(body, dict) else ""
