"""The metadata database on PostgreSQL: racing writers, a restarted server, URLs.

SQLite runs writers one at a time; on PostgreSQL they race, and the engine keeps
SQLite's meaning by running writes SERIALIZABLE and running a conflicting one again.
The races here are forced: each transaction reads, then waits at a barrier until the
other has read too, then writes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import buckets, node_reputation, objects, projects
from skymesh.coordinator.db.url import parse
from skymesh.coordinator.metainfo.common import (
    current_stream,
    install_object,
    require_bucket_for_write,
)
from skymesh.errors import PreconditionFailed, Unavailable
from skymesh.pgprocs import free_port
from skymesh.testing.postgres import PostgresServer
from tests.conftest import fresh_postgres_database


@pytest.fixture
async def db(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    database = await Database.open(fresh_postgres_database(request))
    yield database
    await database.close()


Txn = Callable[[sa.Connection], Any]


def racing(a: Txn, b: Txn) -> tuple[Txn, Txn]:
    """``a`` and ``b``, each waiting after its first statement (on its first try only)
    until the other has run its own: both read before either writes."""
    barrier = threading.Barrier(2, timeout=10)

    def racer(txn: Txn) -> Txn:
        tries = 0

        def run(conn: sa.Connection) -> Any:
            nonlocal tries  # test instrumentation; the engine's own rule allows no such thing
            tries += 1
            return txn(conn if tries > 1 else _Waiting(conn, barrier))  # type: ignore[arg-type]

        return run

    return racer(a), racer(b)


class _Waiting:
    """A connection that waits at ``barrier`` after its first statement."""

    def __init__(self, conn: sa.Connection, barrier: threading.Barrier) -> None:
        self.conn, self.barrier, self.waited = conn, barrier, False

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        result = self.conn.execute(*args, **kwargs)
        if not self.waited:
            self.waited = True
            self.barrier.wait()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


async def _bucket(db: Database) -> None:
    def txn(conn: sa.Connection) -> None:
        conn.execute(
            projects.insert().values(project_id="p", name="p", api_key_hash=b"", created_at=0.0)
        )
        conn.execute(buckets.insert().values(name="b", project_id="p", region="", created_at=0.0))

    await db.write(txn)


async def test_racing_if_none_match_writes_one_wins(db: Database) -> None:
    """Two creates of one key with If-None-Match: * both find no object; exactly one
    commits and the other, run again, fails its precondition."""
    await _bucket(db)

    def create(etag: str) -> Callable[[sa.Connection], dict[str, Any]]:
        values = {
            "stream_id": f"stream-{etag}",
            "size": 1,
            "etag": etag,
            "created_at": 1.0,
            "encrypted_key": b"",
            "encrypted_metadata": b"",
            "segment_count": 0,
        }

        def txn(conn: sa.Connection) -> dict[str, Any]:
            current_stream(conn, "b", "k")  # what the racer saw: no object yet
            return install_object(
                conn,
                1.0,
                "b",
                "k",
                values,
                bucket_row=require_bucket_for_write(conn, "p", "b"),
                if_none_match="*",
            )

        return txn

    a, b = racing(create("one"), create("two"))
    results = await asyncio.gather(db.write(a), db.write(b), return_exceptions=True)
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1
    assert isinstance(lost[0], PreconditionFailed), lost[0]
    rows = await db.read(lambda conn: conn.execute(sa.select(objects.c.etag)).scalars().all())
    assert rows == [won[0]["etag"]]


async def test_racing_read_modify_writes_lose_nothing(db: Database) -> None:
    """Two increments of one counter read the same value; both count."""
    r = node_reputation.c

    def txn(conn: sa.Connection) -> None:
        n = conn.execute(sa.select(r.audits_success).where(r.node_id == "n")).scalar_one()
        conn.execute(node_reputation.update().where(r.node_id == "n").values(audits_success=n + 1))

    await db.write(
        lambda conn: conn.execute(
            node_reputation.insert().values(
                node_id="n",
                audit_alpha=1.0,
                audit_beta=0.0,
                unknown_alpha=1.0,
                unknown_beta=0.0,
                audits_success=0,
                audits_failed=0,
                audits_unknown=0,
            )
        )
    )
    await asyncio.gather(*(db.write(t) for t in racing(txn, txn)))
    count = await db.read(lambda conn: conn.execute(sa.select(r.audits_success)).scalar_one())
    assert count == 2


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of the test's own, to kill: the session's is shared."""
    with PostgresServer() as server:
        yield server


async def test_an_open_database_survives_a_server_restart(own_server: PostgresServer) -> None:
    db = await Database.open(own_server.create_database("skymesh"))
    try:

        def one(conn: sa.Connection) -> int:
            return int(conn.execute(sa.text("SELECT 1")).scalar_one())

        for _ in range(8):  # every database thread holds connections
            await asyncio.gather(db.read(one), db.write(one))
        own_server.stop()
        with pytest.raises(Unavailable, match="metadata database unavailable"):
            await db.write(one)
        with pytest.raises(Unavailable) as e:
            await db.read(one)
        assert e.value.status == 503
        own_server.start()
        # the dead connections are dropped, not used again
        for _ in range(8):
            assert await db.read(one) == 1
            assert await db.write(one) == 1
    finally:
        await db.close()


async def test_multi_host_url_finds_the_server_that_answers(
    request: pytest.FixtureRequest, postgres: PostgresServer
) -> None:
    """libpq's form: the first host refuses, the second (read-write) serves."""
    fresh_postgres_database(request)  # the session template exists
    dead = free_port()
    url = (
        f"postgresql://postgres@127.0.0.1:{dead},{postgres.host}:{postgres.port}"
        "/skymesh_template?target_session_attrs=read-write"
    )
    db = Database(url)
    try:
        version = await db.read(
            lambda conn: conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        )
        assert version
    finally:
        await db.close()


def test_urls() -> None:
    assert parse("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert parse("postgresql+asyncpg://u@h/db").drivername == "postgresql+asyncpg"
    assert parse("sqlite+aiosqlite:///x.db").drivername == "sqlite"
    multi = parse("postgresql://u:pw@h1:5432,h2:5433/db?target_session_attrs=read-write")
    assert multi.query == {"host": ("h1:5432", "h2:5433"), "target_session_attrs": "read-write"}
    assert (multi.username, multi.password, multi.database) == ("u", "pw", "db")
    query_form = parse("postgresql://u@/db?host=h1:5432&host=h2:5433")
    assert query_form.query["host"] == ("h1:5432", "h2:5433")


async def test_coordinators_starting_together_migrate_once(request: pytest.FixtureRequest) -> None:
    url = fresh_postgres_database(request, migrated=False)
    dbs = await asyncio.gather(*(Database.open(url) for _ in range(3)))
    try:
        versions = await dbs[0].read(
            lambda conn: conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        )
        assert len(versions) == 1
    finally:
        for db in dbs:
            await db.close()
