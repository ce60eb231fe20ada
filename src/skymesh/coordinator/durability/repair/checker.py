"""The repair checker: scan every piece segment, queue those that need repair.

A scan walks the segments with :func:`health.scan_segments` (``SCAN_BATCH`` at a
time: one read each), judges each with the one health rule (:class:`health.Judge`,
the same the durability report uses) and writes the batch's verdicts to
``repair_queue`` in one transaction: segments that need repair are queued (or
their health updated), the rest are taken off the queue. The worker takes the
queue in order of fewest healthy pieces first.

The same scan counts pieces per node, which is how a graceful exit ends: an
exiting node that holds no piece any more is marked drained.

**Incremental rounds.** A segment's health changes only when one of its nodes
changes (online, disqualified, exiting, region), when the set of regions with
nodes up changes (the region rule), or when its pieces change (a new segment, a
repair; the worker re-queues a partial repair itself). So between full scans,
every ``full_scan_interval`` seconds, a round judges only segments with a piece on
a node whose state changed since the last round, plus segments created since
shortly before it; a change in the regions up makes the round full. The full
sweep is the safety net for anything that slips between (say a commit racing a
scan by more than ``CREATED_SLACK``).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa

from skymesh.coordinator.db.schema import pieces, repair_queue
from skymesh.coordinator.durability.health import (
    Judge,
    Since,
    StoredSegment,
    healthy,
    needs_move,
    needs_repair,
    region_spread_possible,
    scan_segments,
)
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.overlay.reputation import ReputationBook

__all__ = ["CheckReport", "RepairChecker", "region_spread_possible"]

log = logging.getLogger(__name__)

CREATED_SLACK = 60.0  # seconds before the last round whose new segments a round rescans

NodeState = tuple[bool, bool, str]  # (healthy, must move, region)


@dataclass
class CheckReport:
    segments: int = 0
    queued: int = 0
    misplaced: int = 0
    lowest_healthy: int | None = None  # fewest healthy pieces of any queued segment
    drained: int = 0  # exits finished by this scan
    full: bool = True  # every segment judged, not only those an incremental round picks


class RepairChecker:
    def __init__(
        self, m: Metainfo, book: ReputationBook, *, full_scan_interval: float = 0.0
    ) -> None:
        """``full_scan_interval`` 0: every round is a full scan."""
        self.m = m
        self.book = book
        self.full_scan_interval = full_scan_interval
        self.last = CheckReport()
        self._seen: dict[str, NodeState] | None = None  # node states at the last round
        self._regions_up: frozenset[str] = frozenset()
        self._full_at = -float("inf")
        self._round_at = -float("inf")

    async def step(self) -> CheckReport:
        """One round: a full scan, or an incremental one (see the module docstring)."""
        m = self.m
        now = m.clock()
        off = m.config.offline_after
        nodes = {n.node_id: n for n in await m.registry.all_nodes()}
        reps = await self.book.refresh()
        state = {
            i: (healthy(n, reps.get(i), now, offline_after=off), needs_move(reps.get(i)), n.region)
            for i, n in nodes.items()
        }
        regions_up = frozenset(n.region for n in nodes.values() if n.is_online(now, off))
        only = None
        if (
            self._seen is not None
            and regions_up == self._regions_up
            and now - self._full_at < self.full_scan_interval
        ):
            seen = self._seen
            changed = sorted(i for i in state.keys() | seen.keys() if state.get(i) != seen.get(i))
            only = Since(changed, self._round_at - CREATED_SLACK)
        judge = Judge(nodes, reps, now, off, m.config.jurisdictions)
        report = CheckReport(full=only is None)
        per_node: Counter[str] = Counter()
        async for batch in scan_segments(m.db, only=only):
            for seg in batch:
                per_node.update(p.node_id for p in seg.pieces)
            verdicts = self._judge(batch, judge, report)
            await m.db.write(functools.partial(_write_verdicts, verdicts=verdicts, now=now))
        for node_id, rep in reps.items():
            if rep.exiting and not await self._holds_pieces(node_id, per_node, report.full):
                await self.book.finish_exit(node_id)
                report.drained += 1
        self._seen, self._regions_up, self._round_at = state, regions_up, now
        if report.full:
            self._full_at = now
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

    async def _holds_pieces(self, node_id: str, counted: Counter[str], full: bool) -> bool:
        if full:
            return counted[node_id] > 0
        q = sa.select(pieces.c.node_id).where(pieces.c.node_id == node_id).limit(1)
        return await self.m.db.read(lambda conn: conn.execute(q).first() is not None)

    def _judge(
        self, batch: list[StoredSegment], judge: Judge, report: CheckReport
    ) -> list[tuple[tuple[str, int, int], int | None]]:
        """(segment key, healthy count to queue it with, or None to take it off the queue)."""
        out: list[tuple[tuple[str, int, int], int | None]] = []
        for seg in batch:
            health = judge(seg)
            report.segments += 1
            if needs_repair(health, seg.scheme):
                report.queued += 1
                report.misplaced += len(health.misplaced)
                low = report.lowest_healthy
                report.lowest_healthy = (
                    health.healthy_count if low is None else min(low, health.healthy_count)
                )
                out.append((seg.position, health.healthy_count))
            else:
                out.append((seg.position, None))
        return out


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
