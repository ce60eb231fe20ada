"""Metrics read from loops and counted by the database, without a network."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from skymesh import metrics
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.metrics import CoordinatorMetrics
from skymesh.loops import DrivenLoop

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: bytes) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def value(got: Samples, name: str, **labels: str) -> float:
    return got.get((name, frozenset(labels.items())), 0.0)


async def test_loop_collector_reads_the_loops_counts() -> None:
    async def step() -> float:
        return 60.0

    loop = DrivenLoop("chore", step)
    reg = metrics.registry()
    reg.register(metrics.LoopCollector(lambda: [loop]))
    before = samples(metrics.exposition(reg))
    assert value(before, "skymesh_loop_runs_total", loop="chore") == 0
    assert ("skymesh_loop_last_run_timestamp_seconds", frozenset({("loop", "chore")})) not in before
    await loop.run_once()
    await loop.run_once()
    loop.failures = 3  # what the loop's own runner counts when a step raises
    after = samples(metrics.exposition(reg))
    assert value(after, "skymesh_loop_runs_total", loop="chore") == 2
    assert value(after, "skymesh_loop_failures_total", loop="chore") == 3
    assert loop.last_run_at is not None
    assert value(after, "skymesh_loop_last_run_timestamp_seconds", loop="chore") == pytest.approx(
        loop.last_run_at
    )
    assert value(after, "process_cpu_seconds_total") > 0


class _Conflict(Exception):
    sqlstate = "40001"  # as psycopg reports a serialization failure


async def test_database_reports_transactions_and_conflict_retries(tmp_path: Path) -> None:
    db = await Database.open(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    observer = CoordinatorMetrics()
    db.observer = observer
    tries = 0

    def conflicts_once(conn: sa.Connection) -> int:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise sa.exc.DBAPIError("UPDATE", None, _Conflict())
        return int(conn.execute(sa.text("SELECT 1")).scalar_one())

    def fails(_conn: sa.Connection) -> None:
        raise ValueError("no")

    try:
        assert await db.write(conflicts_once) == 1
        assert await db.read(lambda conn: conn.execute(sa.text("SELECT 2")).scalar_one()) == 2
        with pytest.raises(ValueError):
            await db.read(fails)
    finally:
        await db.close()
    got = samples(await observer.exposition())
    assert tries == 2
    assert value(got, "skymesh_coordinator_db_retries_total", kind="write", reason="conflict") == 1
    assert value(got, "skymesh_coordinator_db_transactions_total", kind="write", outcome="ok") == 1
    assert value(got, "skymesh_coordinator_db_transactions_total", kind="read", outcome="ok") == 1
    assert (
        value(got, "skymesh_coordinator_db_transactions_total", kind="read", outcome="error") == 1
    )
    assert value(got, "skymesh_coordinator_db_transaction_duration_seconds_count", kind="read") == 2
