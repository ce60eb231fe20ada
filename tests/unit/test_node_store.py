"""PieceStore: pieces and sidecars on real disk."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from skymesh.codec.merkle import chunk_hashes, merkle_root
from skymesh.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    InsufficientStorage,
    NotFound,
    TooLarge,
)
from skymesh.node.store import META_SUFFIX, PieceStore

CHUNK = 4096
SERIAL = "0" * 32


def pid() -> str:
    return secrets.token_hex(32)


async def chunks_of(data: bytes, step: int = 10_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]
        await asyncio.sleep(0)


def files_under(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "lock"
    )


@pytest.fixture
def store(tmp_path: Path) -> PieceStore:
    s = PieceStore(tmp_path / "store", capacity_bytes=1 << 20, chunk_size=CHUNK)
    yield s
    s.close()


async def test_write_head_read_delete(store: PieceStore) -> None:
    data = os.urandom(3 * CHUNK + 123)
    piece = pid()
    meta = await store.write(piece, chunks_of(data), 1 << 20, len(data), SERIAL)

    assert meta.size == len(data) and meta.piece_id == piece and meta.serial == SERIAL
    assert meta.leaves == chunk_hashes(data, CHUNK)
    assert meta.merkle_root == merkle_root(chunk_hashes(data, CHUNK))
    assert store.head(piece) == meta
    path = store.path(piece)
    assert path == store.root / "pieces" / piece[:2] / piece
    assert path.read_bytes() == data
    assert path.with_name(piece + META_SUFFIX).exists()
    assert (store.used_bytes, store.piece_count, store.reserved_bytes) == (len(data), 1, 0)
    assert store.free_bytes == (1 << 20) - len(data)
    assert list(store.iter_piece_ids()) == [piece]
    assert files_under(store.root / "tmp") == []

    assert await store.delete(piece) is True
    assert await store.delete(piece) is False
    with pytest.raises(NotFound):
        store.head(piece)
    assert (store.used_bytes, store.piece_count) == (0, 0)
    assert files_under(store.root) == []


async def test_unknown_size_and_empty_piece(store: PieceStore) -> None:
    data = os.urandom(5 * CHUNK)
    piece = pid()
    meta = await store.write(piece, chunks_of(data, 777), len(data), None, SERIAL)
    assert store.path(piece).read_bytes() == data
    assert meta.merkle_root == merkle_root(chunk_hashes(data, CHUNK))

    empty = pid()
    meta = await store.write(empty, chunks_of(b""), 10, 0, SERIAL)
    assert meta.size == 0 and store.path(empty).read_bytes() == b""
    assert store.piece_count == 2


class Endless:
    """A body that never ends; counts what was read of it."""

    def __init__(self) -> None:
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.read += 1
            yield b"x" * 1000
            await asyncio.sleep(0)


async def test_too_large_stops_reading_and_leaves_nothing(store: PieceStore) -> None:
    body = Endless()
    with pytest.raises(TooLarge):
        await store.write(pid(), body.__aiter__(), 5000, None, SERIAL)
    assert body.read == 6  # stopped at the first chunk past max_bytes
    assert files_under(store.root) == []
    assert (store.used_bytes, store.reserved_bytes) == (0, 0)

    body = Endless()
    with pytest.raises(TooLarge):  # declared size over max: refused before reading
        await store.write(pid(), body.__aiter__(), 5000, 5001, SERIAL)
    assert body.read == 0


async def test_capacity(tmp_path: Path) -> None:
    store = PieceStore(tmp_path, capacity_bytes=10_000, chunk_size=CHUNK, fsync=False)
    try:
        await store.write(pid(), chunks_of(b"a" * 6000), 10_000, 6000, SERIAL)
        body = Endless()
        with pytest.raises(InsufficientStorage):  # declared: refused before reading
            await store.write(pid(), body.__aiter__(), 10_000, 5000, SERIAL)
        assert body.read == 0
        with pytest.raises(InsufficientStorage):  # unknown size: refused while streaming
            await store.write(pid(), body.__aiter__(), 10_000, None, SERIAL)
        assert body.read == 5
        assert (store.used_bytes, store.reserved_bytes, store.piece_count) == (6000, 0, 1)
        assert len(files_under(tmp_path)) == 2  # the first piece and its sidecar
        await store.write(pid(), chunks_of(b"b" * 4000), 10_000, None, SERIAL)  # fits exactly
        assert store.free_bytes == 0
    finally:
        store.close()


async def test_reservations_of_concurrent_writes(tmp_path: Path) -> None:
    store = PieceStore(tmp_path, capacity_bytes=30_000, chunk_size=CHUNK)
    gate = asyncio.Event()

    async def slow(data: bytes) -> AsyncIterator[bytes]:
        await gate.wait()
        yield data

    try:
        writes = [
            asyncio.create_task(store.write(pid(), slow(b"z" * 10_000), 10_000, 10_000, SERIAL))
            for _ in range(4)
        ]
        await asyncio.sleep(0.01)
        assert store.reserved_bytes == 30_000
        gate.set()
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert [type(r).__name__ for r in results].count("InsufficientStorage") == 1
        assert (store.used_bytes, store.piece_count, store.reserved_bytes) == (30_000, 3, 0)
    finally:
        store.close()


async def test_short_and_long_bodies(store: PieceStore) -> None:
    with pytest.raises(BadRequest, match="shorter"):
        await store.write(pid(), chunks_of(b"x" * 100), 1000, 200, SERIAL)
    with pytest.raises(BadRequest, match="longer"):
        await store.write(pid(), chunks_of(b"x" * 300), 1000, 200, SERIAL)
    assert files_under(store.root) == []
    assert store.reserved_bytes == 0


async def test_failing_or_cancelled_body_leaves_nothing(tmp_path: Path) -> None:
    store = PieceStore(tmp_path, capacity_bytes=1 << 30, chunk_size=CHUNK)
    try:
        await _fail_and_cancel(store)
    finally:
        store.close()


async def _fail_and_cancel(store: PieceStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(3 << 20)  # enough to start a disk batch
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.write(pid(), broken(), 8 << 20, None, SERIAL)

    async def stalls() -> AsyncIterator[bytes]:
        yield os.urandom(2 << 20)
        await asyncio.Event().wait()
        yield b""

    task = asyncio.create_task(store.write(pid(), stalls(), 8 << 20, None, SERIAL))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):  # the disk thread lets go of the temp file, then it goes
        if files_under(store.root) == []:
            break
        await asyncio.sleep(0.01)
    assert files_under(store.root) == []
    assert (store.used_bytes, store.reserved_bytes) == (0, 0)


async def test_conflict(store: PieceStore) -> None:
    piece = pid()
    await store.write(piece, chunks_of(b"first"), 100, 5, SERIAL)
    with pytest.raises(Conflict):
        await store.write(piece, chunks_of(b"again"), 100, 5, SERIAL)
    assert store.path(piece).read_bytes() == b"first"

    other = pid()
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        await gate.wait()
        yield b"slow"

    first = asyncio.create_task(store.write(other, slow(), 100, 4, SERIAL))
    await asyncio.sleep(0)
    with pytest.raises(Conflict):  # the same piece while it is still arriving
        await store.write(other, chunks_of(b"fast"), 100, 4, SERIAL)
    gate.set()
    await first
    assert store.path(other).read_bytes() == b"slow"


@pytest.mark.parametrize("bad", ["../etc/passwd", "A" * 64, "ab", "g" * 64, "a" * 65, ""])
async def test_invalid_ids_build_no_path(store: PieceStore, bad: str) -> None:
    with pytest.raises(BadRequest):
        await store.write(bad, chunks_of(b"x"), 10, 1, SERIAL)
    for call in (store.path, store.head, store.exists):
        with pytest.raises(BadRequest):
            call(bad)
    with pytest.raises(BadRequest):
        await store.delete(bad)
    assert files_under(store.root) == []


async def test_concurrent_writes(store: PieceStore) -> None:
    pieces = {pid(): os.urandom(20_000 + i) for i in range(8)}
    metas = await asyncio.gather(
        *(store.write(p, chunks_of(d, 3000), 1 << 20, len(d), SERIAL) for p, d in pieces.items())
    )
    assert store.piece_count == 8
    assert store.used_bytes == sum(len(d) for d in pieces.values())
    for meta in metas:
        assert store.path(meta.piece_id).read_bytes() == pieces[meta.piece_id]
    assert sorted(store.iter_piece_ids()) == sorted(pieces)


async def test_reopen_counts_and_tidies(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = PieceStore(root, capacity_bytes=1 << 20, chunk_size=CHUNK)
    kept = {pid(): os.urandom(5000), pid(): os.urandom(7000)}
    for p, d in kept.items():
        await store.write(p, chunks_of(d), 1 << 20, len(d), SERIAL)
    with pytest.raises(ConfigError, match="in use"):
        PieceStore(root, capacity_bytes=1 << 20, chunk_size=CHUNK)
    store.close()

    # What a crash can leave: temp files, a sidecar without data, data without sidecar.
    (root / "tmp" / "abc123").write_bytes(b"half a piece")
    (root / "tmp" / "abc123.meta").write_bytes(b"half a sidecar")
    orphan = pid()
    (root / "pieces" / orphan[:2] / (orphan + META_SUFFIX)).write_bytes(b"x")
    loose = pid()
    (root / "pieces" / loose[:2] / loose).write_bytes(b"no sidecar")

    store = await PieceStore.open(root, capacity_bytes=1 << 20, chunk_size=CHUNK)
    try:
        assert store.used_bytes == 12_000 and store.piece_count == 2
        assert sorted(store.iter_piece_ids()) == sorted(kept)
        assert files_under(root / "tmp") == []
        assert not (root / "pieces" / orphan[:2] / (orphan + META_SUFFIX)).exists()
        assert [p.name.split(".")[0] for p in (root / "corrupt").iterdir()] == [loose]
        for p, d in kept.items():
            assert store.path(p).read_bytes() == d
            assert store.head(p).merkle_root == merkle_root(chunk_hashes(d, CHUNK))
    finally:
        store.close()


async def test_truncated_piece_is_quarantined_on_open(tmp_path: Path) -> None:
    store = PieceStore(tmp_path, capacity_bytes=1 << 20, chunk_size=CHUNK)
    piece = pid()
    await store.write(piece, chunks_of(b"y" * 9000), 1 << 20, 9000, SERIAL)
    store.close()
    os.truncate(tmp_path / "pieces" / piece[:2] / piece, 100)
    store = PieceStore(tmp_path, capacity_bytes=1 << 20, chunk_size=CHUNK)
    try:
        assert (store.used_bytes, store.piece_count) == (0, 0)
        assert len(list((tmp_path / "corrupt").iterdir())) == 2
    finally:
        store.close()


async def test_two_level_store_moves_to_one_level_on_open(tmp_path: Path) -> None:
    """A store written in the old <id[0:2]>/<id[2:4]>/ layout opens with every piece
    readable, counted and in the one-level layout; a name already taken above stays."""
    store = PieceStore(tmp_path, capacity_bytes=1 << 20, chunk_size=CHUNK)
    kept = {pid(): os.urandom(5000), pid(): os.urandom(7000)}
    for p, d in kept.items():
        await store.write(p, chunks_of(d), 1 << 20, len(d), SERIAL)
    store.close()
    for p in kept:  # push them down into the old layout
        old = tmp_path / "pieces" / p[:2] / p[2:4]
        old.mkdir(exist_ok=True)
        for name in (p, p + META_SUFFIX):
            os.rename(tmp_path / "pieces" / p[:2] / name, old / name)
    clash = pid()
    (tmp_path / "pieces" / clash[:2] / clash[2:4]).mkdir()
    (tmp_path / "pieces" / clash[:2] / clash[2:4] / clash).write_bytes(b"below")
    (tmp_path / "pieces" / clash[:2] / clash).write_bytes(b"above")

    store = await PieceStore.open(tmp_path, capacity_bytes=1 << 20, chunk_size=CHUNK)
    try:
        assert (store.used_bytes, store.piece_count) == (12_000, 2)
        for p, d in kept.items():
            assert store.path(p) == tmp_path / "pieces" / p[:2] / p
            assert store.path(p).read_bytes() == d
            assert store.head(p).size == len(d)
            assert not (tmp_path / "pieces" / p[:2] / p[2:4]).exists()
        assert (tmp_path / "pieces" / clash[:2] / clash[2:4] / clash).read_bytes() == b"below"
        assert sorted(store.iter_piece_ids()) == sorted(kept)
    finally:
        store.close()
