"""Reading the hourly rollups: usage by node, operator or project, and a month's payouts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import sqlalchemy as sa

from skymesh.coordinator.accounting.payouts import (
    Month,
    NodeMonth,
    Prices,
    payouts,
)
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import node_usage_hourly, nodes, project_usage_hourly, projects
from skymesh.errors import BadRequest
from skymesh.wire.accounting import (
    AccountingRow,
    AccountingUsage,
    PayoutReport,
    ProjectUsage,
    UsagePoint,
)

BY = ("node", "operator", "project")
#: the estimated-energy columns both rollup tables carry (accounting.energy)
ENERGY = ("storage_kwh", "storage_gco2", "compute_kwh", "compute_gco2", "compute_tokens_estimated")


def _sum(column: sa.ColumnElement[object], label: str) -> sa.Label[object]:
    return sa.func.coalesce(sa.func.sum(column), 0).label(label)


async def usage(
    db: Database, by: str, since: float, until: float = math.inf, only: str | None = None
) -> AccountingUsage:
    """Totals of the hours starting in ``[since, until)``, one row per ``by`` (only the
    row of key ``only`` when given)."""
    if by not in BY:
        raise BadRequest(f"by: use one of {', '.join(BY)}")
    table = project_usage_hourly if by == "project" else node_usage_hourly
    key = {"node": table.c.get("node_id"), "operator": table.c.get("operator")}.get(
        by, table.c.get("project_id")
    )
    assert key is not None
    span = [table.c.hour >= math.ceil(since)]
    if math.isfinite(until):
        span.append(table.c.hour < until)
    if only is not None:
        span.append(key == only)
    columns = [
        key.label("key"),
        _sum(table.c.byte_seconds, "byte_seconds"),
        _sum(table.c.egress_bytes, "egress_bytes"),
        _sum(table.c.requests, "requests"),
        _sum(table.c.tokens, "tokens"),
        *(_sum(table.c[c], c) for c in ENERGY),
    ]
    if by != "project":
        columns += [
            _sum(table.c.repair_egress_bytes, "repair_egress_bytes"),
            _sum(table.c.audits_success, "audits_success"),
            _sum(table.c.audits_failed, "audits_failed"),
            _sum(table.c.uptime_seconds, "uptime_seconds"),
            sa.func.max(table.c.operator).label("name"),
        ]
    totals = sa.select(*columns).where(*span).group_by(key).order_by(key)
    latest = sa.select(sa.func.max(table.c.hour)).where(*span).scalar_subquery()
    stored = (
        sa.select(key.label("key"), _sum(table.c.stored_bytes, "stored"))
        .where(table.c.hour == latest)
        .group_by(key)
    )

    def txn(conn: sa.Connection) -> list[AccountingRow]:
        last = {str(r.key): int(r.stored) for r in conn.execute(stored)}
        names = {}
        if by == "project":
            names_of = sa.select(projects.c.project_id, projects.c.name)
            if only is not None:
                names_of = names_of.where(projects.c.project_id == only)
            names = dict(conn.execute(names_of).all())
        out = []
        for r in conn.execute(totals).mappings():
            k = str(r["key"])
            out.append(
                AccountingRow(
                    key=k,
                    name=str(names.get(k, "") if by == "project" else r["name"] or ""),
                    byte_hours=float(r["byte_seconds"]) / 3600,
                    stored_bytes=last.get(k, 0),
                    egress_bytes=int(r["egress_bytes"]),
                    repair_egress_bytes=int(r.get("repair_egress_bytes", 0)),
                    audits_success=int(r.get("audits_success", 0)),
                    audits_failed=int(r.get("audits_failed", 0)),
                    uptime_seconds=float(r.get("uptime_seconds", 0.0)),
                    requests=int(r["requests"]),
                    tokens=int(r["tokens"]),
                    storage_kwh=float(r["storage_kwh"]),
                    storage_gco2=float(r["storage_gco2"]),
                    compute_kwh=float(r["compute_kwh"]),
                    compute_gco2=float(r["compute_gco2"]),
                    compute_tokens_estimated=int(r["compute_tokens_estimated"]),
                )
            )
        return out

    rows = await db.read(txn)
    return AccountingUsage(
        by=by, since=since, until=until if math.isfinite(until) else 0.0, rows=rows
    )


async def node_months(db: Database, month: Month) -> list[NodeMonth]:
    """Each node's sums over the month's hours, with its join time."""
    t = node_usage_hourly
    query = (
        sa.select(
            t.c.node_id,
            t.c.operator,
            nodes.c.joined_at,
            _sum(t.c.byte_seconds, "byte_seconds"),
            _sum(t.c.egress_bytes, "egress_bytes"),
            _sum(t.c.repair_egress_bytes, "repair_egress_bytes"),
            _sum(t.c.tokens, "tokens"),
            _sum(t.c.storage_kwh + t.c.compute_kwh, "kwh"),
            _sum(t.c.storage_gco2 + t.c.compute_gco2, "gco2"),
        )
        .select_from(t.outerjoin(nodes, nodes.c.node_id == t.c.node_id))
        .where(t.c.hour >= month.start, t.c.hour < month.end)
        .group_by(t.c.node_id, t.c.operator, nodes.c.joined_at)
        .order_by(t.c.node_id)
    )

    def txn(conn: sa.Connection) -> list[NodeMonth]:
        return [
            NodeMonth(
                node_id=r.node_id,
                operator=r.operator,
                joined_at=None if r.joined_at is None else float(r.joined_at),
                byte_seconds=float(r.byte_seconds),
                egress_bytes=int(r.egress_bytes),
                repair_egress_bytes=int(r.repair_egress_bytes),
                tokens=int(r.tokens),
                kwh=float(r.kwh),
                gco2=float(r.gco2),
            )
            for r in conn.execute(query)
        ]

    return await db.read(txn)


async def payout_report(
    db: Database, month: Month, prices: Prices, schedule: Sequence[float]
) -> PayoutReport:
    rows = payouts(await node_months(db, month), month, prices, schedule)
    return PayoutReport(
        month=month.name,
        hours=month.hours,
        price_storage_gb_month=prices.storage_gb_month,
        price_egress_gb=prices.egress_gb,
        price_compute_1k_tokens=prices.compute_1k_tokens,
        holdback=list(schedule),
        rows=rows,
    )


#: The most points a project's usage series has (steps of its span)
MAX_POINTS = 2000


async def project_usage(
    db: Database, project_id: str, since: float, until: float, step: float, prices: Prices
) -> ProjectUsage:
    """The project's hours starting in ``[since, until)``, summed per ``step`` seconds (a
    whole number of hours; steps start at multiples of it in unix time, so a day's step is
    a UTC day) and in total, with the total's cost."""
    if step < 3600 or step % 3600:
        raise BadRequest("step must be a whole number of hours, in seconds (3600, 86400...)")
    if (until - since) / step > MAX_POINTS:
        raise BadRequest(f"at most {MAX_POINTS} steps: a longer step, or a shorter span")
    t = project_usage_hourly
    query = (
        sa.select(
            t.c.hour, t.c.byte_seconds, t.c.stored_bytes, t.c.egress_bytes, t.c.requests, t.c.tokens
        )
        .where(t.c.project_id == project_id, t.c.hour >= math.ceil(since), t.c.hour < until)
        .order_by(t.c.hour)
    )
    hours = await db.read(lambda conn: conn.execute(query).all())
    steps: dict[float, list[float]] = {}
    for r in hours:
        start = float(r.hour // step * step)
        acc = steps.setdefault(start, [0.0] * 5)
        acc[0] += float(r.byte_seconds) / 3600
        acc[1] = float(r.stored_bytes)  # hours come in order: the step's last tally
        acc[2] += int(r.egress_bytes)
        acc[3] += int(r.requests)
        acc[4] += int(r.tokens)
    points = [
        UsagePoint(
            start=start,
            byte_hours=a[0],
            stored_bytes=int(a[1]),
            egress_bytes=int(a[2]),
            requests=int(a[3]),
            tokens=int(a[4]),
        )
        for start, a in sorted(steps.items())
    ]
    rows = (await usage(db, "project", since, until, only=project_id)).rows
    total = rows[0] if rows else AccountingRow(key=project_id)
    storage, egress, compute = prices.amounts(total.byte_hours, total.egress_bytes, total.tokens)
    return ProjectUsage(
        project_id=project_id,
        since=since,
        until=until,
        step=step,
        points=points,
        total=total,
        price_storage_gb_month=prices.storage_gb_month,
        price_egress_gb=prices.egress_gb,
        price_compute_1k_tokens=prices.compute_1k_tokens,
        storage_amount=storage,
        egress_amount=egress,
        compute_amount=compute,
        amount=storage + egress + compute,
    )
