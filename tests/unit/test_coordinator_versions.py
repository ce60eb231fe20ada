"""Versions in the metadata store: the version walk against a model, the 0005 upgrade of a
database with rows, and listing 100,000 keys page by page with bounded queries."""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skymesh.coordinator.db.engine import Database, alembic_config
from skymesh.coordinator.db.schema import buckets, objects, projects
from skymesh.coordinator.metainfo.list_objects import walk_bucket
from skymesh.coordinator.metainfo.list_versions import walk_versions
from skymesh.coordinator.metainfo.listing import ListWalk, VersionWalk, prefix_end
from tests.unit.test_coordinator_listing import model

T = TypeVar("T")

# ---------------------------------------------------------------- helpers


def _row(bucket: str, key: str, seq: int, *, latest: bool, marker: bool = False) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "key": key,
        "seq": seq,
        "stream_id": f"{bucket}/{key}/{seq}",
        "size": 0,
        "etag": "",
        "created_at": 0.0,
        "encrypted_key": b"",
        "encrypted_metadata": b"",
        "segment_count": 0,
        "latest": latest,
        "delete_marker": marker,
        "null_version": False,
    }


class Store:
    """A real SQLite metadata store on its own event loop, filled straight through Core,
    counting queries (hypothesis drives it from plain functions)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.db = self.run(Database.open(url))
        self.queries = 0
        self.buckets = 0
        self.run(
            self.db.write(
                lambda conn: conn.execute(
                    projects.insert().values(
                        project_id="p", name="p", api_key_hash=b"", created_at=0.0
                    )
                )
            )
        )

        @sa.event.listens_for(self.db.engine, "before_cursor_execute")
        def _count(*_args: object) -> None:
            self.queries += 1

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def read(self, txn: Callable[[sa.Connection], T]) -> T:
        return self.run(self.db.read(txn))

    def fill(self, rows: list[tuple[str, int, bool]]) -> str:
        """(key, seq, delete marker) rows; the least seq of each key is its latest."""
        self.buckets += 1
        bucket = f"b{self.buckets}"
        first: dict[str, int] = {}
        for key, seq, _ in rows:
            first[key] = min(seq, first.get(key, seq))

        def txn(conn: sa.Connection) -> None:
            conn.execute(
                buckets.insert().values(name=bucket, project_id="p", region="", created_at=0.0)
            )
            for start in range(0, len(rows), 20_000):
                conn.execute(
                    objects.insert(),
                    [
                        _row(bucket, k, s, latest=first[k] == s, marker=m)
                        for k, s, m in rows[start : start + 20_000]
                    ],
                )

        self.run(self.db.write(txn))
        return bucket

    def close(self) -> None:
        self.run(self.db.close())
        self.loop.close()


@pytest.fixture(scope="module")
def store(module_database_url: str) -> Iterator[Store]:
    s = Store(module_database_url)
    try:
        yield s
    finally:
        s.close()


def version_model(
    rows: list[tuple[str, int, bool]],
    prefix: str,
    delimiter: str,
    key_marker: str,
    marker_seq: int | None,
    limit: int,
) -> tuple[list[tuple[str, int]], list[str], bool]:
    """S3's ListObjectVersions by brute force, over (key, seq) sorted."""
    items: list[tuple[str, int, bool]] = []  # (key or prefix, seq, is a prefix)
    seen: set[str] = set()
    for key, seq, _ in sorted(rows):
        if not key.startswith(prefix):
            continue
        if key < key_marker or (key == key_marker and (marker_seq is None or seq <= marker_seq)):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = key[: cut + len(delimiter)]
            if common > key_marker and common not in seen:
                seen.add(common)
                items.append((common, 0, True))
            continue
        items.append((key, seq, False))
    shown = items[:limit]
    return (
        [(k, s) for k, s, p in shown if not p],
        [k for k, _, p in shown if p],
        len(items) > limit,
    )


# ---------------------------------------------------------------- the version walk

ALPHABET = st.sampled_from(["a", "b", "/", "é", "z"])
VERSIONED = st.lists(
    st.tuples(st.text(ALPHABET, min_size=1, max_size=4), st.integers(-5, 0), st.booleans()),
    max_size=40,
    unique_by=lambda r: (r[0], r[1]),
)


@given(
    rows=VERSIONED,
    prefix=st.text(ALPHABET, max_size=2),
    delimiter=st.sampled_from(["", "/", "a"]),
    marker=st.text(ALPHABET, max_size=3),
    marker_seq=st.one_of(st.none(), st.integers(-5, 0)),
    limit=st.integers(1, 7),
)
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_version_walk_matches_the_model(
    store: Store,
    rows: list[tuple[str, int, bool]],
    prefix: str,
    delimiter: str,
    marker: str,
    marker_seq: int | None,
    limit: int,
) -> None:
    bucket = store.fill(rows)
    walk: VersionWalk[Any] = VersionWalk(prefix, delimiter, marker, marker_seq, limit)
    store.read(lambda conn: walk_versions(conn, bucket, walk))
    expected = version_model(rows, prefix, delimiter, marker, marker_seq, limit)
    assert ([(r.key, r.seq) for r in walk.entries], walk.prefixes, walk.truncated) == expected
    # the rows of a key come newest first, and only the newest is the latest
    for r in walk.entries:
        assert r.latest == (r.seq == min(s for k, s, _ in rows if k == r.key))


def test_version_pages_chain(store: Store) -> None:
    rows = [(f"k{i % 7}", -(i // 7), False) for i in range(60)]
    bucket = store.fill(rows)
    everything = sorted((k, s) for k, s, _ in rows)
    for limit in (1, 2, 5, 1000):
        seen: list[tuple[str, int]] = []
        key_marker, seq = "", None
        while True:
            walk: VersionWalk[Any] = VersionWalk("", "", key_marker, seq, limit)
            store.read(partial(walk_versions, bucket=bucket, walk=walk))
            seen += [(r.key, r.seq) for r in walk.entries]
            if not walk.truncated:
                break
            assert walk.next_row is not None
            key_marker, seq = walk.next_key_marker, walk.next_row.seq
        assert seen == everything


# ---------------------------------------------------------------- migration 0005


async def test_upgrade_keeps_rows_as_null_versions(blank_database_url: str) -> None:
    db = await Database.open(blank_database_url, migrate=False)
    try:

        def to_0004(conn: sa.Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0004")
            conn.execute(
                sa.text(
                    "INSERT INTO projects (project_id, name, api_key_hash, created_at)"
                    " VALUES ('p', 'p', :hash, 0)"
                ),
                {"hash": b"\x00"},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO buckets (name, project_id, region, created_at)"
                    " VALUES ('old', 'p', '', 0)"
                )
            )
            for i, key in enumerate(["a", "b/c", "é"]):
                conn.execute(
                    sa.text(
                        "INSERT INTO objects (bucket, key, stream_id, size, etag, created_at,"
                        " encrypted_key, encrypted_metadata, segment_count)"
                        " VALUES ('old', :key, :sid, :size, 'etag', 1.5, :ekey, :emeta, 1)"
                    ),
                    {"key": key, "sid": f"{i:032x}", "size": i, "ekey": b"\x01", "emeta": b"\x02"},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO parts (stream_id, part_number, size, etag, uploaded_at)"
                    " VALUES ('s', 1, 5, 'e', 0)"
                )
            )

        await db.write(to_0004)
        await db.migrate()

        def read(conn: sa.Connection) -> tuple[Sequence[sa.Row[Any]], ...]:
            return (
                conn.execute(sa.select(objects).order_by(objects.c.key)).all(),
                conn.execute(sa.text("SELECT versioning FROM buckets")).all(),
                conn.execute(sa.text("SELECT checksum FROM parts")).all(),
            )

        rows, bucket_rows, part_rows = await db.read(read)
        assert [(r.key, r.stream_id, r.size) for r in rows] == [
            ("a", f"{0:032x}", 0),
            ("b/c", f"{1:032x}", 1),
            ("é", f"{2:032x}", 2),
        ]
        assert all(r.latest and r.null_version and not r.delete_marker for r in rows)
        assert {r.seq for r in rows} == {0}
        assert (rows[0].encrypted_key, rows[0].encrypted_metadata) == (b"\x01", b"\x02")
        assert bucket_rows == [("",)] and part_rows == [(None,)]
        walk: ListWalk[Any] = ListWalk("", "/", "", 10)
        await db.read(lambda conn: walk_bucket(conn, "old", walk))
        assert ([r.key for r in walk.entries], walk.prefixes) == (["a", "é"], ["b/"])
    finally:
        await db.close()


# ---------------------------------------------------------------- 100,000 keys


def _big_bucket_rows(rng: random.Random) -> Iterator[tuple[str, int, bool]]:
    """100,000 keys in 400 prefixes (some nested), plus older versions and delete markers."""
    for d in range(400):
        for f in range(250):
            key = f"dir{d:03d}/{'sub/' if f % 50 == 0 else ''}file{f:04d}"
            yield key, 0, False
            if rng.random() < 0.05:  # older versions the listing must never read
                yield key, 1, False
                yield key, 2, False
    for i in range(500):  # keys whose latest version is a delete marker: not listed
        yield f"dir{i % 400:03d}/gone{i:04d}", 0, True
        yield f"dir{i % 400:03d}/gone{i:04d}", 1, False


@pytest.mark.slow
def test_listing_100k_keys_page_by_page(store: Store) -> None:
    rows = list(_big_bucket_rows(random.Random(7)))
    bucket = store.fill(rows)
    listed_keys = sorted({k for k, s, m in rows if s == 0 and not m})
    assert len(listed_keys) == 100_000

    spent = 0.0  # inside the coordinator's listing (the model's checks are not counted)
    pages = 0
    worst = 0
    entries: list[str] = []
    prefixes: list[str] = []

    def page(prefix: str, start_after: str, limit: int) -> tuple[bool, str]:
        nonlocal pages, worst, spent
        walk: ListWalk[Any] = ListWalk(prefix, "/", start_after, limit)
        store.queries = 0
        t0 = time.perf_counter()
        store.read(lambda conn: walk_bucket(conn, bucket, walk))
        spent += time.perf_counter() - t0
        pages += 1
        # a page costs a query per common prefix in it plus a few growing pages of keys:
        # never a scan of the bucket (100,000 keys would be hundreds of 1000-row pages)
        worst = max(worst, store.queries - len(walk.prefixes))
        lo = bisect.bisect_left(listed_keys, prefix)
        end = prefix_end(prefix) if prefix else None
        hi = len(listed_keys) if end is None else bisect.bisect_left(listed_keys, end)
        got = model(listed_keys[lo:hi], prefix, "/", start_after, limit)
        assert ([r.key for r in walk.entries], walk.prefixes, walk.truncated) == got[:3]
        entries.extend(r.key for r in walk.entries)
        prefixes.extend(walk.prefixes)
        return walk.truncated, walk.next_start_after

    # the top level, 100 common prefixes a page; then every directory, 1000 items a page
    top: list[str] = []
    after = ""
    while True:
        more, after = page("", after, 100)
        if not more:
            break
    top = list(prefixes)
    assert len(top) == 400
    for directory in top:
        after = ""
        while True:
            more, after = page(directory, after, 1000)
            if not more:
                break
    subdirs = [p for p in prefixes if p.endswith("sub/")]
    assert len(subdirs) == 400
    # every key is listed once: directly, or (under sub/) rolled up into its directory's sub/
    direct = [k for k in listed_keys if "/sub/" not in k]
    assert entries == direct
    assert worst <= 8, f"a page took {worst} queries beyond one per common prefix"
    print(f"\nlisted 100,000 keys in {pages} pages, {spent:.2f} s: {100_000 / spent:,.0f} keys/s")

    if not store.db.is_sqlite:
        return  # the plan below is SQLite's

    def plan(conn: sa.Connection) -> str:
        rows = conn.execute(
            sa.text(
                "EXPLAIN QUERY PLAN SELECT key FROM objects WHERE bucket = :b AND latest = 1"
                " AND key > :k AND delete_marker = 0 ORDER BY key LIMIT 10"
            ),
            {"b": bucket, "k": "dir100/"},
        ).all()
        return " ".join(str(r[-1]) for r in rows)

    assert "ix_objects_latest" in store.read(plan)
