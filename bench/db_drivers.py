"""PostgreSQL drivers for the coordinator: psycopg 3 on the database threads against
asyncpg through SQLAlchemy's asyncio engine, on the coordinator's own transactions.

    .venv/bin/python bench/db_drivers.py [--seconds 3] [--concurrency 1 16]

Starts a throwaway server (:class:`skymesh.testing.postgres.PostgresServer`, Debian's
``postgresql``; fsync off, so it measures the client side, not the disk), a database
per driver, and runs through :class:`Database` as the coordinator does:

- ``begin``: a begin-object transaction (a pending stream row);
- ``commit``: a commit-object transaction (the latest-version lock, the object row,
  one segment row, the pending row deleted);
- ``read``: a point read of a key's latest version.

``--concurrency`` runs that many tasks at once. Rows give transactions per second and
the median latency. asyncpg needs ``greenlet`` (SQLAlchemy's asyncio layer), which the
project does not depend on: put it on ``PYTHONPATH`` to measure it. Measures, never
asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import buckets, pending_streams, projects, segments
from skymesh.coordinator.metainfo.common import (
    find_version,
    install_object,
    require_bucket_for_write,
)
from skymesh.testing.postgres import PostgresServer

DRIVERS = {"psycopg": "postgresql+psycopg", "asyncpg": "postgresql+asyncpg"}
KEYS = 1000  # keys the reads pick from


def _segment(stream_id: str, now: float) -> dict[str, Any]:
    return {
        "stream_id": stream_id,
        "part": 0,
        "idx": 0,
        "number": 0,
        "plain_offset": 0,
        "plain_size": 1 << 20,
        "block_size": 65520,
        "root_piece_id": "r" * 32,
        "k": 8,
        "repair": 10,
        "optimal": 12,
        "total": 14,
        "piece_size": 1 << 17,
        "created_at": now,
    }


def begin(stream_id: str, key: str) -> Callable[[sa.Connection], None]:
    def txn(conn: sa.Connection) -> None:
        conn.execute(
            pending_streams.insert().values(
                stream_id=stream_id,
                project_id="p",
                bucket="b",
                key=key,
                kind="simple",
                encrypted_key=b"k" * 48,
                encrypted_metadata=b"m" * 64,
                created_at=1.0,
                expires_at=2.0,
            )
        )

    return txn


def commit(stream_id: str, key: str) -> Callable[[sa.Connection], None]:
    values = {
        "stream_id": stream_id,
        "size": 1 << 20,
        "etag": "e" * 32,
        "created_at": 1.0,
        "encrypted_key": b"k" * 48,
        "encrypted_metadata": b"m" * 64,
        "segment_count": 1,
    }

    def txn(conn: sa.Connection) -> None:
        install_object(
            conn, 1.0, "b", key, values, bucket_row=require_bucket_for_write(conn, "p", "b")
        )
        conn.execute(segments.insert(), [_segment(stream_id, 1.0)])
        conn.execute(pending_streams.delete().where(pending_streams.c.stream_id == stream_id))

    return txn


def read(key: str) -> Callable[[sa.Connection], Any]:
    return lambda conn: find_version(conn, "b", key, "")


async def _setup(db: Database) -> None:
    def txn(conn: sa.Connection) -> None:
        conn.execute(
            projects.insert().values(project_id="p", name="p", api_key_hash=b"", created_at=0.0)
        )
        conn.execute(buckets.insert().values(name="b", project_id="p", region="", created_at=0.0))

    await db.write(txn)


async def _run(seconds: float, concurrency: int, op: Callable[[int], Any]) -> tuple[float, float]:
    """(transactions per second, median latency in ms) of ``op`` for ``seconds``."""
    counter = itertools.count()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await op(next(counter))
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


async def measure(url: str, seconds: float, concurrency: list[int]) -> list[tuple[str, ...]]:
    db = await Database.open(url)
    rows: list[tuple[str, ...]] = []
    try:
        await _setup(db)
        streams = itertools.count()

        async def begin_only(i: int) -> None:
            await db.write(begin(f"{next(streams):032x}", f"key{i % KEYS:05d}"))

        async def begin_commit(i: int) -> None:
            sid, key = f"{next(streams):032x}", f"key{i % KEYS:05d}"
            await db.write(begin(sid, key))
            await db.write(commit(sid, key))

        async def read_one(i: int) -> None:
            await db.read(read(f"key{i % KEYS:05d}"))

        ops: dict[str, Callable[[int], Awaitable[None]]] = {
            "begin": begin_only,
            "commit": begin_commit,
            "read": read_one,
        }
        # every key exists before reads: one commit each
        for i in range(KEYS):
            await begin_commit(i)
        for c in concurrency:
            for name, op in ops.items():
                rate, p50 = await _run(seconds, c, op)
                if name == "commit":
                    rate *= 2  # each op was a begin and a commit transaction
                rows.append((name, str(c), f"{rate:,.0f}", f"{p50:.2f}"))
    finally:
        await db.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--drivers", nargs="+", default=list(DRIVERS), choices=list(DRIVERS))
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    with PostgresServer() as server:
        print("| driver | transaction | tasks | txn/s | median ms |")
        print("|---|---|---|---:|---:|")
        for driver in args.drivers:
            url = server.create_database(driver).replace("postgresql://", DRIVERS[driver] + "://")
            for name, c, rate, p50 in asyncio.run(measure(url, args.seconds, args.concurrency)):
                print(f"| {driver} | {name} | {c} | {rate} | {p50} |")


if __name__ == "__main__":
    main()
