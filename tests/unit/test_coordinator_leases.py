"""Loop leases: the lease book's rules, gated loops, and two coordinators on one database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from skymesh.admin import AdminClient
from skymesh.coordinator import CoordinatorService
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.lease_keeper import LeaseKeeper
from skymesh.coordinator.leases import FREE, LeaseBook, _take_or_renew, holder_id
from skymesh.loops import DrivenLoop
from tests.unit.test_coordinator_support import ADMIN_TOKEN, Clock, coordinator_config

TTL = 1.0  # lease_ttl of the coordinators here: a dead holder's loops move within 4/3 of it
#: The loops a coordinator runs with coordinator_config's defaults, each under a lease.
LOOPS = {
    "expire-nodes",
    "expire-uploads",
    "lifecycle-rules",
    "gc",
    "audit",
    "repair-checker",
    "repair",
    "retain",
    "accounting",
}


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    db = await Database.open(database_url)
    try:
        yield db
    finally:
        await db.close()


# ---------------------------------------------------------------- the lease book


async def test_take_free_refuse_held_renew_take_expired_release(db: Database) -> None:
    clock = Clock()
    a = LeaseBook(db, "a/1", 10.0, clock)
    b = LeaseBook(db, "b/1", 10.0, clock)
    start = clock.now

    [gc] = await a.acquire(["gc"])  # free: a takes it
    assert (gc.holder, gc.acquired_at, gc.expires_at) == ("a/1", start, start + 10.0)
    [gc] = await b.acquire(["gc"])  # held by a: b is refused and told who holds it
    assert gc.holder == "a/1"

    clock.advance(4.0)
    [gc] = await a.acquire(["gc"])  # a renews: later expiry, same acquired_at
    assert (gc.holder, gc.acquired_at, gc.expires_at) == ("a/1", start, start + 14.0)

    clock.advance(9.9)
    assert (await b.acquire(["gc"]))[0].holder == "a/1"  # not expired yet
    clock.advance(0.2)
    [gc] = await b.acquire(["gc"])  # expired: b takes it, from now
    assert (gc.holder, gc.acquired_at, gc.expires_at) == ("b/1", clock.now, clock.now + 10.0)
    assert (await a.acquire(["gc"]))[0].holder == "b/1"  # a's old lease is gone

    await a.release(["gc"])  # not a's: nothing happens
    assert (await a.acquire(["gc"]))[0].holder == "b/1"
    await b.release(["gc"])
    [gc] = await a.list()
    assert gc.holder == FREE and not gc.held_at(clock.now)
    [gc] = await a.acquire(["gc"])  # released: a takes it at once, long before expiry
    assert gc.holder == "a/1" and gc.held_at(clock.now)


async def test_one_transaction_takes_some_and_reports_all(db: Database) -> None:
    clock = Clock()
    a = LeaseBook(db, "a/1", 10.0, clock)
    b = LeaseBook(db, "b/1", 10.0, clock)
    await a.acquire(["audit"])
    got = {lease.name: lease.holder for lease in await b.acquire(["audit", "gc", "repair"])}
    assert got == {"audit": "a/1", "gc": "b/1", "repair": "b/1"}
    assert [lease.name for lease in await a.list()] == ["audit", "gc", "repair"]
    assert await a.acquire([]) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_take_or_renew_upsert_compiles_for_each_backend(backend: str) -> None:
    dialect = sa.make_url(f"{backend}://").get_dialect()()
    row = {"name": "gc", "holder": "a/1", "acquired_at": 1.0, "expires_at": 11.0}
    sql = " ".join(str(_take_or_renew(backend, [row, row]).compile(dialect=dialect)).split())
    assert "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder" in sql
    assert "WHERE loop_leases.holder = excluded.holder OR loop_leases.holder =" in sql


def test_a_holder_is_one_process_of_an_identity() -> None:
    first, second = holder_id("node"), holder_id("node")
    assert first.startswith("node/") and second.startswith("node/")
    assert first != second  # a restart does not hold its previous life's leases


# ---------------------------------------------------------------- gated loops


async def test_a_shut_gate_stops_the_loop_but_not_an_explicit_run() -> None:
    open_ = False

    async def step() -> float:
        return 3600.0

    loop = DrivenLoop("chore", step)
    loop.gate(lambda: open_)
    loop.start()
    try:
        await asyncio.sleep(0.05)
        assert loop.runs == 0  # shut: its own steps wait
        await loop.run_once()  # an explicit drive runs anyway
        assert loop.runs == 1 and loop.last_run_at is not None
        open_ = True
        loop.trigger()
        await _until(lambda: loop.runs == 2, timeout=2.0)
    finally:
        await loop.stop()


async def test_the_keeper_trusts_a_renewal_for_two_thirds_of_the_ttl(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    clock, mono = Clock(), Clock()
    a = LeaseKeeper(LeaseBook(db, "a/1", 3.0, clock), monotonic=mono)
    b = LeaseKeeper(LeaseBook(db, "b/1", 3.0, clock), monotonic=mono)
    loops = {name: DrivenLoop(name, _idle) for name in ("gc", "audit")}
    for loop in loops.values():
        a.keep(loop)
    b.keep(DrivenLoop("gc", _idle))
    caplog.set_level(logging.INFO, "skymesh.coordinator.lease_keeper")

    await a.loop.run_once()
    assert a.held == {"gc", "audit"}
    mono.advance(1.9)
    assert a.holds("gc")
    mono.advance(0.1)  # 2/3 of 3 s without a renewal: no longer trusted here
    assert not a.holds("gc") and a.held == frozenset()
    await a.loop.run_once()  # renewed (nobody took it meanwhile)
    assert a.held == {"gc", "audit"}

    clock.advance(3.0)  # a's renewals stop; its leases expire in the database
    await b.loop.run_once()
    assert b.held == {"gc"}
    await a.loop.run_once()
    assert a.held == {"audit"}
    messages = [r.getMessage() for r in caplog.records]
    assert "took loop leases audit, gc as a/1" in messages
    assert "lost loop leases audit, gc: not renewed in time" in messages
    assert "took loop leases gc as b/1" in messages
    assert "lost the gc loop's lease to b/1" in messages


# ---------------------------------------------------------------- coordinators on one database


@contextlib.asynccontextmanager
async def _coordinator(
    tmp_path: Path, name: str, database_url: str
) -> AsyncIterator[CoordinatorService]:
    config = coordinator_config(
        tmp_path / name, database_url=database_url, lease_ttl=TTL, retain_interval=60.0
    )
    service = await CoordinatorService.open(config)
    try:
        await service.start()
        yield service
    finally:
        await service.stop()


async def test_each_loop_runs_on_exactly_one_coordinator(tmp_path: Path, database_url: str) -> None:
    async with (
        _coordinator(tmp_path, "a", database_url) as a,
        _coordinator(tmp_path, "b", database_url) as b,
    ):
        assert a.leases.held == LOOPS  # alone when it started: it holds every lease
        assert b.leases.held == frozenset()
        await asyncio.sleep(2 * TTL)  # several renewals
        assert a.leases.held == LOOPS and b.leases.held == frozenset()
        assert all(loop.runs >= 1 for loop in a.loops.values())
        assert all(loop.runs == 0 for loop in b.loops.values())  # b's never stepped

        async with aiohttp.ClientSession() as session:
            report = await AdminClient(b.url, ADMIN_TOKEN, session).leases()
        assert report.coordinator == b.leases.holder
        assert {lease.name for lease in report.leases} == LOOPS
        for lease in report.leases:
            assert (lease.holder, lease.held, lease.held_here) == (a.leases.holder, True, False)
            assert lease.runs == 0 and lease.last_run_at is None


async def test_a_dead_holders_loops_move_within_the_ttl(tmp_path: Path, database_url: str) -> None:
    async with (
        _coordinator(tmp_path, "a", database_url) as a,
        _coordinator(tmp_path, "b", database_url) as b,
    ):
        assert a.leases.held == LOOPS
        # a crash: a's loops and lease keeper stop where they are, nothing is released
        for loop in a.loops.values():
            await loop.stop()
        await a.leases.abandon()
        started = time.monotonic()
        await _until(lambda: b.leases.held == LOOPS, timeout=TTL * 4 / 3 + 2.0)
        took = time.monotonic() - started
        assert took <= TTL * 4 / 3 + 1.0, f"took {took:.2f} s"
        # each loop b took was triggered: it runs at once, not an interval later
        await _until(lambda: all(loop.runs >= 1 for loop in b.loops.values()), timeout=2.0)


async def test_a_clean_stop_hands_the_leases_over_at_once(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        _coordinator(tmp_path, "a", database_url) as a,
        _coordinator(tmp_path, "b", database_url) as b,
    ):
        assert a.leases.held == LOOPS
        await a.stop()  # released: b need not wait for the leases to expire
        holders = {lease.holder for lease in await b.leases.book.list()}
        assert holders <= {FREE, b.leases.holder}  # free, or taken by b's round since
        started = time.monotonic()
        await _until(lambda: b.leases.held == LOOPS, timeout=TTL)
        assert time.monotonic() - started < TTL  # b's next round, not an expiry


# ---------------------------------------------------------------- helpers


async def _idle() -> float:
    return 3600.0


async def _until(condition: Callable[[], bool], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.02)
