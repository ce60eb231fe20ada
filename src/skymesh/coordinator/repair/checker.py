"""The repair checker: scan every piece segment, queue those that need repair.

A scan walks ``segments`` in key order, ``BATCH`` at a time (one read for the
segments, one for their pieces), judges each with :func:`plan.assess` and writes
the batch's verdicts to ``repair_queue`` in one transaction: segments that need
repair are queued (or their health updated), the rest are taken off the queue.
The worker takes the queue in order of fewest healthy pieces first.

The same scan counts pieces per node, which is how a graceful exit ends: an
exiting node that holds no piece any more is marked drained.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from skymesh.codec import RedundancyScheme
from skymesh.coordinator.db.schema import pieces, repair_queue, segments
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.model import NodeRecord
from skymesh.coordinator.repair.plan import StoredPiece, assess, needs_repair
from skymesh.coordinator.reputation import Reputation, ReputationBook

log = logging.getLogger(__name__)

BATCH = 500


@dataclass
class CheckReport:
    segments: int = 0
    queued: int = 0
    misplaced: int = 0
    lowest_healthy: int | None = None  # fewest healthy pieces of any queued segment
    drained: int = 0  # exits finished by this scan


def region_spread_possible(
    nodes: Mapping[str, NodeRecord], now: float, offline_after: float
) -> bool:
    """The region rule is enforced only where three or more regions have online nodes."""
    return len({n.region for n in nodes.values() if n.is_online(now, offline_after)}) >= 3


class RepairChecker:
    def __init__(self, m: Metainfo, book: ReputationBook) -> None:
        self.m = m
        self.book = book
        self.last = CheckReport()

    async def step(self) -> CheckReport:
        """One full scan."""
        m = self.m
        now = m.clock()
        nodes = {n.node_id: n for n in await m.registry.all_nodes()}
        reps = await self.book.refresh()
        spread = region_spread_possible(nodes, now, m.config.offline_after)
        report = CheckReport()
        per_node: Counter[str] = Counter()
        cursor: tuple[str, int, int] | None = None
        while True:
            seg_rows, piece_rows = await m.db.read(functools.partial(_read_batch, cursor=cursor))
            if not seg_rows:
                break
            cursor = (seg_rows[-1].stream_id, seg_rows[-1].part, seg_rows[-1].idx)
            by_seg: dict[tuple[str, int, int], list[StoredPiece]] = {}
            for p in piece_rows:
                per_node[p.node_id] += 1
                by_seg.setdefault((p.stream_id, p.part, p.idx), []).append(
                    StoredPiece(p.piece_num, p.node_id, p.merkle_root)
                )
            verdicts = self._judge(seg_rows, by_seg, nodes, reps, now, spread, report)
            await m.db.write(functools.partial(_write_verdicts, verdicts=verdicts, now=now))
            if len(seg_rows) < BATCH:
                break
        for node_id, rep in reps.items():
            if rep.exiting and per_node[node_id] == 0:
                await self.book.finish_exit(node_id)
                report.drained += 1
        if report.queued:
            log.info(
                "repair checker: %d of %d segments need repair (fewest healthy: %s, misplaced"
                " pieces: %d)",
                report.queued,
                report.segments,
                report.lowest_healthy,
                report.misplaced,
            )
        self.last = report
        return report

    def _judge(
        self,
        seg_rows: list[sa.Row],
        by_seg: Mapping[tuple[str, int, int], list[StoredPiece]],
        nodes: Mapping[str, NodeRecord],
        reps: Mapping[str, Reputation],
        now: float,
        spread: bool,
        report: CheckReport,
    ) -> list[tuple[tuple[str, int, int], int | None]]:
        """(segment key, healthy count to queue it with, or None to take it off the queue)."""
        out: list[tuple[tuple[str, int, int], int | None]] = []
        for s in seg_rows:
            key = (s.stream_id, s.part, s.idx)
            scheme = RedundancyScheme(s.k, s.repair, s.optimal, s.total)
            health = assess(
                by_seg.get(key, []),
                scheme,
                nodes,
                reps,
                now,
                offline_after=self.m.config.offline_after,
                region_spread=spread,
            )
            report.segments += 1
            if needs_repair(health, scheme):
                report.queued += 1
                report.misplaced += len(health.misplaced)
                low = report.lowest_healthy
                report.lowest_healthy = (
                    health.healthy_count if low is None else min(low, health.healthy_count)
                )
                out.append((key, health.healthy_count))
            else:
                out.append((key, None))
        return out


def _read_batch(
    conn: sa.Connection, cursor: tuple[str, int, int] | None
) -> tuple[list[sa.Row], list[sa.Row]]:
    key = sa.tuple_(segments.c.stream_id, segments.c.part, segments.c.idx)
    q = (
        sa.select(
            segments.c.stream_id,
            segments.c.part,
            segments.c.idx,
            segments.c.k,
            segments.c.repair,
            segments.c.optimal,
            segments.c.total,
        )
        .where(segments.c.k > 0)
        .order_by(segments.c.stream_id, segments.c.part, segments.c.idx)
        .limit(BATCH)
    )
    if cursor is not None:
        q = q.where(key > sa.tuple_(*(sa.literal(v) for v in cursor)))
    seg_rows = list(conn.execute(q).all())
    if not seg_rows:
        return [], []
    stream_ids = sorted({r.stream_id for r in seg_rows})
    piece_rows = conn.execute(
        sa.select(
            pieces.c.stream_id,
            pieces.c.part,
            pieces.c.idx,
            pieces.c.piece_num,
            pieces.c.node_id,
            pieces.c.merkle_root,
        ).where(pieces.c.stream_id.in_(stream_ids))
    ).all()
    return seg_rows, list(piece_rows)


def _write_verdicts(
    conn: sa.Connection, verdicts: list[tuple[tuple[str, int, int], int | None]], now: float
) -> None:
    if not verdicts:
        return
    keys = [k for k, _ in verdicts]
    q = repair_queue.c
    existing = {
        (r.stream_id, r.part, r.idx)
        for r in conn.execute(
            sa.select(q.stream_id, q.part, q.idx).where(
                sa.tuple_(q.stream_id, q.part, q.idx).in_(keys)
            )
        )
    }
    for (stream_id, part, idx), healthy_count in verdicts:
        where = sa.and_(q.stream_id == stream_id, q.part == part, q.idx == idx)
        if healthy_count is None:
            if (stream_id, part, idx) in existing:
                conn.execute(repair_queue.delete().where(where))
        elif (stream_id, part, idx) in existing:
            conn.execute(repair_queue.update().where(where).values(healthy=healthy_count))
        else:
            conn.execute(
                repair_queue.insert().values(
                    stream_id=stream_id,
                    part=part,
                    idx=idx,
                    healthy=healthy_count,
                    queued_at=now,
                )
            )
