"""Accounting arithmetic: the hourly rollup loop on both engines (a clock moved by
hand), usage read back by node, operator and project, and payouts over a month."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
import pytest
import sqlalchemy as sa

from skymesh.coordinator.accounting.energy import inference_estimate, storage_estimate
from skymesh.coordinator.accounting.payouts import (
    NodeMonth,
    Prices,
    holdback_percent,
    parse_month,
    payouts,
)
from skymesh.coordinator.accounting.report import node_months, usage
from skymesh.coordinator.accounting.rollup import Rollup
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
    projects,
    segments,
    settled_orders,
)
from skymesh.errors import BadRequest
from skymesh.usage_console import inference_energy
from skymesh.wire.inference import ComputeAdvert
from tests.unit.test_coordinator_support import Clock

HOUR = 3600
T0 = 1_800_000_000  # an hour's first second (500,000 hours after the epoch)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    db = await Database.open(database_url)
    try:
        yield db
    finally:
        await db.close()


def _node(node_id: str, operator: str, last_seen: float) -> dict[str, object]:
    return {
        "node_id": node_id,
        "public_key": b"k" * 32,
        "address": "http://127.0.0.1:1",
        "region": "eu-west",
        "operator": operator,
        "capacity_bytes": 10**12,
        "used_bytes": 0,
        "version": "test",
        "joined_at": T0 - 86_400,
        "last_seen": last_seen,
    }


def _reputation(node_id: str, success: int, failed: int) -> dict[str, object]:
    return {
        "node_id": node_id,
        "audit_alpha": 1.0,
        "audit_beta": 0.0,
        "unknown_alpha": 1.0,
        "unknown_beta": 0.0,
        "audits_success": success,
        "audits_failed": failed,
        "audits_unknown": 0,
    }


def _settled(serial: str, node_id: str, nbytes: int, at: float, purpose: str = "") -> dict:
    return {
        "serial": serial,
        "node_id": node_id,
        "project_id": "" if purpose else "p1",
        "purpose": purpose,
        "bytes": nbytes,
        "settled_at": at,
        "hour": int(at // HOUR) * HOUR,
    }


def _setup(conn: sa.Connection) -> None:
    conn.execute(nodes.insert(), [_node("n1", "op-a", T0 + 600), _node("n2", "op-b", 0.0)])
    conn.execute(node_reputation.insert(), [_reputation("n1", 3, 1)])
    conn.execute(
        projects.insert(),
        {"project_id": "p1", "name": "alpha", "api_key_hash": b"h", "created_at": T0},
    )
    conn.execute(
        buckets.insert(), {"name": "b1", "project_id": "p1", "region": "", "created_at": T0}
    )
    conn.execute(
        objects.insert(),
        {
            "bucket": "b1",
            "key": "k",
            "stream_id": "s1",
            "size": 1000,
            "etag": "e",
            "created_at": T0,
            "encrypted_key": b"",
            "encrypted_metadata": b"",
            "segment_count": 1,
        },
    )
    conn.execute(
        segments.insert(),
        {
            "stream_id": "s1",
            "part": 0,
            "idx": 0,
            "number": 0,
            "plain_offset": 0,
            "plain_size": 1000,
            "block_size": 4096,
            "root_piece_id": "r" * 64,
            "k": 1,
            "repair": 1,
            "optimal": 2,
            "total": 2,
            "piece_size": 500,
            "created_at": T0,
        },
    )
    conn.execute(
        pieces.insert(),
        [
            {
                "stream_id": "s1",
                "part": 0,
                "idx": 0,
                "piece_num": i,
                "node_id": n,
                "merkle_root": b"",
            }
            for i, n in enumerate(("n1", "n2"))
        ],
    )
    conn.execute(
        settled_orders.insert(),
        [
            _settled("a" * 32, "n1", 700, T0 + 500),
            _settled("b" * 32, "n1", 300, T0 + 550, purpose="repair"),
        ],
    )
    conn.execute(
        inference_usage.insert(),
        {
            "serial": "c" * 32,
            "project_id": "p1",
            "model": "m",
            "node_id": "n1",
            "region": "eu-west",
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "price_in": 0.0,
            "price_out": 0.0,
            "cost": 0.0,
            "complete": True,
            "issued_at": T0 + 590,
            "recorded_at": T0 + 590,
        },
    )


async def _node_rows(db: Database) -> dict[tuple[int, str], sa.RowMapping]:
    def txn(conn: sa.Connection) -> dict[tuple[int, str], sa.RowMapping]:
        rows = conn.execute(sa.select(node_usage_hourly)).mappings()
        return {(int(r["hour"]), r["node_id"]): r for r in rows}

    return await db.read(txn)


async def test_rollup_integrates_storage_and_counts_traffic_once(db: Database) -> None:
    await db.write(_setup)
    clock = Clock()
    clock.now = T0 + 600
    rollup = Rollup(db, interval=300.0, offline_after=20.0, clock=clock)

    first = await rollup.tally()  # no tally before: integrates one interval
    assert first.span == 300.0 and first.hours == [T0]
    rows = await _node_rows(db)
    n1, n2 = rows[(T0, "n1")], rows[(T0, "n2")]
    assert (n1["operator"], n1["stored_bytes"], n1["byte_seconds"]) == ("op-a", 500, 500 * 300)
    assert (n1["egress_bytes"], n1["repair_egress_bytes"]) == (700, 300)
    assert (n1["audits_success"], n1["audits_failed"], n1["uptime_seconds"]) == (3, 1, 300.0)
    assert (n1["requests"], n1["tokens"]) == (1, 15)
    assert (n2["byte_seconds"], n2["uptime_seconds"], n2["egress_bytes"]) == (500 * 300, 0.0, 0)

    # 600 s later, same hour: two more audits, n1 still heartbeating
    clock.advance(600)

    def more_audits(conn: sa.Connection) -> None:
        conn.execute(node_reputation.update().values(audits_success=5))
        conn.execute(nodes.update().where(nodes.c.node_id == "n1").values(last_seen=clock.now))

    await db.write(more_audits)
    await rollup.tally()
    again = await rollup.tally()  # at the same instant: integrates nothing, counts nothing twice
    assert again.span == 0.0
    n1 = (await _node_rows(db))[(T0, "n1")]
    assert (n1["byte_seconds"], n1["uptime_seconds"]) == (500 * 900, 900.0)
    assert (n1["audits_success"], n1["egress_bytes"], n1["tokens"]) == (5, 700, 15)

    # a settlement late in this hour, then a tally in the next: each hour counts its own
    def late(conn: sa.Connection) -> None:
        conn.execute(settled_orders.insert(), _settled("d" * 32, "n1", 50, T0 + 3500))
        conn.execute(node_reputation.update().values(audits_success=8))

    await db.write(late)
    clock.now = T0 + HOUR + 100
    third = await rollup.tally()
    assert third.hours == [T0, T0 + HOUR] and third.span == HOUR + 100 - 1200
    rows = await _node_rows(db)
    assert rows[(T0, "n1")]["egress_bytes"] == 750
    assert rows[(T0 + HOUR, "n1")]["egress_bytes"] == 0
    assert rows[(T0 + HOUR, "n1")]["byte_seconds"] == 500 * (HOUR + 100 - 1200)
    assert rows[(T0 + HOUR, "n1")]["audits_success"] == 3
    clock.advance(60)  # no new audits: the marks are the last tally's, not an older hour's
    await rollup.tally()
    assert (await _node_rows(db))[(T0 + HOUR, "n1")]["audits_success"] == 3

    by_node = {r.key: r for r in (await usage(db, "node", T0)).rows}
    assert by_node["n1"].byte_hours == pytest.approx(500 * (HOUR + 160 - 300) / HOUR)
    assert by_node["n1"].egress_bytes == 750 and by_node["n1"].repair_egress_bytes == 300
    assert by_node["n1"].stored_bytes == 500 and by_node["n1"].name == "op-a"
    assert by_node["n1"].audits_success == 8 and by_node["n1"].audits_failed == 1
    by_operator = {r.key: r for r in (await usage(db, "operator", T0)).rows}
    assert set(by_operator) == {"op-a", "op-b"} and by_operator["op-b"].uptime_seconds == 0.0
    (project,) = (await usage(db, "project", T0)).rows
    assert (project.key, project.name, project.stored_bytes) == ("p1", "alpha", 1000)
    assert project.byte_hours == pytest.approx(1000 * (HOUR + 160 - 300) / HOUR)
    assert (project.egress_bytes, project.requests, project.tokens) == (750, 1, 15)
    # only hours starting in the span count
    later = {r.key: r for r in (await usage(db, "node", T0 + 1, T0 + 2 * HOUR)).rows}
    assert later["n1"].egress_bytes == 0
    with pytest.raises(BadRequest):
        await usage(db, "region", 0.0)


# ---------------------------------------------------------------- payouts (pure)

PRICES = Prices(storage_gb_month=1.5, egress_gb=2.0, compute_1k_tokens=0.5)
SCHEDULE = [75.0, 50.0, 25.0]
GB = 10**9


def _ts(year: int, month: int, day: int, hour: int = 0) -> float:
    return datetime(year, month, day, hour, tzinfo=UTC).timestamp()


def test_payouts_integrate_a_month_and_hold_back_from_new_nodes() -> None:
    month = parse_month("2026-12")
    assert month.hours == 31 * 24 and month.start == _ts(2026, 12, 1)
    old = NodeMonth(
        node_id="old",
        operator="op-a",
        joined_at=_ts(2026, 6, 3),  # its 7th month: past the schedule
        byte_seconds=1 * GB * month.hours * HOUR,  # 1 GB all month
        egress_bytes=3 * GB,
        repair_egress_bytes=1 * GB,
        tokens=0,
        kwh=2.0,
        gco2=600.0,
    )
    joined = _ts(2026, 12, 16)  # mid-month: 16 days of storage left
    new = NodeMonth(
        node_id="new",
        operator="op-a",
        joined_at=joined,
        byte_seconds=2 * GB * (month.end - joined),  # 2 GB from when it joined
        egress_bytes=0,
        repair_egress_bytes=0,
        tokens=4000,
        kwh=0.5,
        gco2=50.0,
    )
    (row,) = payouts([old, new], month, PRICES, SCHEDULE)
    new_gb_month = 2 * 16 / 31
    assert row.operator == "op-a" and row.nodes == 2
    assert row.storage_gb_month == pytest.approx(1 + new_gb_month)
    assert (row.egress_gb, row.repair_egress_gb, row.tokens) == (3.0, 1.0, 4000)
    assert row.storage_amount == pytest.approx(1.5 * (1 + new_gb_month))
    assert row.egress_amount == pytest.approx(2.0 * 4)
    assert row.compute_amount == pytest.approx(0.5 * 4)
    new_gross = 1.5 * new_gb_month + 0.5 * 4
    assert row.held == pytest.approx(0.75 * new_gross)  # only the new node, at 75 %
    assert row.net == pytest.approx(row.gross - row.held)
    assert row.gross == pytest.approx(row.storage_amount + row.egress_amount + row.compute_amount)
    assert (row.kwh, row.gco2) == pytest.approx((2.5, 650.0))  # estimates are summed, not priced


def test_holdback_schedule_by_node_month() -> None:
    dec = parse_month("2026-12")
    assert holdback_percent(_ts(2026, 12, 31, 23), dec, SCHEDULE) == 75.0
    assert holdback_percent(_ts(2026, 11, 1), dec, SCHEDULE) == 50.0
    assert holdback_percent(_ts(2026, 10, 15), dec, SCHEDULE) == 25.0
    assert holdback_percent(_ts(2026, 9, 30), dec, SCHEDULE) == 0.0
    assert holdback_percent(_ts(2025, 12, 1), parse_month("2026-01"), SCHEDULE) == 50.0
    assert holdback_percent(None, dec, SCHEDULE) == 0.0  # no longer registered
    assert parse_month("2027-02").hours == 28 * 24
    for bad in ("2026-13", "2026-1", "26-12", "december", ""):
        with pytest.raises(BadRequest):
            parse_month(bad)


# ---------------------------------------------------------------- estimated energy


def test_energy_estimates_arithmetic() -> None:
    # 1 TB for one hour at 2 W/TB and PUE 1.5: 3 Wh; at 400 gCO2/kWh: 1.2 g
    e = storage_estimate(1e12 * HOUR, 2.0, 1.5, 400.0)
    assert (e.kwh, e.gco2) == pytest.approx((0.003, 1.2))
    assert storage_estimate(1e12 * HOUR, 2.0, 0.5, 400.0).kwh == pytest.approx(0.002)  # PUE >= 1
    # 100 W at 50 tokens/s: 2 s per 100 tokens = 100 * 2 / 3600 Wh; PUE 1.2; 500 g/kWh
    advert = ComputeAdvert(
        models=[],
        cores=4,
        memory_bytes=0,
        tokens_per_second=50.0,
        pue=1.2,
        watts=100.0,
        grid_gco2_kwh=500.0,
    )
    c = inference_estimate(100, advert)
    assert c is not None
    assert c.kwh == pytest.approx(100 * 2 / 3600 / 1000 * 1.2)
    assert c.gco2 == pytest.approx(c.kwh * 500.0)
    assert inference_estimate(100, None) is None


async def test_rollup_estimates_energy_per_node_operator_and_project(db: Database) -> None:
    advert = ComputeAdvert(
        models=[],
        cores=4,
        memory_bytes=0,
        tokens_per_second=10.0,
        pue=1.1,
        watts=50.0,
        grid_gco2_kwh=100.0,
    )

    def setup(conn: sa.Connection) -> None:
        _setup(conn)
        conn.execute(
            nodes.update()
            .where(nodes.c.node_id == "n1")
            .values(pue=1.5, grid_gco2_kwh=400.0, storage_watts_per_tb=4.0)
        )  # n2 keeps the defaults: PUE 1.2, 300 gCO2/kWh, 2 W/TB
        conn.execute(
            compute_adverts.insert(),
            {"node_id": "n1", "advert": msgspec.json.encode(advert), "updated_at": T0},
        )
        usage_n2 = {
            "serial": "e" * 32,
            "project_id": "p1",
            "model": "m",
            "node_id": "n2",
            "region": "eu-west",
            "prompt_tokens": 5,
            "completion_tokens": 0,
            "price_in": 0.0,
            "price_out": 0.0,
            "cost": 0.0,
            "complete": True,
            "issued_at": T0 + 595,
            "recorded_at": T0 + 595,
        }  # n2 has no advert: its tokens are not estimated
        conn.execute(inference_usage.insert(), usage_n2)

    await db.write(setup)
    clock = Clock()
    clock.now = T0 + 600
    await Rollup(db, interval=300.0, offline_after=20.0, clock=clock).tally()

    n1_storage = storage_estimate(500 * 300, 4.0, 1.5, 400.0)
    n2_storage = storage_estimate(500 * 300, 2.0, 1.2, 300.0)
    n1_compute = inference_estimate(15, advert)
    assert n1_compute is not None and n1_storage.kwh > 0
    by_node = {r.key: r for r in (await usage(db, "node", T0)).rows}
    n1, n2 = by_node["n1"], by_node["n2"]
    assert (n1.storage_kwh, n1.storage_gco2) == pytest.approx((n1_storage.kwh, n1_storage.gco2))
    assert (n1.compute_kwh, n1.compute_gco2) == pytest.approx((n1_compute.kwh, n1_compute.gco2))
    assert n1.compute_tokens_estimated == 15
    assert n2.storage_gco2 == pytest.approx(n2_storage.gco2)
    assert (n2.tokens, n2.compute_tokens_estimated) == (5, 0)
    assert inference_energy(n2) == ["not estimated", "not estimated"]
    by_operator = {r.key: r for r in (await usage(db, "operator", T0)).rows}
    assert by_operator["op-a"].storage_kwh == pytest.approx(n1_storage.kwh)
    # the project's objects have one piece on each node: both nodes' storage, all its tokens
    (project,) = (await usage(db, "project", T0)).rows
    assert project.storage_gco2 == pytest.approx(n1_storage.gco2 + n2_storage.gco2)
    assert (project.tokens, project.compute_tokens_estimated) == (20, 15)
    assert project.compute_gco2 == pytest.approx(n1_compute.gco2)
    assert "(15 of 20 tokens)" in inference_energy(project)[0]
    (month,) = [m for m in await node_months(db, parse_month("2027-01")) if m.node_id == "n1"]
    assert month.kwh == pytest.approx(n1_storage.kwh + n1_compute.kwh)
    assert month.gco2 == pytest.approx(n1_storage.gco2 + n1_compute.gco2)
