"""The piece store contract: what every :class:`~skymesh.node.store.PieceStore` does.

Runs over the disk store and over the test harness's faulty store with no fault
set, which must be indistinguishable from it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from skymesh.codec.merkle import chunk_hashes, merkle_root
from skymesh.errors import BadRequest, Conflict, InsufficientStorage, NotFound, TooLarge
from skymesh.node.diskstore import DiskPieceStore
from skymesh.node.piecefile import data_size
from skymesh.node.store import PieceStore
from skymesh.testing.faults import FaultyStore

CHUNK = 4096
SERIAL = "0" * 32


def pid() -> str:
    return secrets.token_hex(32)


async def chunks_of(data: bytes, step: int = 10_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]
        await asyncio.sleep(0)


def piece_data(path: Path) -> bytes:
    """The piece's bytes in the piece file at ``path``: what a GET of all of it serves."""
    with open(path, "rb") as f:
        return f.read(data_size(f.fileno()))


def files_under(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "lock"
    )


class Stores:
    """Opens stores of one implementation at one root, and closes them after the test."""

    def __init__(self, kind: type[DiskPieceStore] | type[FaultyStore], root: Path) -> None:
        self.kind = kind
        self.root = root
        self.opened: list[PieceStore] = []

    def open(self, capacity_bytes: int = 1 << 20, *, fsync: bool = True) -> PieceStore:
        store = self.kind(self.root, capacity_bytes, CHUNK, fsync)
        self.opened.append(store)
        return store

    async def reopen(self, store: PieceStore, capacity_bytes: int = 1 << 20) -> PieceStore:
        """Close ``store`` and open its root again, as a restarted node does."""
        store.close()
        again = await self.kind.open(self.root, capacity_bytes, CHUNK)
        self.opened.append(again)
        return again


@pytest.fixture(params=[DiskPieceStore, FaultyStore], ids=["disk", "faulty"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    s = Stores(request.param, tmp_path / "store")
    yield s
    for store in s.opened:
        store.close()


@pytest.fixture
def store(stores: Stores) -> PieceStore:
    return stores.open()


async def test_write_head_read_delete(stores: Stores, store: PieceStore) -> None:
    data = os.urandom(3 * CHUNK + 123)
    piece = pid()
    meta = await store.write(piece, chunks_of(data), 1 << 20, len(data), SERIAL)

    assert meta.size == len(data) and meta.piece_id == piece and meta.serial == SERIAL
    assert meta.leaves == chunk_hashes(data, CHUNK)
    assert meta.merkle_root == merkle_root(chunk_hashes(data, CHUNK))
    assert store.head(piece) == meta
    assert store.exists(piece)
    assert piece_data(store.path(piece)) == data
    assert (store.used_bytes, store.piece_count, store.reserved_bytes) == (len(data), 1, 0)
    assert store.capacity_bytes == 1 << 20
    assert store.free_bytes == (1 << 20) - len(data)
    assert list(store.iter_piece_ids()) == [piece]

    assert await store.delete(piece) is True
    assert await store.delete(piece) is False
    with pytest.raises(NotFound):
        store.head(piece)
    assert not store.exists(piece)
    assert (store.used_bytes, store.piece_count) == (0, 0)
    assert files_under(stores.root) == []


async def test_unknown_size_and_empty_piece(store: PieceStore) -> None:
    data = os.urandom(5 * CHUNK)
    piece = pid()
    meta = await store.write(piece, chunks_of(data, 777), len(data), None, SERIAL)
    assert piece_data(store.path(piece)) == data
    assert meta.merkle_root == merkle_root(chunk_hashes(data, CHUNK))

    empty = pid()
    meta = await store.write(empty, chunks_of(b""), 10, 0, SERIAL)
    assert meta.size == 0 and piece_data(store.path(empty)) == b""
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


async def test_too_large_stops_reading_and_leaves_nothing(
    stores: Stores, store: PieceStore
) -> None:
    body = Endless()
    with pytest.raises(TooLarge):
        await store.write(pid(), body.__aiter__(), 5000, None, SERIAL)
    assert body.read == 6  # stopped at the first chunk past max_bytes
    assert files_under(stores.root) == []
    assert (store.used_bytes, store.reserved_bytes) == (0, 0)

    body = Endless()
    with pytest.raises(TooLarge):  # declared size over max: refused before reading
        await store.write(pid(), body.__aiter__(), 5000, 5001, SERIAL)
    assert body.read == 0


async def test_capacity(stores: Stores) -> None:
    store = stores.open(10_000, fsync=False)
    await store.write(pid(), chunks_of(b"a" * 6000), 10_000, 6000, SERIAL)
    body = Endless()
    with pytest.raises(InsufficientStorage):  # declared: refused before reading
        await store.write(pid(), body.__aiter__(), 10_000, 5000, SERIAL)
    assert body.read == 0
    with pytest.raises(InsufficientStorage):  # unknown size: refused while streaming
        await store.write(pid(), body.__aiter__(), 10_000, None, SERIAL)
    assert body.read == 5
    assert (store.used_bytes, store.reserved_bytes, store.piece_count) == (6000, 0, 1)
    assert len(files_under(stores.root)) == 1  # the first piece, one file
    await store.write(pid(), chunks_of(b"b" * 4000), 10_000, None, SERIAL)  # fits exactly
    assert store.free_bytes == 0


async def test_reservations_of_concurrent_writes(stores: Stores) -> None:
    store = stores.open(30_000)
    gate = asyncio.Event()

    async def slow(data: bytes) -> AsyncIterator[bytes]:
        await gate.wait()
        yield data

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


async def test_short_and_long_bodies(stores: Stores, store: PieceStore) -> None:
    with pytest.raises(BadRequest, match="shorter"):
        await store.write(pid(), chunks_of(b"x" * 100), 1000, 200, SERIAL)
    with pytest.raises(BadRequest, match="longer"):
        await store.write(pid(), chunks_of(b"x" * 300), 1000, 200, SERIAL)
    assert files_under(stores.root) == []
    assert store.reserved_bytes == 0


async def test_failing_or_cancelled_body_leaves_nothing(stores: Stores) -> None:
    store = stores.open(1 << 30)

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
        if files_under(stores.root) == []:
            break
        await asyncio.sleep(0.01)
    assert files_under(stores.root) == []
    assert (store.used_bytes, store.reserved_bytes) == (0, 0)


async def test_conflict(store: PieceStore) -> None:
    piece = pid()
    await store.write(piece, chunks_of(b"first"), 100, 5, SERIAL)
    with pytest.raises(Conflict):
        await store.write(piece, chunks_of(b"again"), 100, 5, SERIAL)
    assert piece_data(store.path(piece)) == b"first"

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
    assert piece_data(store.path(other)) == b"slow"


@pytest.mark.parametrize("bad", ["../etc/passwd", "A" * 64, "ab", "g" * 64, "a" * 65, ""])
async def test_invalid_ids_build_no_path(stores: Stores, store: PieceStore, bad: str) -> None:
    with pytest.raises(BadRequest):
        await store.write(bad, chunks_of(b"x"), 10, 1, SERIAL)
    for call in (store.path, store.head, store.exists):
        with pytest.raises(BadRequest):
            call(bad)
    with pytest.raises(BadRequest):
        await store.delete(bad)
    assert files_under(stores.root) == []


async def test_concurrent_writes(store: PieceStore) -> None:
    pieces = {pid(): os.urandom(20_000 + i) for i in range(8)}
    metas = await asyncio.gather(
        *(store.write(p, chunks_of(d, 3000), 1 << 20, len(d), SERIAL) for p, d in pieces.items())
    )
    assert store.piece_count == 8
    assert store.used_bytes == sum(len(d) for d in pieces.values())
    for meta in metas:
        assert piece_data(store.path(meta.piece_id)) == pieces[meta.piece_id]
    assert sorted(store.iter_piece_ids()) == sorted(pieces)


async def test_reopen_finds_every_piece(stores: Stores, store: PieceStore) -> None:
    kept = {pid(): os.urandom(5000), pid(): os.urandom(7000)}
    metas = {
        p: await store.write(p, chunks_of(d), 1 << 20, len(d), SERIAL) for p, d in kept.items()
    }

    store = await stores.reopen(store)
    assert (store.used_bytes, store.piece_count, store.reserved_bytes) == (12_000, 2, 0)
    assert sorted(store.iter_piece_ids()) == sorted(kept)
    for p, d in kept.items():
        assert piece_data(store.path(p)) == d
        assert store.head(p) == metas[p]


async def test_a_damaged_piece_is_set_aside_on_reopen(stores: Stores, store: PieceStore) -> None:
    piece, kept = pid(), pid()
    await store.write(piece, chunks_of(b"y" * 9000), 1 << 20, 9000, SERIAL)
    await store.write(kept, chunks_of(b"k" * 3000), 1 << 20, 3000, SERIAL)
    os.truncate(store.path(piece), 100)

    store = await stores.reopen(store)
    assert (store.used_bytes, store.piece_count) == (3000, 1)
    assert list(store.iter_piece_ids()) == [kept]
    assert not store.exists(piece) and not store.path(piece).exists()
    with pytest.raises(NotFound):
        store.head(piece)
