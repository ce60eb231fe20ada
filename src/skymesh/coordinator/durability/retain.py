"""Reconciliation: tell each node, with a signed Bloom filter, which pieces to keep.

The garbage collector (``durability/gc.py``) deletes what the metadata knows is
garbage. Pieces recorded nowhere (long-tail uploads cancelled after they had
stored, failed attempts, uploads that never committed) need the other
direction: for every online node this loop builds a filter of the piece ids it
should hold (every piece of every committed or pending segment there, derived
from the segment's root with ``derive_piece_id``, plus garbage rows still inside
``gc_grace``, so readers of a just-overwritten object keep their pieces until the
collector's own deadline), with its creation time and ``stored_before =
created_at - retain_grace``, and posts it to ``/v1/retain`` as msgpack behind a
signed ``RetainOrder`` naming its size and digest, which the node checks before
it reads the body. The node deletes pieces outside the filter that are older
than that (``node/retain.py``).

A filter is built from one read snapshot. A piece stored after ``stored_before``
is never deleted, whatever the filter says, so an upload whose segment commits
after the snapshot is safe as long as it took less than ``retain_grace`` from
storing a piece to committing its segment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import blake3
import msgspec
import sqlalchemy as sa

from skymesh.codec.bloom import DEFAULT_FP_RATE, BloomFilter
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import garbage_pieces, pieces, segments
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.registry import Registry
from skymesh.errors import SkymeshError
from skymesh.rpc import MSGPACK, RpcClient
from skymesh.wire.durability import RETAIN_PATH, RetainFilter, RetainOrder, RetainResponse
from skymesh.wire.identity import Identity
from skymesh.wire.pieces import derive_piece_id
from skymesh.wire.signing import ORDER_HEADER, encode_header, sign

log = logging.getLogger(__name__)

_HELD = (
    sa.select(segments.c.root_piece_id, pieces.c.piece_num)
    .select_from(
        pieces.join(
            segments,
            sa.and_(
                segments.c.stream_id == pieces.c.stream_id,
                segments.c.part == pieces.c.part,
                segments.c.idx == pieces.c.idx,
            ),
        )
    )
    .where(pieces.c.node_id == sa.bindparam("node_id"))
)
_YOUNG_GARBAGE = sa.select(garbage_pieces.c.piece_id).where(
    garbage_pieces.c.node_id == sa.bindparam("node_id"),
    garbage_pieces.c.queued_at > sa.bindparam("cutoff"),
)


@dataclass
class RetainStats:
    """What one run did; read by metrics and tests."""

    nodes_sent: int = 0
    nodes_failed: int = 0
    pieces: int = 0  # filter members, over all nodes
    filter_bytes: int = 0
    removed_reported: int = 0  # removals the nodes reported for their previous filter


class Reconciler:
    """Builds, signs and sends one retain filter per online node; :meth:`run_once` is one round."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        identity: Identity,
        session: aiohttp.ClientSession,
        *,
        grace: float,
        gc_grace: float,
        fp_rate: float = DEFAULT_FP_RATE,
        clock: Callable[[], float] = time.time,
    ):
        self.db = db
        self.registry = registry
        self.identity = identity
        self.session = session
        self.grace = grace
        self.gc_grace = gc_grace
        self.fp_rate = fp_rate
        self.clock = clock
        self.totals = RetainStats()  # every run's, summed since start (for metrics)
        self.last: dict[str, RetainResponse] = {}  # node id -> its last answer

    async def build(self, node_id: str, now: float) -> RetainFilter:
        """The signed-to-be filter of what ``node_id`` should keep, as of ``now``."""
        params = {"node_id": node_id, "cutoff": now - self.gc_grace}

        def txn(conn: sa.Connection) -> list[str]:
            ids = [derive_piece_id(r, n) for r, n in conn.execute(_HELD, params)]
            ids.extend(conn.execute(_YOUNG_GARBAGE, params).scalars())
            return ids

        ids = await self.db.read(txn)

        def fill() -> BloomFilter:
            bloom = BloomFilter.for_count(len(ids), self.fp_rate)
            bloom.update(ids)  # ~10 us a piece: a thread, not the event loop
            return bloom

        bloom = await asyncio.to_thread(fill)
        return RetainFilter(
            node_id=node_id,
            created_at=now,
            stored_before=now - self.grace,
            piece_count=len(ids),
            num_bits=bloom.num_bits,
            hashes=bloom.hashes,
            seed=bloom.seed,
            bits=bloom.to_bytes(),
        )

    async def send(self, node: NodeRecord, now: float) -> RetainFilter:
        """Build and post ``node``'s filter; raises what the node answered on refusal."""
        f = await self.build(node.node_id, now)
        body = msgspec.msgpack.encode(f)
        order = RetainOrder(
            node_id=node.node_id,
            created_at=f.created_at,
            size=len(body),
            digest=blake3.blake3(body).digest(),
        )
        rpc = RpcClient(node.address, self.session)
        self.last[node.node_id] = await rpc.request(
            "POST",
            RETAIN_PATH,
            RetainResponse,
            body=body,
            headers={
                "Content-Type": MSGPACK,
                ORDER_HEADER: encode_header(sign(self.identity, order)),
            },
        )
        return f

    async def run_once(self) -> RetainStats:
        stats = RetainStats()
        now = self.clock()
        for node in await self.registry.all_nodes():
            if not self.registry.is_online(node, now):
                continue
            try:
                f = await self.send(node, now)
            except SkymeshError as e:
                stats.nodes_failed += 1
                log.warning("node %s did not take its retain filter: %s", node.node_id, e)
                continue
            stats.nodes_sent += 1
            stats.pieces += f.piece_count
            stats.filter_bytes += len(f.bits)
            last = self.last[node.node_id].last
            if last is not None:
                stats.removed_reported += last.removed
        log.info(
            "retain filters sent to %d nodes (%d failed): %d pieces, %d bytes of filters",
            stats.nodes_sent,
            stats.nodes_failed,
            stats.pieces,
            stats.filter_bytes,
        )
        t = self.totals
        t.nodes_sent += stats.nodes_sent
        t.nodes_failed += stats.nodes_failed
        t.pieces += stats.pieces
        t.filter_bytes += stats.filter_bytes
        t.removed_reported += stats.removed_reported
        return stats
