"""The garbage collector: deletes queued pieces from their nodes with signed DELETE orders.

Every piece that stops being referenced (an overwritten or deleted object, a
replaced segment or part, an aborted or expired upload) is queued in
``garbage_pieces`` by the same transaction that drops it
(``metainfo/segments.py:discard_segments``). This loop takes rows older than
``gc_grace`` (24 h by default, as long as Garage keeps tombstones: a reader
that opened the old version a moment before the overwrite can still finish),
signs a single-use ``delete`` order per piece and sends ``DELETE
/v1/pieces/{id}`` to the piece's node, a few at a time.

A row goes once its node answers 204 (deleted) or 404 (already gone). Rows of
offline nodes are not tried; they and rows whose node failed stay queued and
are retried on a later run. Rows of nodes that are no longer registered are
dropped: nobody can reach those pieces, and the node's next reconciliation
(``durability/retain.py``) removes them if it ever comes back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import partial

import aiohttp
import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import garbage_pieces
from skymesh.coordinator.orders import OrderSigner
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.registry import Registry
from skymesh.piecetransfer.exchange import piece_url
from skymesh.wire.node import PieceAction
from skymesh.wire.signing import ORDER_HEADER, encode_header

log = logging.getLogger(__name__)

BATCH = 500  # rows read and settled per transaction
CONCURRENCY = 8  # DELETE requests in flight at once
MAX_ROWS_PER_RUN = 100_000  # one run never holds the loop for longer than this many deletes


@dataclass
class GcStats:
    """What one run (or, summed, the collector since start) did; read by metrics."""

    deleted: int = 0  # nodes answered 204
    missing: int = 0  # nodes answered 404: the piece was already gone
    failed: int = 0  # node unreachable or refused: kept for retry
    deferred: int = 0  # due, but the node is offline: kept for retry
    dropped: int = 0  # the node is no longer registered: row dropped
    bytes: int = 0  # bytes of the pieces deleted

    def add(self, other: GcStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True)
class _Row:
    id: int
    node_id: str
    piece_id: str
    piece_size: int


_DUE = (
    sa.select(
        garbage_pieces.c.id,
        garbage_pieces.c.node_id,
        garbage_pieces.c.piece_id,
        garbage_pieces.c.piece_size,
    )
    .where(
        garbage_pieces.c.queued_at <= sa.bindparam("cutoff"),
        garbage_pieces.c.id > sa.bindparam("after"),
    )
    .order_by(garbage_pieces.c.id)
    .limit(sa.bindparam("limit"))
)
_SETTLE = garbage_pieces.delete().where(
    garbage_pieces.c.id.in_(sa.bindparam("ids", expanding=True))
)


def _due(conn: sa.Connection, *, cutoff: float, after: int) -> list[_Row]:
    params = {"cutoff": cutoff, "after": after, "limit": BATCH}
    return [_Row(*r) for r in conn.execute(_DUE, params)]


def _settle(conn: sa.Connection, *, ids: list[int]) -> None:
    conn.execute(_SETTLE, {"ids": ids})


_COUNT = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(garbage_pieces.c.piece_size), 0))


class GarbageCollector:
    """Deletes due garbage pieces from their nodes; :meth:`run_once` is one pass."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        orders: OrderSigner,
        session: aiohttp.ClientSession,
        *,
        grace: float,
        clock: Callable[[], float] = time.time,
        concurrency: int = CONCURRENCY,
    ):
        self.db = db
        self.registry = registry
        self.orders = orders
        self.session = session
        self.grace = grace
        self.clock = clock
        self.concurrency = concurrency
        self.totals = GcStats()

    async def queued(self) -> tuple[int, int]:
        """(pieces, bytes) waiting in ``garbage_pieces``, due or not."""
        row = await self.db.read(lambda conn: conn.execute(_COUNT).one())
        return int(row[0]), int(row[1])

    async def run_once(self) -> GcStats:
        """Try every row due now once; returns what this pass did."""
        stats = GcStats()
        now = self.clock()
        cutoff = now - self.grace
        nodes = {n.node_id: n for n in await self.registry.all_nodes()}
        after, seen = 0, 0
        while seen < MAX_ROWS_PER_RUN:
            rows = await self.db.read(partial(_due, cutoff=cutoff, after=after))
            if not rows:
                break
            after, seen = rows[-1].id, seen + len(rows)
            settled = await self._settle_batch(rows, nodes, now, stats)
            if settled:
                await self.db.write(partial(_settle, ids=settled))
            if len(rows) < BATCH:
                break
        self.totals.add(stats)
        if stats.deleted or stats.missing or stats.failed or stats.dropped:
            log.info(
                "garbage collection: %d deleted (%d bytes), %d already gone, %d failed,"
                " %d waiting for offline nodes, %d of unregistered nodes dropped",
                stats.deleted,
                stats.bytes,
                stats.missing,
                stats.failed,
                stats.deferred,
                stats.dropped,
            )
        return stats

    async def _settle_batch(
        self, rows: Sequence[_Row], nodes: dict[str, NodeRecord], now: float, stats: GcStats
    ) -> list[int]:
        """Send the batch's deletes; the ids of rows that may go."""
        settled: list[int] = []
        work: list[tuple[_Row, NodeRecord]] = []
        for row in rows:
            node = nodes.get(row.node_id)
            if node is None:
                stats.dropped += 1
                settled.append(row.id)
            elif not self.registry.is_online(node, now):
                stats.deferred += 1
            else:
                work.append((row, node))
        limit = asyncio.Semaphore(self.concurrency)

        async def one(row: _Row, node: NodeRecord) -> None:
            async with limit:
                status = await self._delete(node, row.piece_id, now)
            if status == 204:
                stats.deleted += 1
                stats.bytes += row.piece_size
                settled.append(row.id)
            elif status == 404:
                stats.missing += 1
                settled.append(row.id)
            else:
                stats.failed += 1

        await asyncio.gather(*(one(row, node) for row, node in work))
        return settled

    async def _delete(self, node: NodeRecord, piece_id: str, now: float) -> int:
        """The node's answer to a signed DELETE, or 0 when it could not be reached."""
        order = self.orders.order(node.node_id, piece_id, PieceAction.DELETE, 0, now)
        url = piece_url(node.address, piece_id)
        try:
            async with self.session.delete(
                url, headers={ORDER_HEADER: encode_header(order)}
            ) as resp:
                if resp.status not in (204, 404):
                    body = (await resp.read())[:200].decode(errors="replace")
                    log.warning(
                        "node %s refused to delete piece %s: %d %s",
                        node.node_id,
                        piece_id,
                        resp.status,
                        body,
                    )
                return resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            log.info("node %s unreachable for garbage collection: %s", node.node_id, e)
            return 0
