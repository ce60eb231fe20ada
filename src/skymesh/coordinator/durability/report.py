"""The durability report: how many healthy pieces each committed segment has left.

``GET /v1/admin/durability`` (admin token) and ``skymesh durability`` show, per
redundancy scheme, how many segments sit at each count of healthy pieces, how
many are at or below their repair threshold (what the repair checker queues),
and any below ``k``: lost until enough of their nodes come back.

What counts as healthy is decided in one place, ``durability/health.py``: the
report walks the segments with the repair checker's scan
(:func:`health.scan_segments`) and counts each segment's healthy pieces with the
checker's :class:`health.Judge`, so the two never disagree. Only committed
segments are reported (a pending upload is nobody's data yet). The fold over
segment rows, :func:`summarize`, is pure.

``GET /v1/admin/objects/pieces`` (:func:`object_pieces`) judges one object's segments
with the same :class:`health.Judge`: which node holds which piece, counted or not.

``GET /v1/admin/status`` takes the report through :class:`Tally` (the last one,
made again in the background when old) and the repair queue's counts through
:func:`repair_queue_tally` (read live).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import objects, repair_queue, segments
from skymesh.coordinator.durability import health
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.reputation import Reputation
from skymesh.errors import NotFound
from skymesh.wire.durability import (
    DurabilityReport,
    ObjectPieces,
    PieceHolder,
    SchemeHealth,
    SegmentHealth,
    SegmentPieces,
)
from skymesh.wire.metainfo import Scheme, SegmentPosition
from skymesh.wire.status import RepairQueue

log = logging.getLogger(__name__)

LIST_CAP = 100  # segments listed by name in each of at_risk and lost
TALLY_MAX_AGE = 120.0  # seconds a tally serves ``GET /v1/admin/status`` before a new scan
TALLY_WAIT = 2.0  # seconds a status call waits for the first tally before answering without


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


class Fold:
    """The report's running totals, one segment row at a time (pure; memory stays bounded)."""

    def __init__(self, cap: int = LIST_CAP) -> None:
        self.cap = cap
        self.per_scheme: dict[tuple[int, int, int, int], _Acc] = {}
        self.at_risk: list[SegmentRow] = []
        self.lost: list[SegmentRow] = []
        self.total = self.at_risk_total = self.lost_total = 0

    def add(self, r: SegmentRow) -> None:
        self.total += 1
        acc = self.per_scheme.setdefault((r.k, r.repair, r.optimal, r.total), _Acc())
        acc.segments += 1
        acc.histogram[r.healthy] = acc.histogram.get(r.healthy, 0) + 1
        if r.healthy < r.k:
            acc.lost += 1
            self.lost_total += 1
            self.lost.append(r)
        if r.healthy <= r.repair:
            acc.at_or_below_repair += 1
            self.at_risk_total += 1
            self.at_risk.append(r)
        # Keep memory bounded on a large metadata store: only the worst ``cap``.
        if len(self.at_risk) > 4 * self.cap:
            self.at_risk = _worst(self.at_risk, self.cap)
        if len(self.lost) > 4 * self.cap:
            self.lost = _worst(self.lost, self.cap)

    def report(
        self, *, generated_at: float, nodes: int, healthy_nodes: int, inline_segments: int
    ) -> DurabilityReport:
        return DurabilityReport(
            generated_at=generated_at,
            nodes=nodes,
            healthy_nodes=healthy_nodes,
            segments=self.total,
            inline_segments=inline_segments,
            schemes=[
                SchemeHealth(
                    scheme=Scheme(k=k, repair=rep, optimal=opt, total=tot),
                    segments=a.segments,
                    histogram=dict(sorted(a.histogram.items())),
                    at_or_below_repair=a.at_or_below_repair,
                    lost=a.lost,
                )
                for (k, rep, opt, tot), a in sorted(self.per_scheme.items())
            ],
            at_risk=[_health(r) for r in _worst(self.at_risk, self.cap)],
            lost=[_health(r) for r in _worst(self.lost, self.cap)],
            lost_total=self.lost_total,
            at_risk_total=self.at_risk_total,
        )


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
    fold = Fold(cap)
    for r in rows:
        fold.add(r)
    return fold.report(
        generated_at=generated_at,
        nodes=nodes,
        healthy_nodes=healthy_nodes,
        inline_segments=inline_segments,
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


_INLINE = (
    sa.select(sa.func.count())
    .select_from(segments.join(objects, objects.c.stream_id == segments.c.stream_id))
    .where(segments.c.root_piece_id == "")
)


async def durability_report(
    m: Metainfo,
    reputation_of: Callable[[str], Reputation | None] = lambda _node_id: None,
) -> DurabilityReport:
    """The report over every committed segment (one read per batch of the scan)."""
    now = m.clock()
    nodes = await m.registry.all_nodes()
    offline_after = m.registry.offline_after
    healthy = healthy_nodes(nodes, now, offline_after, reputation_of)
    reps = {n.node_id: r for n in nodes if (r := reputation_of(n.node_id)) is not None}
    judge = health.Judge(
        {n.node_id: n for n in nodes}, reps, now, offline_after, m.config.jurisdictions
    )
    fold = Fold()
    async for batch in health.scan_segments(m.db):
        for seg in batch:
            if seg.bucket is not None:
                fold.add(_row(seg, judge(seg).healthy_count))
    inline = await m.db.read(lambda conn: int(conn.execute(_INLINE).scalar_one()))
    return fold.report(
        generated_at=now,
        nodes=len(nodes),
        healthy_nodes=len(healthy),
        inline_segments=inline,
    )


def _latest_object(conn: sa.Connection, bucket: str, key: str) -> Any:
    """The latest version's row (stream_id, size, created_at), or None: no such object,
    or its latest version is a delete marker."""
    o = objects.c
    return conn.execute(
        sa.select(o.stream_id, o.size, o.created_at)
        .where(o.bucket == bucket, o.key == key, o.latest, sa.not_(o.delete_marker))
        .order_by(o.seq.desc())
        .limit(1)
    ).first()


async def object_pieces(
    m: Metainfo,
    bucket: str,
    key: str,
    reputation_of: Callable[[str], Reputation | None] = lambda _node_id: None,
) -> ObjectPieces:
    """Where the latest version of ``bucket``/``key`` is stored, each piece judged by the
    durability rule; ``NotFound`` when there is no such object (or its latest version is
    a delete marker)."""

    def read(
        conn: sa.Connection,
    ) -> tuple[Any, list[health.StoredSegment], int]:
        obj = _latest_object(conn, bucket, key)
        if obj is None:
            return None, [], 0
        inline = conn.execute(
            sa.select(sa.func.count()).where(
                segments.c.stream_id == obj.stream_id, segments.c.k == 0
            )
        ).scalar_one()
        return obj, health.read_stream_segments(conn, obj.stream_id), int(inline)

    obj, segs, inline = await m.db.read(read)
    if obj is None:
        raise NotFound(f"no object {key!r} in bucket {bucket!r}")
    now = m.clock()
    nodes = await m.registry.all_nodes()
    reps = {n.node_id: r for n in nodes if (r := reputation_of(n.node_id)) is not None}
    judge = health.Judge(
        {n.node_id: n for n in nodes}, reps, now, m.registry.offline_after, m.config.jurisdictions
    )
    out = []
    for seg in segs:
        verdict = judge(seg)
        misplaced = {p.piece_num for p in verdict.misplaced}
        lost = {p.piece_num for p in verdict.lost}
        out.append(
            SegmentPieces(
                position=SegmentPosition(part=seg.part, index=seg.idx),
                scheme=Scheme(
                    k=seg.scheme.k,
                    repair=seg.scheme.repair,
                    optimal=seg.scheme.optimal,
                    total=seg.scheme.total,
                ),
                healthy=verdict.healthy_count,
                pieces=[
                    PieceHolder(
                        piece_num=p.piece_num,
                        node_id=p.node_id,
                        state="lost"
                        if p.piece_num in lost
                        else "misplaced"
                        if p.piece_num in misplaced
                        else "healthy",
                    )
                    for p in sorted(seg.pieces, key=lambda p: p.piece_num)
                ],
            )
        )
    return ObjectPieces(
        bucket=bucket,
        key=key,
        size=int(obj.size),
        created_at=float(obj.created_at),
        inline_segments=inline,
        segments=out,
    )


def _row(seg: health.StoredSegment, healthy: int) -> SegmentRow:
    s = seg.scheme
    return SegmentRow(
        bucket=seg.bucket or "",
        key=seg.key or "",
        part=seg.part,
        idx=seg.idx,
        k=s.k,
        repair=s.repair,
        optimal=s.optimal,
        total=s.total,
        stored=len(seg.pieces),
        healthy=healthy,
    )


class Tally:
    """The last durability report this coordinator made, for callers that may take it
    a little old (``GET /v1/admin/status``): a report walks every segment (some 25 s
    for 100,000 segments on SQLite), so a status screen redrawn every few seconds must
    neither make one each time nor wait for one.

    :meth:`latest` answers the last report at once; when it is older than ``max_age``
    it also starts a new one in the background (one at a time), which later calls
    answer once it is done. Before the first report exists it waits up to ``wait``
    seconds for it, then answers None. :meth:`fresh` always makes one and keeps it
    (``GET /v1/admin/durability``). :meth:`close` cancels a report in progress.
    """

    def __init__(
        self,
        make: Callable[[], Awaitable[DurabilityReport]],
        clock: Callable[[], float],
        max_age: float = TALLY_MAX_AGE,
        wait: float = TALLY_WAIT,
    ) -> None:
        self._make = make
        self._clock = clock
        self.max_age = max_age
        self.wait = wait
        self.last: DurabilityReport | None = None
        self._task: asyncio.Task[DurabilityReport] | None = None

    async def fresh(self) -> DurabilityReport:
        report = await self._make()
        if self.last is None or report.generated_at >= self.last.generated_at:
            self.last = report
        return report

    async def latest(self) -> DurabilityReport | None:
        last = self.last
        if last is not None and self._clock() - last.generated_at <= self.max_age:
            return last
        task = self._refresh()
        if last is None:
            await asyncio.wait({task}, timeout=self.wait)  # never cancels the task
        return self.last

    def _refresh(self) -> asyncio.Task[DurabilityReport]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.fresh(), name="durability tally")
            self._task.add_done_callback(_log_failure)
        return self._task

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _log_failure(task: asyncio.Task[DurabilityReport]) -> None:
    if not task.cancelled() and (e := task.exception()) is not None:
        log.warning("durability tally failed: %s; the next status call tries again", e)


def _queue_tally(conn: sa.Connection) -> RepairQueue:
    q, s = repair_queue.c, segments.c
    rows = conn.execute(
        sa.select(q.healthy, q.healthy < s.k, sa.func.count())
        .select_from(
            repair_queue.join(
                segments,
                sa.and_(s.stream_id == q.stream_id, s.part == q.part, s.idx == q.idx),
            )
        )
        .group_by(q.healthy, q.healthy < s.k)
    ).all()
    histogram: dict[int, int] = {}
    below = 0
    for healthy, lost, count in rows:
        histogram[int(healthy)] = histogram.get(int(healthy), 0) + int(count)
        below += int(count) if lost else 0
    return RepairQueue(
        queued=sum(histogram.values()),
        below_minimum=below,
        histogram=dict(sorted(histogram.items())),
    )


async def repair_queue_tally(db: Database) -> RepairQueue:
    """The repair queue by healthy pieces, and how many of it are below ``k`` (one read
    of the queue, joined with its segments' rows for ``k``)."""
    return await db.read(_queue_tally)
