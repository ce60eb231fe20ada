"""Listing: the pure walk and the SQL walk against a brute-force model of S3 listing."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import buckets, objects, projects
from skymesh.coordinator.metainfo.list_objects import walk_bucket
from skymesh.coordinator.metainfo.listing import ListWalk, list_sorted, prefix_end
from skymesh.wire import routes
from skymesh.wire.metainfo import (
    ListObjectsRequest,
    PutInlineRequest,
)
from tests.unit.test_coordinator_support import running


def model(
    keys: list[str], prefix: str, delimiter: str, start_after: str, limit: int
) -> tuple[list[str], list[str], bool, str]:
    """S3 listing by brute force: every item greater than start_after, sorted, cut at limit."""
    items: dict[str, bool] = {}  # item -> is a common prefix
    for key in set(keys):
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = key[: cut + len(delimiter)]
            if common > start_after:
                items[common] = True
        elif key > start_after:
            items[key] = False
    ordered = sorted(items)
    shown = ordered[:limit]
    truncated = len(ordered) > limit
    return (
        [i for i in shown if not items[i]],
        [i for i in shown if items[i]],
        truncated,
        shown[-1] if truncated else "",
    )


# Few letters so prefixes and delimiters collide often; some far code points for order.
ALPHABET = st.sampled_from(["a", "b", "/", "-", "é", "\U0001f600", "\uffff", "\u00ff", "z"])
KEYS = st.lists(st.text(ALPHABET, min_size=1, max_size=6), max_size=40)
SHORT = st.text(ALPHABET, max_size=3)
DELIMITERS = st.sampled_from(["", "/", "-", "//", "a/", "\U0001f600"])


@given(keys=KEYS, prefix=SHORT, delimiter=DELIMITERS, start_after=SHORT, limit=st.integers(1, 12))
@settings(max_examples=400, deadline=None)
def test_walk_matches_the_model(
    keys: list[str], prefix: str, delimiter: str, start_after: str, limit: int
) -> None:
    keys = sorted(set(keys))
    assert list_sorted(keys, prefix, delimiter, start_after, limit) == model(
        keys, prefix, delimiter, start_after, limit
    )


@given(keys=KEYS, prefix=SHORT, delimiter=DELIMITERS, limit=st.integers(1, 5))
@settings(max_examples=200, deadline=None)
def test_pages_chain_into_the_whole_listing(
    keys: list[str], prefix: str, delimiter: str, limit: int
) -> None:
    keys = sorted(set(keys))
    whole = model(keys, prefix, delimiter, "", 10_000)
    entries: list[str] = []
    prefixes: list[str] = []
    start_after = ""
    for _ in range(len(keys) + 2):
        e, p, truncated, start_after = list_sorted(keys, prefix, delimiter, start_after, limit)
        entries += e
        prefixes += p
        if not truncated:
            break
    assert (entries, prefixes) == (whole[0], whole[1])


@pytest.mark.parametrize(
    ("value", "end"),
    [("a", "b"), ("a/", "a0"), ("a\U0010ffff", "b"), ("\U0010ffff", None), ("\ud7ff", "\ue000")],
)
def test_prefix_end(value: str, end: str | None) -> None:
    assert prefix_end(value) == end


# ---------------------------------------------------------------- against SQLite


class SqlBucket:
    """A real database with one bucket per example, filled straight through Core."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.db = self.loop.run_until_complete(Database.open(url))
        self.count = itertools.count()
        self.queries = 0
        self.loop.run_until_complete(self._project())

        @sa.event.listens_for(self.db.engine, "before_cursor_execute")
        def _count(*_args: object) -> None:
            self.queries += 1

    async def _project(self) -> None:
        await self.db.write(
            lambda conn: conn.execute(
                projects.insert().values(project_id="p", name="p", api_key_hash=b"", created_at=0.0)
            )
        )

    def fill(self, keys: list[str]) -> str:
        bucket = f"b{next(self.count)}"

        def txn(conn: sa.Connection) -> None:
            conn.execute(
                buckets.insert().values(name=bucket, project_id="p", region="", created_at=0.0)
            )
            if keys:
                conn.execute(
                    objects.insert(),
                    [
                        {
                            "bucket": bucket,
                            "key": k,
                            "stream_id": f"{bucket}/{i}",
                            "size": 0,
                            "etag": "",
                            "created_at": 0.0,
                            "encrypted_key": b"",
                            "encrypted_metadata": b"",
                            "segment_count": 0,
                        }
                        for i, k in enumerate(keys)
                    ],
                )

        self.loop.run_until_complete(self.db.write(txn))
        return bucket

    def list(
        self, bucket: str, prefix: str, delimiter: str, start_after: str, limit: int
    ) -> tuple[list[str], list[str], bool, str]:
        walk: ListWalk[sa.Row] = ListWalk(prefix, delimiter, start_after, limit)
        self.loop.run_until_complete(self.db.read(lambda conn: walk_bucket(conn, bucket, walk)))
        return (
            [r.key for r in walk.entries],
            walk.prefixes,
            walk.truncated,
            walk.next_start_after if walk.truncated else "",
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.db.close())
        self.loop.close()


@pytest.fixture(scope="module")
def sql_bucket(module_database_url: str) -> Iterator[SqlBucket]:
    bucket = SqlBucket(module_database_url)
    yield bucket
    bucket.close()


@given(keys=KEYS, prefix=SHORT, delimiter=DELIMITERS, start_after=SHORT, limit=st.integers(1, 12))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_sql_listing_matches_the_model(
    sql_bucket: SqlBucket,
    keys: list[str],
    prefix: str,
    delimiter: str,
    start_after: str,
    limit: int,
) -> None:
    keys = sorted(set(keys))
    bucket = sql_bucket.fill(keys)
    assert sql_bucket.list(bucket, prefix, delimiter, start_after, limit) == model(
        keys, prefix, delimiter, start_after, limit
    )


def test_sql_order_is_utf8_byte_order(sql_bucket: SqlBucket) -> None:
    keys = ["\U0001f600", "\uffff", "é", "z", "Z", "a", "\x7f", "\u00ff"]
    bucket = sql_bucket.fill(keys)
    expected = sorted(keys, key=lambda k: k.encode())
    assert expected == sorted(keys)  # code point order is UTF-8 byte order
    assert sql_bucket.list(bucket, "", "", "", 100)[0] == expected


def test_a_query_per_common_prefix_not_per_key(sql_bucket: SqlBucket) -> None:
    keys = [f"dir{d:03d}/file{f:04d}" for d in range(40) for f in range(250)]  # 10,000 keys
    keys += [f"top{i}" for i in range(30)]
    bucket = sql_bucket.fill(sorted(keys))
    begin = 1 if sql_bucket.db.is_sqlite else 0  # SQLite's BEGIN is a statement we send
    sql_bucket.queries = 0
    entries, prefixes, truncated, _ = sql_bucket.list(bucket, "", "/", "", 1000)
    assert len(prefixes) == 40 and len(entries) == 30 and not truncated
    assert sql_bucket.queries <= 40 + 5
    sql_bucket.queries = 0
    entries, prefixes, truncated, after = sql_bucket.list(bucket, "dir007/", "/", "", 100)
    assert len(entries) == 100 and truncated and after == "dir007/file0099"
    assert sql_bucket.queries <= begin + 4  # pages of 16, 32, 64 rows, growing
    sql_bucket.queries = 0
    entries, _, truncated, _ = sql_bucket.list(bucket, "dir007/", "", "", 100)
    assert len(entries) == 100 and truncated
    assert sql_bucket.queries == begin + 1  # without a delimiter: one page of limit + 1 rows


async def test_listing_over_http(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await h.create_bucket("list")
        for key in ["a/1", "a/2", "b", "c/d/e"]:
            await h.client.send(
                routes.PUT_INLINE,
                PutInlineRequest(
                    bucket="list",
                    key=key,
                    size=0,
                    etag=f"etag-{key}",
                    encrypted_key=b"",
                    encrypted_metadata=b"",
                ),
            )
        resp = await h.client.send(
            routes.LIST_OBJECTS, ListObjectsRequest(bucket="list", delimiter="/", limit=2)
        )
        assert resp.prefixes == ["a/"] and [e.key for e in resp.entries] == ["b"]
        assert resp.truncated and resp.next_start_after == "b"
        assert resp.entries[0].etag == "etag-b" and resp.entries[0].created_at == h.clock.now
        resp = await h.client.send(
            routes.LIST_OBJECTS, ListObjectsRequest(bucket="list", delimiter="/", start_after="b")
        )
        assert (resp.prefixes, resp.entries, resp.truncated) == (["c/"], [], False)
        resp = await h.client.send(
            routes.LIST_OBJECTS, ListObjectsRequest(bucket="list", prefix="a/", limit=5000)
        )
        assert [e.key for e in resp.entries] == ["a/1", "a/2"]
