"""The repair worker: rebuild a segment's missing pieces without decrypting, and re-place them.

For the queue's most endangered segment (fewest healthy pieces first):

1. read the segment and its piece rows (one snapshot);
2. download ``k`` healthy pieces whole, each checked against the Merkle root from
   its receipt (pyeclib's reconstruct has no checksum: a bad source would yield bad
   pieces); a piece that fails the check is treated as lost. ``k + SOURCE_EXTRA``
   sources are asked at once and the rest cancelled once ``k`` verified pieces are
   in, and a source silent for ``SOURCE_STALL_TIMEOUT`` is given up: a hung node
   that is still listed online must not hold the repair (and the queue behind it)
   for the 60 s node RPC timeout;
3. rebuild the missing piece numbers stripe by stripe from the ciphertext
   fragments (``ErasureCoder.reconstruct_stripes``): no key is needed and nothing
   is decrypted;
4. upload them to new nodes chosen around the segment's remaining regions and
   operators (:func:`placement.select_additional_nodes`), with PUT orders, and
   check each receipt (signer, size, Merkle root of the bytes sent);
5. swap the piece rows in one transaction, only if the segment and its piece rows
   are exactly as read in step 1; otherwise the object was deleted or overwritten
   meanwhile (or another repair won) and the new pieces go to ``garbage_pieces``.

Memory: one segment's pieces at a time (at most ``k + SOURCE_EXTRA`` sources and the
rebuilt pieces). Bandwidth is metered per repair (``RepairStats``) and in totals for
metrics: every piece body received counts, used or not.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import sqlalchemy as sa

from skymesh import errors
from skymesh.codec import ErasureCoder, RedundancyScheme, SegmentLayout
from skymesh.codec.merkle import chunk_hashes, merkle_root
from skymesh.coordinator.db.schema import garbage_pieces, pieces, repair_queue, segments
from skymesh.coordinator.durability.health import needs_move, region_spread_possible
from skymesh.coordinator.durability.repair.plan import StoredPiece, assess, numbers_to_rebuild
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.placement import limit_new_nodes, select_additional_nodes
from skymesh.coordinator.overlay.reputation import ReputationBook
from skymesh.coordinator.overlay.residency import Residency, residency, stream_constraints
from skymesh.piecetransfer.exchange import get_verified_range, put_piece
from skymesh.piecetransfer.receipts import check_receipt
from skymesh.wire.metainfo import AddressedOrder, DownloadPiece
from skymesh.wire.node import PieceAction
from skymesh.wire.pieces import derive_piece_id

log = logging.getLogger(__name__)

UPLOAD_CHUNK = 1024 * 1024
SOURCE_EXTRA = 2  # sources fetched beyond k, as the client's download does
# Seconds without a byte from a source before it is given up for the next one.
SOURCE_STALL_TIMEOUT = 5.0
_SOURCE_TIMEOUT = aiohttp.ClientTimeout(
    total=60.0, sock_connect=5.0, sock_read=SOURCE_STALL_TIMEOUT
)


@dataclass
class RepairStats:
    """One repair, for the log line and the totals."""

    segment: tuple[str, int, int]
    healthy_before: int = 0
    rebuilt: int = 0
    dropped: int = 0
    bytes_downloaded: int = 0
    bytes_uploaded: int = 0
    outcome: str = ""  # repaired | unchanged | stale | failed
    seconds: float = 0.0
    new_nodes: list[str] = field(default_factory=list)


@dataclass
class RepairTotals:
    """Counters since start, for a metrics endpoint."""

    repaired: int = 0
    stale: int = 0
    failed: int = 0
    pieces_rebuilt: int = 0
    bytes_downloaded: int = 0
    bytes_uploaded: int = 0


@dataclass(frozen=True)
class _Segment:
    stream_id: str
    part: int
    idx: int
    root_piece_id: str
    plain_size: int
    block_size: int
    scheme: RedundancyScheme
    piece_size: int
    stored: list[StoredPiece]
    constraint: str = ""  # the bucket's location constraint: new pieces stay inside it


class RepairWorker:
    def __init__(
        self,
        m: Metainfo,
        book: ReputationBook,
        session: aiohttp.ClientSession,
        *,
        idle_interval: float,
        retry_after: float,
        rng: random.Random | None = None,
    ) -> None:
        self.m = m
        self.book = book
        self.session = session
        self.idle_interval = idle_interval
        self.retry_after = retry_after
        self.rng = rng or random.Random()
        self.totals = RepairTotals()
        self.last: RepairStats | None = None

    async def step(self) -> float:
        """Repair the most endangered queued segment; 0 while more wait, else the idle wait."""
        stats = await self.repair_next()
        return self.idle_interval if stats is None else 0.0

    async def repair_next(self) -> RepairStats | None:
        now = self.m.clock()
        q = repair_queue.c
        row = await self.m.db.read(
            lambda conn: conn.execute(
                sa.select(q.stream_id, q.part, q.idx)
                .where(sa.or_(q.attempted_at.is_(None), q.attempted_at < now - self.retry_after))
                .order_by(q.healthy, q.queued_at)
                .limit(1)
            ).one_or_none()
        )
        if row is None:
            return None
        key = (row.stream_id, row.part, row.idx)
        try:
            stats = await self.repair(key)
        except Exception as e:
            log.warning(
                "repair of segment %s failed: %s; retrying in %.0f s", key, e, self.retry_after
            )
            self.totals.failed += 1
            await self.m.db.write(
                lambda conn: conn.execute(
                    repair_queue.update()
                    .where(q.stream_id == key[0], q.part == key[1], q.idx == key[2])
                    .values(attempted_at=now)
                )
            )
            stats = RepairStats(segment=key, outcome="failed")
        self.last = stats
        return stats

    async def repair(self, key: tuple[str, int, int]) -> RepairStats:
        """Repair one segment now (whether queued or not)."""
        started = time.monotonic()
        m = self.m
        stats = RepairStats(segment=key)
        seg = await m.db.read(lambda conn: _load_segment(conn, key))
        if seg is None:  # deleted since it was queued
            await m.db.write(lambda conn: _dequeue(conn, key))
            stats.outcome = "stale"
            self.totals.stale += 1
            return stats
        now = m.clock()
        nodes = {n.node_id: n for n in await m.registry.all_nodes()}
        reps = await self.book.refresh()
        where = residency(seg.constraint, m.config.jurisdictions)
        spread = region_spread_possible(nodes, now, m.config.offline_after, where)
        health = assess(
            seg.stored,
            seg.scheme,
            nodes,
            reps,
            now,
            offline_after=m.config.offline_after,
            region_spread=spread,
            residency=where,
        )
        stats.healthy_before = health.healthy_count
        keep = list(health.keep)
        misplaced = list(health.misplaced)
        lost = list(health.lost)
        stored: list[tuple[int, str, bytes]] = []
        if first_wanted := numbers_to_rebuild(keep, seg.scheme):
            if len(health.healthy) < seg.scheme.k:
                raise errors.Unavailable(
                    f"only {len(health.healthy)} healthy pieces of {seg.scheme.k} needed"
                )
            # Nodes first (metadata only): no download when there is nowhere to put pieces.
            targets = await self._targets(seg, keep + misplaced, len(first_wanted), nodes)
            if not targets:
                raise errors.Unavailable(
                    "every eligible node already holds a piece of the segment; waiting for"
                    " more nodes"
                )
            only_spread = health.healthy_count > seg.scheme.repair and not any(
                needs_move(reps.get(p.node_id)) or not where.allows(nodes[p.node_id].region)
                for p in misplaced
            )
            if spread and only_spread and not _spread_better(keep, targets, nodes, seg.scheme):
                raise errors.Unavailable(
                    "no eligible node would spread the segment over regions better; waiting"
                    " for more nodes"
                )
            # 2. k verified sources: pieces that stay first, then misplaced ones.
            sources, bad = await self._fetch_sources(seg, keep + misplaced, nodes, stats)
            keep = [p for p in keep if p.piece_num not in bad]
            misplaced = [p for p in misplaced if p.piece_num not in bad]
            lost += [p for p in seg.stored if p.piece_num in bad]
            wanted = numbers_to_rebuild(keep, seg.scheme)
            # 3. rebuild, without decrypting
            layout = SegmentLayout(seg.plain_size, seg.block_size, seg.scheme)
            coder = ErasureCoder(seg.scheme)
            stripe_lens = layout.stripe_lens(range(layout.block_count))
            # A misplaced piece that served as a source is moved as it is: it was
            # verified against its root, and the codec cannot rebuild a piece it is given.
            to_build = [num for num in wanted if num not in sources]
            rebuilt: dict[int, bytearray] = {}
            if to_build:
                rebuilt = await asyncio.to_thread(
                    coder.reconstruct_stripes, sources, stripe_lens, to_build
                )
            for num in wanted:
                if num in sources:
                    rebuilt[num] = bytearray(sources[num])
            sources.clear()
            # 4. upload (more nodes if sources failed their check and more must be rebuilt)
            if len(wanted) > len(targets):
                targets += await self._targets(
                    seg, keep + misplaced, len(wanted) - len(targets), nodes, skip=targets
                )
            stored = await self._upload(seg, rebuilt, targets, nodes, stats)
            rebuilt.clear()
            if not stored:
                raise errors.Unavailable("no rebuilt piece could be stored on any node")
            new_nums = {num for num, _, _ in stored}
            complete = len(stored) == len(wanted)
            # A misplaced piece leaves only once its replacement is stored.
            misplaced = [p for p in misplaced if complete or p.piece_num in new_nums]
        drop = lost + misplaced
        # A partial repair (too few targets, failed stores) that leaves the segment
        # still needing repair goes back on the queue at once, for a retry after
        # ``retry_after``, instead of waiting for a checker scan to find it again.
        still = [p for p in health.misplaced if p not in drop and p not in lost]
        after = len(keep) + len(stored) + len(still)
        requeue = after if after <= seg.scheme.repair or still else None
        # 5. swap
        swapped = await m.db.write(
            lambda conn: _swap(conn, seg, stored, drop, m.clock(), requeue=requeue)
        )
        stats.rebuilt = len(stored)
        stats.new_nodes = [node_id for _, node_id, _ in stored]
        stats.seconds = time.monotonic() - started
        if not swapped:
            stats.outcome = "stale"
            self.totals.stale += 1
            log.info("segment %s changed during repair; new pieces queued as garbage", key)
            return stats
        stats.outcome = "repaired"
        stats.dropped = len(drop)
        stats.seconds = time.monotonic() - started
        t = self.totals
        t.repaired += 1
        t.pieces_rebuilt += stats.rebuilt
        t.bytes_downloaded += stats.bytes_downloaded
        t.bytes_uploaded += stats.bytes_uploaded
        log.info(
            "repaired segment %s/%d/%d: %d healthy before, %d rebuilt, %d dropped;"
            " %d bytes down, %d up, %.2f s",
            seg.stream_id,
            seg.part,
            seg.idx,
            stats.healthy_before,
            stats.rebuilt,
            stats.dropped,
            stats.bytes_downloaded,
            stats.bytes_uploaded,
            stats.seconds,
        )
        return stats

    # ------------------------------------------------------------ download

    async def _fetch_sources(
        self,
        seg: _Segment,
        candidates: list[StoredPiece],
        nodes: dict[str, NodeRecord],
        stats: RepairStats,
    ) -> tuple[dict[int, bytes], set[int]]:
        """``k`` whole pieces that match their Merkle roots, and the numbers of those that did not.

        ``k + SOURCE_EXTRA`` downloads run at once; each one that ends without a
        verified piece makes room for the next candidate.
        """
        k = seg.scheme.k
        got: dict[int, bytes] = {}
        bad: set[int] = set()
        queue = list(candidates)
        running: dict[asyncio.Task[bytes], StoredPiece] = {}

        def launch() -> None:
            while queue and len(running) < k + SOURCE_EXTRA - len(got):
                p = queue.pop(0)
                task = asyncio.create_task(self._fetch_one(seg, p, nodes[p.node_id], stats))
                running[task] = p

        try:
            launch()
            while running and len(got) < k:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    p = running.pop(task)
                    result = task.exception()
                    if result is None:
                        if len(got) < k:
                            got[p.piece_num] = task.result()
                    elif isinstance(result, errors.IntegrityError):
                        log.warning(
                            "repair: piece %d of %s on node %s fails its Merkle check: %s",
                            p.piece_num,
                            seg.stream_id,
                            p.node_id,
                            result,
                        )
                        bad.add(p.piece_num)
                    else:
                        log.info(
                            "repair: piece %d on node %s unreadable: %r",
                            p.piece_num,
                            p.node_id,
                            result,
                        )
                launch()
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        if len(got) < k:
            raise errors.Unavailable(f"read only {len(got)} of {k} pieces needed to rebuild")
        return got, bad

    async def _fetch_one(
        self, seg: _Segment, p: StoredPiece, node: NodeRecord, stats: RepairStats
    ) -> bytes:
        piece_id = derive_piece_id(seg.root_piece_id, p.piece_num)
        order = self.m.orders.order(
            node.node_id, piece_id, PieceAction.GET, seg.piece_size, purpose="repair"
        )
        target = DownloadPiece(
            piece_num=p.piece_num,
            node_id=node.node_id,
            address=node.address,
            region=node.region,
            merkle_root=p.merkle_root,
            order=order,
        )
        data = await get_verified_range(
            self.session,
            target,
            seg.root_piece_id,
            seg.piece_size,
            0,
            seg.piece_size,
            timeout=_SOURCE_TIMEOUT,
        )
        stats.bytes_downloaded += len(data)
        return data

    # ------------------------------------------------------------ upload

    async def _targets(
        self,
        seg: _Segment,
        staying: list[StoredPiece],
        count: int,
        nodes: dict[str, NodeRecord],
        skip: list[NodeRecord] | None = None,
    ) -> list[NodeRecord]:
        """Up to ``count`` new nodes for the segment, placed around the pieces that stay.

        Only nodes inside the bucket's residency qualify, whatever is left outside.
        """
        m = self.m
        now = m.clock()
        where: Residency = residency(seg.constraint, m.config.jurisdictions)
        barred, unvetted = await m.registry.placement_filters()
        held = {p.node_id for p in seg.stored} | {n.node_id for n in skip or []}
        # A node with a queued garbage row for a piece of this segment must not get that
        # piece id back: the collector deletes by (node, piece id) and would take the
        # new copy. Leave such nodes out altogether.
        held |= await m.db.read(lambda conn: _garbage_holders(conn, seg))
        eligible = [
            n
            for n in nodes.values()
            if n.node_id not in barred
            and where.allows(n.region)
            and n.node_id not in held
            and m.registry.is_online(n, now)
            and n.free_bytes >= seg.piece_size
        ]
        eligible = limit_new_nodes(eligible, count, unvetted, m.config.new_node_fraction, self.rng)
        existing = [nodes[p.node_id] for p in staying if p.node_id in nodes] + list(skip or [])
        return select_additional_nodes(eligible, existing, min(count, len(eligible)), self.rng)

    async def _upload(
        self,
        seg: _Segment,
        rebuilt: dict[int, bytearray],
        targets: list[NodeRecord],
        nodes: dict[str, NodeRecord],
        stats: RepairStats,
    ) -> list[tuple[int, str, bytes]]:
        """Store each rebuilt piece on its target; (piece_num, node_id, merkle_root) of those stored.

        A failed store is retried on another eligible node while any are left.
        """
        m = self.m
        spare: list[NodeRecord] | None = None  # found on the first failure
        stored: list[tuple[int, str, bytes]] = []
        roots = {num: merkle_root(chunk_hashes(data)) for num, data in rebuilt.items()}

        async def store(num: int, node: NodeRecord) -> tuple[int, str, bytes]:
            piece_id = derive_piece_id(seg.root_piece_id, num)
            order = m.orders.order(node.node_id, piece_id, PieceAction.PUT, seg.piece_size)
            target = AddressedOrder(
                piece_num=num,
                node_id=node.node_id,
                address=node.address,
                region=node.region,
                order=order,
            )
            signed = await put_piece(
                self.session, target, seg.root_piece_id, _chunks(rebuilt[num]), seg.piece_size
            )
            check_receipt(
                signed,
                node_id=node.node_id,
                piece_id=piece_id,
                size=seg.piece_size,
                node_key=node.public_key,
                merkle_root=roots[num],
            )
            stats.bytes_uploaded += seg.piece_size
            return num, node.node_id, roots[num]

        todo = list(zip(sorted(rebuilt), targets, strict=False))
        while todo:
            results = await asyncio.gather(
                *(store(num, node) for num, node in todo), return_exceptions=True
            )
            retry: list[tuple[int, NodeRecord]] = []
            for (num, node), result in zip(todo, results, strict=True):
                if isinstance(result, tuple):
                    stored.append(result)
                else:
                    log.info(
                        "repair: storing piece %d on node %s failed: %s", num, node.node_id, result
                    )
                    if spare is None:
                        spare = await self._targets(seg, [], len(nodes), nodes, skip=targets)
                    if spare:
                        retry.append((num, spare.pop(0)))
            todo = retry
        return stored


async def _chunks(data: bytearray) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), UPLOAD_CHUNK):
        yield bytes(view[start : start + UPLOAD_CHUNK])


# ---------------------------------------------------------------- transactions


def _where_segment(table: sa.Table, key: tuple[str, int, int]) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.stream_id == key[0], table.c.part == key[1], table.c.idx == key[2])


def _load_segment(conn: sa.Connection, key: tuple[str, int, int]) -> _Segment | None:
    s = conn.execute(sa.select(segments).where(_where_segment(segments, key))).one_or_none()
    if s is None or not s.k:
        return None
    rows = conn.execute(
        sa.select(pieces.c.piece_num, pieces.c.node_id, pieces.c.merkle_root).where(
            _where_segment(pieces, key)
        )
    ).all()
    return _Segment(
        stream_id=s.stream_id,
        part=s.part,
        idx=s.idx,
        root_piece_id=s.root_piece_id,
        plain_size=s.plain_size,
        block_size=s.block_size,
        scheme=RedundancyScheme(s.k, s.repair, s.optimal, s.total),
        piece_size=s.piece_size,
        stored=[StoredPiece(r.piece_num, r.node_id, r.merkle_root) for r in rows],
        constraint=stream_constraints(conn, [s.stream_id]).get(s.stream_id, ""),
    )


def _spread_better(
    keep: list[StoredPiece],
    targets: list[NodeRecord],
    nodes: dict[str, NodeRecord],
    scheme: RedundancyScheme,
) -> bool:
    """Would ``targets`` leave every region within ``optimal - k`` pieces?"""
    counts = Counter(nodes[p.node_id].region for p in keep if p.node_id in nodes)
    counts.update(n.region for n in targets)
    return max(counts.values(), default=0) <= max(scheme.optimal - scheme.k, 1)


def _garbage_holders(conn: sa.Connection, seg: _Segment) -> set[str]:
    ids = [derive_piece_id(seg.root_piece_id, n) for n in range(seg.scheme.total)]
    g = garbage_pieces.c
    return set(conn.execute(sa.select(g.node_id).where(g.piece_id.in_(ids)).distinct()).scalars())


def _dequeue(conn: sa.Connection, key: tuple[str, int, int]) -> None:
    conn.execute(repair_queue.delete().where(_where_segment(repair_queue, key)))


def _garbage(conn: sa.Connection, seg: _Segment, held: list[tuple[int, str]], now: float) -> None:
    if held:
        conn.execute(
            garbage_pieces.insert(),
            [
                {
                    "node_id": node_id,
                    "piece_id": derive_piece_id(seg.root_piece_id, num),
                    "queued_at": now,
                    "piece_size": seg.piece_size,
                }
                for num, node_id in held
            ],
        )


def _swap(
    conn: sa.Connection,
    seg: _Segment,
    stored: list[tuple[int, str, bytes]],
    drop: list[StoredPiece],
    now: float,
    requeue: int | None = None,
) -> bool:
    """Put the new pieces in and the dropped ones out, if the segment is as it was read.

    False (new pieces queued as garbage instead) when the segment is gone, was
    replaced (another root piece id) or its pieces changed since the read.
    ``requeue``: the healthy count to queue the segment again with, as a failed
    attempt (retried after ``retry_after``); None takes it off the queue.
    """
    key = (seg.stream_id, seg.part, seg.idx)
    _dequeue(conn, key)
    current = conn.execute(  # locked: a concurrent delete waits for the swap (PostgreSQL)
        sa.select(segments.c.root_piece_id).where(_where_segment(segments, key)).with_for_update()
    ).scalar_one_or_none()
    rows = conn.execute(
        sa.select(pieces.c.piece_num, pieces.c.node_id).where(_where_segment(pieces, key))
    ).all()
    as_read = {(p.piece_num, p.node_id) for p in seg.stored}
    if current != seg.root_piece_id or {(r.piece_num, r.node_id) for r in rows} != as_read:
        _garbage(conn, seg, [(num, node_id) for num, node_id, _ in stored], now)
        return False
    if drop:
        conn.execute(
            pieces.delete().where(
                _where_segment(pieces, key),
                pieces.c.piece_num.in_([p.piece_num for p in drop]),
            )
        )
        _garbage(conn, seg, [(p.piece_num, p.node_id) for p in drop], now)
    if stored:
        conn.execute(
            pieces.insert(),
            [
                {
                    "stream_id": seg.stream_id,
                    "part": seg.part,
                    "idx": seg.idx,
                    "piece_num": num,
                    "node_id": node_id,
                    "merkle_root": root,
                }
                for num, node_id, root in stored
            ],
        )
    if requeue is not None:
        conn.execute(
            repair_queue.insert().values(
                stream_id=seg.stream_id,
                part=seg.part,
                idx=seg.idx,
                healthy=requeue,
                queued_at=now,
                attempted_at=now,
            )
        )
    return True
