"""Orders: the coordinator's signed permission for one action on one piece at one node."""

from __future__ import annotations

import time
from collections.abc import Callable

from skymesh.wire.identity import Identity
from skymesh.wire.node import Order, PieceAction
from skymesh.wire.pieces import new_serial
from skymesh.wire.signing import Signed, sign


class OrderSigner:
    """Signs orders with the coordinator identity; each expires ``ttl`` seconds after issue."""

    def __init__(
        self, identity: Identity, ttl: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.identity = identity
        self.ttl = ttl
        self.clock = clock
        self.signed = 0  # orders issued since start (for metrics)

    def order(
        self,
        node_id: str,
        piece_id: str,
        action: PieceAction,
        max_bytes: int,
        now: float | None = None,
        *,
        project_id: str = "",
        purpose: str = "",
    ) -> Signed:
        """``project_id`` and ``purpose`` say whom a ``get`` is charged to and why
        (settled ``get`` orders are what nodes are paid egress for)."""
        issued = self.clock() if now is None else now
        self.signed += 1
        return sign(
            self.identity,
            Order(
                serial=new_serial(),
                coordinator_id=self.identity.id,
                node_id=node_id,
                piece_id=piece_id,
                action=action,
                max_bytes=max_bytes,
                expires_at=issued + self.ttl,
                issued_at=issued,
                project_id=project_id,
                purpose=purpose,
            ),
        )
