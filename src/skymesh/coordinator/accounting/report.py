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
from skymesh.wire.accounting import AccountingRow, AccountingUsage, PayoutReport

BY = ("node", "operator", "project")
#: the estimated-energy columns both rollup tables carry (accounting.energy)
ENERGY = ("storage_kwh", "storage_gco2", "compute_kwh", "compute_gco2", "compute_tokens_estimated")


def _sum(column: sa.ColumnElement[object], label: str) -> sa.Label[object]:
    return sa.func.coalesce(sa.func.sum(column), 0).label(label)


async def usage(db: Database, by: str, since: float, until: float = math.inf) -> AccountingUsage:
    """Totals of the hours starting in ``[since, until)``, one row per ``by``."""
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
            names = dict(conn.execute(sa.select(projects.c.project_id, projects.c.name)).all())
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
