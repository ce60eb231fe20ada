"""The metadata database: migrations, restarts, settings, concurrent writers."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from skymesh.coordinator.db.engine import Database, alembic_config
from skymesh.coordinator.db.group import GroupCommit, Outcome
from skymesh.coordinator.db.schema import metadata
from skymesh.coordinator.metainfo import common, download, list_objects, list_versions, segments
from skymesh.wire import routes
from skymesh.wire.metainfo import (
    BucketInfo,
    CreateBucketRequest,
    ObjectInfo,
    ObjectRequest,
    PutInlineRequest,
    SegmentCommit,
    SegmentPosition,
)
from tests.unit.test_coordinator_support import FakeNode, running


async def test_migrations_build_the_schema_and_are_idempotent(blank_database_url: str) -> None:
    db = await Database.open(blank_database_url)
    try:
        await db.migrate()  # again: nothing to do

        def check(conn: sa.Connection) -> None:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert list(compare_metadata(ctx, metadata)) == []
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            assert version == [(_head_revision(),)]
            if not db.is_sqlite:
                return
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
            busy_timeout = conn.execute(sa.text("PRAGMA busy_timeout")).scalar()
            assert busy_timeout is not None and busy_timeout > 0

        await db.read(check)
    finally:
        await db.close()


async def test_data_and_identity_survive_a_restart(database_url: str, tmp_path: Path) -> None:
    node = FakeNode(region="eu", operator="acme")
    async with running(tmp_path, database_url=database_url) as h:
        identity = h.service.identity.id
        api_key = h.project.api_key
        await h.join(node)
        await h.create_bucket("keep")
        info = await h.client.send(
            routes.PUT_INLINE,
            PutInlineRequest(
                bucket="keep", key="k", size=0, etag="e", encrypted_key=b"x", encrypted_metadata=b""
            ),
        )
    async with running(tmp_path, database_url=database_url, with_project=False) as h:
        assert h.service.identity.id == identity
        h.client.headers["Authorization"] = f"Bearer {api_key}"
        assert [b.name for b in (await h.client.send(routes.LIST_BUCKETS, None)).buckets] == [
            "keep"
        ]
        assert (
            await h.client.send(routes.HEAD_OBJECT, ObjectRequest(bucket="keep", key="k")) == info
        )
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert status.node_id == node.id


async def test_concurrent_commits_are_safe(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await h.create_bucket("busy")

        async def put(i: int) -> ObjectInfo:
            return await h.client.call(
                "/v1/objects/put-inline",
                PutInlineRequest(
                    bucket="busy",
                    key=f"k{i % 5}",
                    size=10,
                    etag=str(i),
                    encrypted_key=b"",
                    encrypted_metadata=b"",
                    segment=SegmentCommit(
                        position=SegmentPosition(),
                        plain_size=10,
                        block_size=1024,
                        inline_data=b"%026d" % i,
                    ),
                ),
                ObjectInfo,
            )

        async def make(i: int) -> BucketInfo:
            return await h.client.send(
                routes.CREATE_BUCKET, CreateBucketRequest(name=f"bucket-{i}")
            )

        results = await asyncio.gather(*[put(i) for i in range(60)], *[make(i) for i in range(10)])
        assert len(results) == 70
        heads = [
            await h.client.send(routes.HEAD_OBJECT, ObjectRequest(bucket="busy", key=f"k{i}"))
            for i in range(5)
        ]
        assert len({x.version_id for x in heads}) == 5
        count = await h.service.db.read(
            lambda conn: conn.execute(sa.text("SELECT count(*) FROM segments")).scalar()
        )
        assert count == 5  # one per key: every overwrite dropped the version before it


def test_migrations_render_for_postgresql() -> None:
    """Offline (``--sql``) migration to PostgreSQL: keys sort as bytes there too."""
    cfg = alembic_config("postgresql://user@host/db")
    cfg.output_buffer = io.StringIO()
    command.upgrade(cfg, "head", sql=True)
    ddl = cfg.output_buffer.getvalue()
    assert 'key VARCHAR COLLATE "C" NOT NULL' in ddl
    assert "CREATE INDEX ix_pieces_node ON pieces (node_id)" in ddl
    assert "sqlite" not in ddl.lower()


def test_statements_compile_for_postgresql() -> None:
    dialect = sa.make_url("postgresql://").get_dialect()()
    statements = [
        download._PIECES_BETWEEN,
        download._SEGMENT_AT,
        download._SEGMENTS_FROM,
        common._CURRENT_STREAM,
        segments._SEGMENT_ORDER,
        segments._SET_SEGMENT_ORDER,
        *list_objects._PAGES.values(),
        *(s for triple in segments._DISCARD.values() for s in triple),
        # S3 versioning
        common._SET_LATEST,
        common._SELECT_NULL,
        common._SELECT_STREAM,
        *list_versions._RANGES.values(),
        list_versions._WITHIN,
    ]
    for statement in statements:
        assert str(statement.compile(dialect=dialect))
    assert "FOR UPDATE" in str(common._CURRENT_STREAM.compile(dialect=dialect))


def _head_revision() -> str:
    """The newest migration: the one whose revision no other migration revises."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import skymesh.coordinator.db as db_pkg

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db_pkg.__file__).parent / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


async def test_threads_keep_their_connections_and_a_failed_write_leaves_them_usable(
    database_url: str,
) -> None:
    """Each database thread reuses its own reader and writer; a raising transaction rolls
    back, and the next one on the same connection starts clean."""
    db = await Database.open(database_url)
    try:
        await db.write(lambda conn: conn.execute(sa.text("CREATE TABLE t (v INTEGER)")))

        def which(conn: sa.Connection) -> tuple[str, int]:
            return threading.current_thread().name, id(conn.connection.dbapi_connection)

        seen: dict[str, set[int]] = {}
        for _ in range(40):
            name, conn_id = await db.read(which)
            seen.setdefault(name, set()).add(conn_id)
        assert all(len(ids) == 1 for ids in seen.values())  # one reader per thread, kept

        class Boom(Exception):
            pass

        def fail(conn: sa.Connection) -> None:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            raise Boom

        for _ in range(8):  # through every thread's writer
            with pytest.raises(Boom):
                await db.write(fail)
        await db.write(lambda conn: conn.execute(sa.text("INSERT INTO t VALUES (2)")))
        rows = await db.read(lambda conn: conn.execute(sa.text("SELECT v FROM t")).scalars().all())
        assert rows == [2]

        # writers at once (SQLite: one group commit): one that raises is undone alone
        def put(v: int) -> Callable[[sa.Connection], int]:
            def txn(conn: sa.Connection) -> int:
                conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": v})
                if v % 2:
                    raise Boom
                return v

            return txn

        batches = db._group.batches if db._group is not None else 0
        got = await asyncio.gather(
            *[db.write(put(v)) for v in range(10, 20)], return_exceptions=True
        )
        assert [type(g) for g in got] == [int, Boom] * 5
        if db._group is not None:
            assert db._group.batches == batches + 1  # ten writers, one transaction
        rows = await db.read(lambda conn: conn.execute(sa.text("SELECT v FROM t")).scalars().all())
        assert sorted(rows) == [2, 10, 12, 14, 16, 18]
        await db.write(lambda conn: conn.execute(sa.text("DELETE FROM t WHERE v >= 10")))
        # reads see what writers on other connections committed, not an old snapshot
        await db.write(lambda conn: conn.execute(sa.text("INSERT INTO t VALUES (3)")))
        for _ in range(8):
            count = await db.read(
                lambda conn: conn.execute(sa.text("SELECT count(*) FROM t")).scalar()
            )
            assert count == 2
    finally:
        await db.close()
    assert db._held == {}  # every thread's connections closed


async def test_group_commit_skips_a_writer_that_left_before_its_batch() -> None:
    """A writer cancelled while queued is never run; the others' outcomes reach them."""
    ran: list[list[str]] = []
    release = asyncio.Event()

    async def run(txns: Sequence[Any]) -> list[Outcome]:
        ran.append(list(txns))
        await release.wait()
        return [(t != "bad", t if t != "bad" else ValueError(t)) for t in txns]

    group = GroupCommit(run)
    first = asyncio.ensure_future(group.submit("a"))
    await asyncio.sleep(0)  # "a" runs alone; the rest queue behind it
    queued = [asyncio.ensure_future(group.submit(t)) for t in ("b", "gone", "bad")]
    await asyncio.sleep(0)
    queued[1].cancel()
    release.set()
    assert await first == "a"
    assert await queued[0] == "b"
    with pytest.raises(ValueError):
        await queued[2]
    assert ran == [["a"], ["b", "bad"]] and group.batches == 2
