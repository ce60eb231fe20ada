"""Is a piece healthy, and how healthy is a segment? One rule, for repair, audits and reports.

A piece counts towards its segment's durability when its node is registered,
admitted (its operator not revoked: ``NodeRecord.admitted``), online, and not
disqualified. Pieces on a node that is exiting gracefully stay
healthy (they are still there and readable) until repair has moved them; they
are *misplaced* (:func:`needs_move`), which is what makes repair move them
before the node leaves, so a drain never lowers a segment's health.

Every stored piece of a segment is one of (:func:`assess`):

- **healthy and in place**: kept as it is;
- **healthy but misplaced**: on an exiting node, on a node outside the bucket's
  residency, or one piece too many in a region (losing that region would leave
  fewer than ``k``); still readable, so it can be a source, but it is replaced and
  dropped;
- **lost**: unknown, not admitted, offline or disqualified node; dropped.

A segment needs repair when its healthy pieces are at or under ``repair``, or when
anything is misplaced.

The repair checker and the durability report both walk the segments with
:func:`scan_segments` and judge each with one :class:`Judge`, so the count the
report prints is the count the checker queues by. Everything above the reads at
the bottom is pure.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from skymesh.codec import RedundancyScheme
from skymesh.config import CoordinatorConfig
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import objects, pieces, segments
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.reputation import Reputation
from skymesh.coordinator.overlay.residency import (
    ANYWHERE,
    Jurisdictions,
    Residency,
    residency,
    stream_constraints,
)

DEFAULT_OFFLINE_AFTER = CoordinatorConfig().offline_after
SCAN_BATCH = 500  # segments per read of a scan


def healthy(
    node: NodeRecord | None,
    reputation: Reputation | None,
    now: float,
    *,
    offline_after: float = DEFAULT_OFFLINE_AFTER,
) -> bool:
    """True when a piece on ``node`` can be counted on (pass the registry's ``offline_after``).

    ``reputation`` None means the node has no audit history yet: judged on being online.
    A node whose operator was revoked holds nothing that counts, online or not.
    """
    if node is None or not node.admitted or not node.is_online(now, offline_after):
        return False
    return reputation is None or not (reputation.disqualified or reputation.exited)


def needs_move(reputation: Reputation | None) -> bool:
    """The piece is readable but should live elsewhere: its node is leaving."""
    return reputation is not None and reputation.exiting


@dataclass(frozen=True)
class StoredPiece:
    piece_num: int
    node_id: str
    merkle_root: bytes


@dataclass(frozen=True)
class SegmentHealth:
    healthy: list[StoredPiece] = field(default_factory=list)  # readable (misplaced included)
    keep: list[StoredPiece] = field(default_factory=list)  # healthy and in place
    misplaced: list[StoredPiece] = field(default_factory=list)
    lost: list[StoredPiece] = field(default_factory=list)

    @property
    def healthy_count(self) -> int:
        return len(self.healthy)


def assess(
    stored: Sequence[StoredPiece],
    scheme: RedundancyScheme,
    nodes: Mapping[str, NodeRecord],
    reputations: Mapping[str, Reputation],
    now: float,
    *,
    offline_after: float,
    region_spread: bool = True,
    residency: Residency = ANYWHERE,
) -> SegmentHealth:
    """Sort a segment's pieces into kept, misplaced and lost.

    ``region_spread`` asks for the region rule (the caller turns it off when the
    segment's residency has fewer than three regions with nodes, where no placement
    could satisfy it).
    """
    out = SegmentHealth()
    for p in stored:
        node = nodes.get(p.node_id)
        rep = reputations.get(p.node_id)
        if not healthy(node, rep, now, offline_after=offline_after):
            out.lost.append(p)
        elif needs_move(rep) or (node is not None and not residency.allows(node.region)):
            out.healthy.append(p)
            out.misplaced.append(p)
        else:
            out.healthy.append(p)
            out.keep.append(p)
    if region_spread:
        # After repair the segment holds `optimal` pieces; a region may keep at most
        # optimal - k of them, so that losing it leaves k.
        limit = max(scheme.optimal - scheme.k, 1)
        per_region: Counter[str] = Counter()
        crowded: list[StoredPiece] = []
        for p in sorted(out.keep, key=lambda p: p.piece_num):
            region = nodes[p.node_id].region
            per_region[region] += 1
            if per_region[region] > limit:
                crowded.append(p)
        if crowded:
            out.keep[:] = [p for p in out.keep if p not in crowded]
            out.misplaced.extend(crowded)
    return out


def needs_repair(health: SegmentHealth, scheme: RedundancyScheme) -> bool:
    return health.healthy_count <= scheme.repair or bool(health.misplaced)


def region_spread_possible(
    nodes: Mapping[str, NodeRecord],
    now: float,
    offline_after: float,
    where: Residency = ANYWHERE,
) -> bool:
    """The region rule holds only where three or more regions (inside ``where``) have nodes up.

    A bucket kept in one region, or in a group of two, cannot survive the loss of a
    region whatever placement does; there pieces spread over operators instead.
    """
    regions = {
        n.region
        for n in nodes.values()
        if n.admitted and n.is_online(now, offline_after) and where.allows(n.region)
    }
    return len(regions) >= 3


@dataclass(frozen=True)
class StoredSegment:
    """One segment with pieces as a scan reads it."""

    stream_id: str
    part: int
    idx: int
    scheme: RedundancyScheme
    pieces: list[StoredPiece]
    constraint: str = ""  # its bucket's location constraint
    bucket: str | None = None  # the committed object's bucket and key; None while pending
    key: str | None = None

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.stream_id, self.part, self.idx)


@dataclass
class Judge:
    """:func:`assess` with one snapshot of nodes and reputations, for many segments."""

    nodes: Mapping[str, NodeRecord]
    reputations: Mapping[str, Reputation]
    now: float
    offline_after: float
    jurisdictions: Jurisdictions
    _spread: dict[str, bool] = field(default_factory=dict)  # per location constraint

    def __call__(self, seg: StoredSegment) -> SegmentHealth:
        where = residency(seg.constraint, self.jurisdictions)
        spread = self._spread.get(seg.constraint)
        if spread is None:
            spread = region_spread_possible(self.nodes, self.now, self.offline_after, where)
            self._spread[seg.constraint] = spread
        return assess(
            seg.pieces,
            seg.scheme,
            self.nodes,
            self.reputations,
            self.now,
            offline_after=self.offline_after,
            region_spread=spread,
            residency=where,
        )


# ---------------------------------------------------------------- reads


@dataclass(frozen=True)
class Since:
    """Narrows a scan to segments with a piece on ``nodes`` or created at or after ``created``."""

    nodes: Sequence[str]
    created: float


async def scan_segments(
    db: Database, batch: int = SCAN_BATCH, only: Since | None = None
) -> AsyncIterator[list[StoredSegment]]:
    """Every segment with pieces (committed or pending), ``batch`` at a time in key order.

    Each batch is one read transaction; memory holds one batch. ``only`` narrows
    the scan (the repair checker's incremental rounds).
    """
    cursor: tuple[str, int, int] | None = None
    while True:
        got = await db.read(functools.partial(read_segments, after=cursor, limit=batch, only=only))
        if not got:
            return
        yield got
        if len(got) < batch:
            return
        cursor = got[-1].position


_SEGMENT_COLUMNS = (
    segments.c.stream_id,
    segments.c.part,
    segments.c.idx,
    segments.c.k,
    segments.c.repair,
    segments.c.optimal,
    segments.c.total,
)


def read_segments(
    conn: sa.Connection,
    after: tuple[str, int, int] | None,
    limit: int = SCAN_BATCH,
    only: Since | None = None,
) -> list[StoredSegment]:
    """Up to ``limit`` segments with pieces after ``after``, with their pieces and names."""
    key = sa.tuple_(segments.c.stream_id, segments.c.part, segments.c.idx)
    q = (
        sa.select(*_SEGMENT_COLUMNS)
        .where(segments.c.k > 0)
        .order_by(segments.c.stream_id, segments.c.part, segments.c.idx)
        .limit(limit)
    )
    if after is not None:
        q = q.where(key > sa.tuple_(*(sa.literal(v) for v in after)))
    if only is not None:
        on_nodes = sa.select(pieces.c.stream_id, pieces.c.part, pieces.c.idx).where(
            pieces.c.node_id.in_(list(only.nodes))
        )
        q = q.where(sa.or_(key.in_(on_nodes), segments.c.created_at >= only.created))
    return _with_pieces(conn, conn.execute(q).all())


def read_stream_segments(conn: sa.Connection, stream_id: str) -> list[StoredSegment]:
    """One object's segments with pieces (inline ones left out), in order, with their pieces."""
    q = (
        sa.select(*_SEGMENT_COLUMNS)
        .where(segments.c.stream_id == stream_id, segments.c.k > 0)
        .order_by(segments.c.part, segments.c.idx)
    )
    return _with_pieces(conn, conn.execute(q).all())


def _with_pieces(conn: sa.Connection, seg_rows: Sequence[Any]) -> list[StoredSegment]:
    """Segment rows (stream_id, part, idx, k, repair, optimal, total) with their pieces,
    names and location constraints."""
    if not seg_rows:
        return []
    stream_ids = sorted({r.stream_id for r in seg_rows})
    by_seg: dict[tuple[str, int, int], list[StoredPiece]] = {}
    for p in conn.execute(
        sa.select(
            pieces.c.stream_id,
            pieces.c.part,
            pieces.c.idx,
            pieces.c.piece_num,
            pieces.c.node_id,
            pieces.c.merkle_root,
        ).where(pieces.c.stream_id.in_(stream_ids))
    ):
        by_seg.setdefault((p.stream_id, p.part, p.idx), []).append(
            StoredPiece(p.piece_num, p.node_id, p.merkle_root)
        )
    names = {
        r.stream_id: (r.bucket, r.key)
        for r in conn.execute(
            sa.select(objects.c.stream_id, objects.c.bucket, objects.c.key).where(
                objects.c.stream_id.in_(stream_ids)
            )
        )
    }
    constraints = stream_constraints(conn, stream_ids)
    return [
        StoredSegment(
            stream_id=r.stream_id,
            part=r.part,
            idx=r.idx,
            scheme=RedundancyScheme(r.k, r.repair, r.optimal, r.total),
            pieces=by_seg.get((r.stream_id, r.part, r.idx), []),
            constraint=constraints.get(r.stream_id, ""),
            bucket=names.get(r.stream_id, (None, None))[0],
            key=names.get(r.stream_id, (None, None))[1],
        )
        for r in seg_rows
    ]
