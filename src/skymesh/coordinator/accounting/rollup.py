"""The ``accounting`` loop: hourly rollups per node and per project.

Every ``accounting_interval`` seconds one coordinator (the loop's lease holder)
tallies, in one transaction:

- **stored bytes**, from the metadata: per node the piece bytes it holds (each
  piece row's segment ``piece_size``), per project the sizes of its object
  versions. Each is integrated over the time since the last tally (at most
  :data:`MAX_GAP`: a gap longer than that, with no coordinator tallying, counts
  as :data:`MAX_GAP`) into the current hour's ``byte_seconds``;
- **uptime**: that same span counts as up for a node whose last heartbeat is
  within ``offline_after``;
- **audits**: the increase of the node's cumulative success and failure counts
  (``node_reputation``) since the last tally;
- **egress, requests and tokens**: recomputed (set, not added) for every hour from
  the last tally's to now, from the settled orders and the inference usage rows;
  a re-run of a tally, or of an hour, counts nothing twice;
- **estimated energy** (``accounting.energy``): storage kWh and gCO2 accumulate with
  the byte-seconds, from each node's declared profile at the tally; a project's
  are those of its objects' pieces on each node (pieces of uploads not yet
  committed count for the node only). Inference kWh and gCO2 are recomputed with
  the tokens, from each node's compute advert on record at the tally
  (``compute_tokens_estimated``: the tokens they cover).

The transaction reads and writes only rows it derives from the database, so a
retry (PostgreSQL serialization failure) redoes it exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa

from skymesh.coordinator.accounting.energy import inference_estimate, storage_estimate
from skymesh.coordinator.accounting.settlement import HOUR, hour_of
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import (
    buckets,
    compute_adverts,
    inference_usage,
    node_reputation,
    node_usage_hourly,
    nodes,
    objects,
    pieces,
    project_usage_hourly,
    segments,
    settled_orders,
)
from skymesh.wire.inference import ComputeAdvert

MAX_GAP = 3600.0  # seconds between tallies counted at most
BACKFILL = 7 * 86_400.0  # the first tally rolls up settlements and tokens this far back

# what _traffic recomputes (sets) for each hour
_TRAFFIC = (
    "egress_bytes",
    "requests",
    "tokens",
    "compute_kwh",
    "compute_gco2",
    "compute_tokens_estimated",
)
_ADVERT = msgspec.json.Decoder(ComputeAdvert)
_PIECE_SEGMENT = pieces.join(
    segments,
    sa.and_(
        segments.c.stream_id == pieces.c.stream_id,
        segments.c.part == pieces.c.part,
        segments.c.idx == pieces.c.idx,
    ),
)
_TOKENS = sa.func.coalesce(
    sa.func.sum(inference_usage.c.prompt_tokens + inference_usage.c.completion_tokens), 0
)


@dataclass
class TallyStats:
    """What one tally did (for logs and tests)."""

    at: float = 0.0
    span: float = 0.0  # seconds integrated
    hours: list[int] = field(default_factory=list)  # hours whose traffic was recomputed
    nodes: int = 0
    projects: int = 0


class Rollup:
    """The ``accounting`` loop's step over the metadata database."""

    def __init__(
        self,
        db: Database,
        *,
        interval: float,
        offline_after: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.interval = interval
        self.offline_after = offline_after
        self.clock = clock
        self.last = TallyStats()

    async def step(self) -> float:
        """One tally; the seconds until the next."""
        await self.tally()
        return self.interval

    async def tally(self) -> TallyStats:
        now = self.clock()
        self.last = await self.db.write(lambda conn: self._tally(conn, now))
        return self.last

    def _tally(self, conn: sa.Connection, now: float) -> TallyStats:
        last = _last_tally(conn)
        span = self.interval if last is None else min(max(now - last, 0.0), MAX_GAP)
        hour = hour_of(now)
        first = hour_of(last) if last is not None else _first_hour(conn, now)
        stats = TallyStats(at=now, span=span, hours=list(range(first, hour + 1, HOUR)))

        # ------------------------------------------------ nodes
        node_rows = {r.node_id: r for r in conn.execute(sa.select(nodes))}
        # piece bytes by (project, node) in one scan of the pieces: a node's are the sum
        # over projects (None: pieces of uploads not committed yet), a project's feed
        # its share of each node's storage energy
        held: list[tuple[str | None, str, int]] = [
            (project_id, node_id, int(size or 0))
            for project_id, node_id, size in conn.execute(
                sa.select(
                    buckets.c.project_id, pieces.c.node_id, sa.func.sum(segments.c.piece_size)
                )
                .select_from(
                    _PIECE_SEGMENT.outerjoin(
                        objects, objects.c.stream_id == pieces.c.stream_id
                    ).outerjoin(buckets, buckets.c.name == objects.c.bucket)
                )
                .group_by(buckets.c.project_id, pieces.c.node_id)
            ).all()
        ]
        stored: dict[str, int] = {}
        for _, node_id, size in held:
            stored[node_id] = stored.get(node_id, 0) + size
        audits = {
            r.node_id: (int(r.audits_success), int(r.audits_failed))
            for r in conn.execute(
                sa.select(
                    node_reputation.c.node_id,
                    node_reputation.c.audits_success,
                    node_reputation.c.audits_failed,
                )
            )
        }
        marks = {}
        if last is not None:
            marks = {
                r.node_id: (int(r.audit_success_mark), int(r.audit_failed_mark))
                for r in conn.execute(
                    sa.select(
                        node_usage_hourly.c.node_id,
                        node_usage_hourly.c.audit_success_mark,
                        node_usage_hourly.c.audit_failed_mark,
                    ).where(
                        # the last tally's current hour: older rows it touched keep older marks
                        node_usage_hourly.c.tallied_at == last,
                        node_usage_hourly.c.hour == hour_of(last),
                    )
                )
            }
        node_book = _Book(conn, node_usage_hourly, "node_id", _NODE_ZERO)
        for h in stats.hours:
            node_book.load(h)
        for node_id, n in node_rows.items():
            row = node_book.row(hour, node_id)
            row["operator"] = n.operator
            size = int(stored.get(node_id) or 0)
            row["stored_bytes"] = size
            row["byte_seconds"] += size * span
            energy = storage_estimate(size * span, n.storage_watts_per_tb, n.pue, n.grid_gco2_kwh)
            row["storage_kwh"] += energy.kwh
            row["storage_gco2"] += energy.gco2
            if now - n.last_seen <= self.offline_after:
                row["uptime_seconds"] += span
            success, failed = audits.get(node_id, (0, 0))
            old_success, old_failed = marks.get(node_id, (0, 0))
            row["audits_success"] += max(success - old_success, 0)
            row["audits_failed"] += max(failed - old_failed, 0)
            row["audit_success_mark"], row["audit_failed_mark"] = success, failed
        stats.nodes = len(node_rows)

        # ------------------------------------------------ projects
        project_stored = dict(
            conn.execute(
                sa.select(buckets.c.project_id, sa.func.sum(objects.c.size))
                .select_from(objects.join(buckets, buckets.c.name == objects.c.bucket))
                .group_by(buckets.c.project_id)
            ).all()
        )
        project_book = _Book(conn, project_usage_hourly, "project_id", _PROJECT_ZERO)
        for h in stats.hours:
            project_book.load(h)
        for project_id, size in project_stored.items():
            row = project_book.row(hour, project_id)
            row["stored_bytes"] = int(size or 0)
            row["byte_seconds"] += int(size or 0) * span
        stats.projects = len(project_stored)
        # each project's pieces on each node, at that node's energy profile
        for project_id, node_id, size in held:
            holder = node_rows.get(node_id)
            if project_id is None or holder is None:
                continue
            energy = storage_estimate(
                size * span,
                holder.storage_watts_per_tb,
                holder.pue,
                holder.grid_gco2_kwh,
            )
            row = project_book.row(hour, project_id)
            row["storage_kwh"] += energy.kwh
            row["storage_gco2"] += energy.gco2

        # ------------------------------------------------ traffic, recomputed per hour
        adverts = _adverts(conn)
        for h in stats.hours:
            _traffic(conn, h, node_book, project_book, node_rows, adverts)

        for h in stats.hours:
            for book in (node_book, project_book):
                for row in book.rows(h):
                    row["tallied_at"] = now
        node_book.flush()
        project_book.flush()
        return stats


def _traffic(
    conn: sa.Connection,
    h: int,
    node_book: _Book,
    project_book: _Book,
    node_rows: dict[str, sa.Row],
    adverts: dict[str, ComputeAdvert],
) -> None:
    """Set hour ``h``'s egress, requests, tokens and inference energy from the settled
    orders and usage."""
    for book in (node_book, project_book):
        for row in book.rows(h):
            row.update(dict.fromkeys(_TRAFFIC, 0))
    for row in node_book.rows(h):
        row["repair_egress_bytes"] = 0
    s = settled_orders
    for node_id, purpose, total in conn.execute(
        sa.select(s.c.node_id, s.c.purpose, sa.func.sum(s.c.bytes))
        .where(s.c.hour == h)
        .group_by(s.c.node_id, s.c.purpose)
    ).all():
        row = node_book.row(h, node_id)
        row["operator"] = row["operator"] or _operator(node_rows, node_id)
        row["repair_egress_bytes" if purpose == "repair" else "egress_bytes"] += int(total)
    for project_id, total in conn.execute(
        sa.select(s.c.project_id, sa.func.sum(s.c.bytes))
        .where(s.c.hour == h, s.c.purpose == "", s.c.project_id != "")
        .group_by(s.c.project_id)
    ).all():
        project_book.row(h, project_id)["egress_bytes"] = int(total)
    u = inference_usage
    span = sa.and_(u.c.recorded_at >= h, u.c.recorded_at < h + HOUR)
    for project_id, node_id, requests, tokens in conn.execute(
        sa.select(u.c.project_id, u.c.node_id, sa.func.count(), _TOKENS)
        .where(span)
        .group_by(u.c.project_id, u.c.node_id)
    ).all():
        energy = inference_estimate(int(tokens), adverts.get(node_id))
        node_row = node_book.row(h, node_id)
        node_row["operator"] = node_row["operator"] or _operator(node_rows, node_id)
        for row in (node_row, project_book.row(h, project_id)):
            row["requests"] += int(requests)
            row["tokens"] += int(tokens)
            if energy is not None:
                row["compute_kwh"] += energy.kwh
                row["compute_gco2"] += energy.gco2
                row["compute_tokens_estimated"] += int(tokens)


def _adverts(conn: sa.Connection) -> dict[str, ComputeAdvert]:
    """Each node's compute advert on record (its energy per token); unreadable ones left out."""
    out = {}
    for node_id, raw in conn.execute(
        sa.select(compute_adverts.c.node_id, compute_adverts.c.advert)
    ):
        try:
            out[node_id] = _ADVERT.decode(raw)
        except msgspec.DecodeError:
            continue
    return out


def _operator(node_rows: dict[str, sa.Row], node_id: str) -> str:
    n = node_rows.get(node_id)
    return n.operator if n is not None else ""


def _last_tally(conn: sa.Connection) -> float | None:
    found = [
        conn.execute(sa.select(sa.func.max(t.c.tallied_at))).scalar()
        for t in (node_usage_hourly, project_usage_hourly)
    ]
    known = [float(t) for t in found if t is not None]
    return max(known) if known else None


def _first_hour(conn: sa.Connection, now: float) -> int:
    """The first tally's first hour: the oldest settlement or usage, at most BACKFILL ago."""
    oldest = [
        conn.execute(sa.select(sa.func.min(settled_orders.c.settled_at))).scalar(),
        conn.execute(
            sa.select(sa.func.min(inference_usage.c.recorded_at)).where(
                inference_usage.c.recorded_at >= now - BACKFILL
            )
        ).scalar(),
    ]
    start = min([float(t) for t in oldest if t is not None], default=now)
    return hour_of(max(start, now - BACKFILL))


_ENERGY_ZERO: dict[str, Any] = {
    "storage_kwh": 0.0,
    "storage_gco2": 0.0,
    "compute_kwh": 0.0,
    "compute_gco2": 0.0,
    "compute_tokens_estimated": 0,
}
_NODE_ZERO: dict[str, Any] = {
    "operator": "",
    "byte_seconds": 0.0,
    "stored_bytes": 0,
    "egress_bytes": 0,
    "repair_egress_bytes": 0,
    "audits_success": 0,
    "audits_failed": 0,
    "audit_success_mark": 0,
    "audit_failed_mark": 0,
    "uptime_seconds": 0.0,
    "requests": 0,
    "tokens": 0,
    "tallied_at": 0.0,
    **_ENERGY_ZERO,
}
_PROJECT_ZERO: dict[str, Any] = {
    "byte_seconds": 0.0,
    "stored_bytes": 0,
    "egress_bytes": 0,
    "requests": 0,
    "tokens": 0,
    "tallied_at": 0.0,
    **_ENERGY_ZERO,
}


class _Book:
    """The rows of some hours of one rollup table, read once, written back by :meth:`flush`."""

    def __init__(
        self, conn: sa.Connection, table: sa.Table, key: str, zero: dict[str, Any]
    ) -> None:
        self.conn = conn
        self.table = table
        self.key = key
        self.zero = zero
        self._rows: dict[tuple[int, str], dict[str, Any]] = {}
        self._known: set[tuple[int, str]] = set()

    def load(self, hour: int) -> None:
        t = self.table
        for r in self.conn.execute(sa.select(t).where(t.c.hour == hour)).mappings():
            k = (int(r["hour"]), str(r[self.key]))
            self._rows[k] = dict(r)
            self._known.add(k)

    def row(self, hour: int, key: str) -> dict[str, Any]:
        k = (hour, key)
        if k not in self._rows:
            self._rows[k] = {"hour": hour, self.key: key, **self.zero}
        return self._rows[k]

    def rows(self, hour: int) -> list[dict[str, Any]]:
        return [r for (h, _), r in self._rows.items() if h == hour]

    def flush(self) -> None:
        t = self.table
        new = [r for k, r in self._rows.items() if k not in self._known]
        if new:
            self.conn.execute(t.insert(), new)
        for k, r in self._rows.items():
            if k in self._known:
                values = {c: v for c, v in r.items() if c not in ("hour", self.key)}
                self.conn.execute(
                    t.update().where(t.c.hour == k[0], t.c[self.key] == k[1]).values(**values)
                )
