"""The durability report: how many healthy pieces each committed segment has left.

``GET /v1/admin/durability`` (admin token) and ``skymesh durability`` show, per
redundancy scheme, how many segments sit at each count of healthy pieces, how
many are at or below their repair threshold (what the repair checker queues),
and any below ``k``: lost until enough of their nodes come back.

What counts as healthy is decided in one place, :func:`healthy_nodes`, which
defers to ``coordinator/health.py`` (online, and not disqualified or exited once
reputations are passed in). The fold over segment rows, :func:`summarize`, is
pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from skymesh.coordinator import health
from skymesh.coordinator.db.schema import objects, pieces, segments
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.model import NodeRecord
from skymesh.coordinator.reputation import Reputation
from skymesh.wire.messages import (
    DurabilityReport,
    Scheme,
    SchemeHealth,
    SegmentHealth,
    SegmentPosition,
)

LIST_CAP = 100  # segments listed by name in each of at_risk and lost


def healthy_nodes(
    nodes: Iterable[NodeRecord],
    now: float,
    offline_after: float,
    reputation_of: Callable[[str], Reputation | None] = lambda _node_id: None,
) -> set[str]:
    """Ids of the nodes whose pieces count towards durability: the one rule, from ``health``."""
    return {
        n.node_id
        for n in nodes
        if health.healthy(n, reputation_of(n.node_id), now, offline_after=offline_after)
    }


@dataclass(frozen=True)
class SegmentRow:
    """One committed segment with pieces: where it is, its scheme, pieces stored and healthy."""

    bucket: str
    key: str
    part: int
    idx: int
    k: int
    repair: int
    optimal: int
    total: int
    stored: int
    healthy: int


@dataclass
class _Acc:
    segments: int = 0
    histogram: dict[int, int] = field(default_factory=dict)
    at_or_below_repair: int = 0
    lost: int = 0


def summarize(
    rows: Iterable[SegmentRow],
    *,
    generated_at: float,
    nodes: int,
    healthy_nodes: int,
    inline_segments: int,
    cap: int = LIST_CAP,
) -> DurabilityReport:
    """Fold segment rows into the report (pure)."""
    per_scheme: dict[tuple[int, int, int, int], _Acc] = {}
    at_risk: list[SegmentRow] = []
    lost: list[SegmentRow] = []
    total = at_risk_total = lost_total = 0
    for r in rows:
        total += 1
        acc = per_scheme.setdefault((r.k, r.repair, r.optimal, r.total), _Acc())
        acc.segments += 1
        acc.histogram[r.healthy] = acc.histogram.get(r.healthy, 0) + 1
        if r.healthy < r.k:
            acc.lost += 1
            lost_total += 1
            lost.append(r)
        if r.healthy <= r.repair:
            acc.at_or_below_repair += 1
            at_risk_total += 1
            at_risk.append(r)
        # Keep memory bounded on a large metadata store: only the worst ``cap``.
        if len(at_risk) > 4 * cap:
            at_risk = _worst(at_risk, cap)
        if len(lost) > 4 * cap:
            lost = _worst(lost, cap)
    return DurabilityReport(
        generated_at=generated_at,
        nodes=nodes,
        healthy_nodes=healthy_nodes,
        segments=total,
        inline_segments=inline_segments,
        schemes=[
            SchemeHealth(
                scheme=Scheme(k=k, repair=rep, optimal=opt, total=tot),
                segments=a.segments,
                histogram=dict(sorted(a.histogram.items())),
                at_or_below_repair=a.at_or_below_repair,
                lost=a.lost,
            )
            for (k, rep, opt, tot), a in sorted(per_scheme.items())
        ],
        at_risk=[_health(r) for r in _worst(at_risk, cap)],
        lost=[_health(r) for r in _worst(lost, cap)],
        lost_total=lost_total,
        at_risk_total=at_risk_total,
    )


def _worst(rows: Sequence[SegmentRow], cap: int) -> list[SegmentRow]:
    """Fewest healthy pieces above ``k`` first (the closest to loss), then by name."""
    return sorted(rows, key=lambda r: (r.healthy - r.k, r.bucket, r.key, r.part, r.idx))[:cap]


def _health(r: SegmentRow) -> SegmentHealth:
    return SegmentHealth(
        bucket=r.bucket,
        key=r.key,
        position=SegmentPosition(part=r.part, index=r.idx),
        healthy=r.healthy,
        stored=r.stored,
        scheme=Scheme(k=r.k, repair=r.repair, optimal=r.optimal, total=r.total),
    )


_JOIN_PIECES = sa.and_(
    pieces.c.stream_id == segments.c.stream_id,
    pieces.c.part == segments.c.part,
    pieces.c.idx == segments.c.idx,
)
_GROUP = (
    objects.c.bucket,
    objects.c.key,
    segments.c.stream_id,
    segments.c.part,
    segments.c.idx,
    segments.c.k,
    segments.c.repair,
    segments.c.optimal,
    segments.c.total,
)
_SEGMENT_HEALTH = (
    sa.select(
        objects.c.bucket,
        objects.c.key,
        segments.c.part,
        segments.c.idx,
        segments.c.k,
        segments.c.repair,
        segments.c.optimal,
        segments.c.total,
        sa.func.count(pieces.c.node_id).label("stored"),
        sa.func.coalesce(
            sa.func.sum(
                sa.case((pieces.c.node_id.in_(sa.bindparam("healthy", expanding=True)), 1), else_=0)
            ),
            0,
        ).label("healthy"),
    )
    .select_from(
        segments.join(objects, objects.c.stream_id == segments.c.stream_id).outerjoin(
            pieces, _JOIN_PIECES
        )
    )
    .where(segments.c.root_piece_id != "")
    .group_by(*_GROUP)
)
_INLINE = (
    sa.select(sa.func.count())
    .select_from(segments.join(objects, objects.c.stream_id == segments.c.stream_id))
    .where(segments.c.root_piece_id == "")
)


async def durability_report(
    m: Metainfo,
    reputation_of: Callable[[str], Reputation | None] = lambda _node_id: None,
) -> DurabilityReport:
    """The report over every committed segment, from one read snapshot."""
    now = m.clock()
    nodes = await m.registry.all_nodes()
    healthy = healthy_nodes(nodes, now, m.registry.offline_after, reputation_of)

    def txn(conn: sa.Connection) -> DurabilityReport:
        rows = (SegmentRow(*r) for r in conn.execute(_SEGMENT_HEALTH, {"healthy": sorted(healthy)}))
        inline = int(conn.execute(_INLINE).scalar_one())
        return summarize(
            rows,
            generated_at=now,
            nodes=len(nodes),
            healthy_nodes=len(healthy),
            inline_segments=inline,
        )

    return await m.db.read(txn)
