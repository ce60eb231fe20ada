"""Settling served ``get`` orders with the coordinator: what this node is paid egress for.

Once a ``get`` order has expired its tally is final: the node sends the order as
the coordinator signed it with the bytes served under it, in signed batches
(``POST /v1/nodes/settlements``), and forgets each order the coordinator answered
for, counted, duplicate or refused alike (a refusal will not change). An order
whose batch failed to arrive stays and goes in the next round; the coordinator
counts each serial once, so a batch sent twice is paid once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from skymesh.errors import SkymeshError
from skymesh.node.orders import SerialStore
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.accounting import MAX_SETTLEMENTS, OrderSettlement, SettlementBatch
from skymesh.wire.identity import Identity
from skymesh.wire.signing import decode_header, sign

log = logging.getLogger(__name__)

SETTLE_INTERVAL = 300.0  # seconds between settlement rounds
MAX_BATCHES = 20  # per round: a backlog drains over several rounds


class OrderSettler:
    """The node's ``settle`` loop step."""

    def __init__(
        self,
        identity: Identity,
        serials: SerialStore,
        rpc: RpcClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.serials = serials
        self.rpc = rpc
        self.clock = clock
        self.accepted = 0  # counters
        self.duplicates = 0
        self.refused = 0

    async def step(self) -> float:
        try:
            await self.settle()
        except SkymeshError as e:
            log.info("settling orders failed (next round in %.0f s): %s", SETTLE_INTERVAL, e)
        return SETTLE_INTERVAL

    async def settle(self, now: float | None = None) -> int:
        """Send every expired order's tally (``now``: when orders count as expired); how
        many the coordinator answered for."""
        cutoff = self.clock() if now is None else now
        answered = 0
        for _ in range(MAX_BATCHES):
            pending = await asyncio.to_thread(self.serials.unsettled, cutoff, MAX_SETTLEMENTS)
            if not pending:
                break
            settlements = []
            for serial, header, served in pending:
                if served <= 0:  # nothing served after all: nothing to claim
                    self.serials.settled([serial])
                    continue
                settlements.append(
                    OrderSettlement(order=decode_header(header), served_bytes=served)
                )
            if settlements:
                batch = SettlementBatch(
                    node_id=self.identity.id, timestamp=self.clock(), settlements=settlements
                )
                result = await self.rpc.send(routes.SETTLE_ORDERS, sign(self.identity, batch))
                self.accepted += result.accepted
                self.duplicates += result.duplicates
                self.refused += len(result.refused)
                for refusal in result.refused:
                    log.warning("order %s not settled: %s", refusal.serial, refusal.reason)
            self.serials.settled([serial for serial, _, _ in pending])
            answered += len(pending)
        return answered
