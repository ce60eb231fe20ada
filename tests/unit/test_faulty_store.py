"""The test harness's faulty store: each fault acts, and clearing it makes the store honest."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from skymesh.errors import InsufficientStorage, NotFound
from skymesh.node.store import PieceMeta
from skymesh.testing.faults import FaultyStore
from tests.unit.test_piece_store_contract import (
    CHUNK,
    SERIAL,
    chunks_of,
    files_under,
    pid,
    piece_data,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FaultyStore]:
    s = FaultyStore(tmp_path / "store", 1 << 30, CHUNK)
    yield s
    s.close()


async def _stored(store: FaultyStore, count: int = 2) -> dict[str, tuple[bytes, PieceMeta]]:
    pieces = {}
    for i in range(count):
        data = os.urandom(3 * CHUNK + i)
        p = pid()
        pieces[p] = (data, await store.write(p, chunks_of(data), 1 << 20, len(data), SERIAL))
    return pieces


async def test_corrupt_flips_bytes_of_reads(store: FaultyStore) -> None:
    [(piece, (data, meta))] = (await _stored(store, 1)).items()
    store.fault = "corrupt"
    lie = piece_data(store.path(piece))
    assert len(lie) == len(data) and lie != data
    assert sum(a != b for a, b in zip(lie, data, strict=True)) == len(range(0, len(data), 997))
    assert store.head(piece) == meta and store.reads == 1
    store.fault = None
    assert piece_data(store.path(piece)) == data


async def test_swap_answers_with_another_piece(store: FaultyStore) -> None:
    pieces = await _stored(store)
    store.fault = "swap"
    for piece in pieces:
        [other] = set(pieces) - {piece}
        assert piece_data(store.path(piece)) == pieces[other][0]
    assert store.reads == 2


async def test_missing_hides_every_piece(store: FaultyStore) -> None:
    [piece] = await _stored(store, 1)
    store.fault = "missing"
    assert not store.path(piece).exists()
    with pytest.raises(NotFound):
        store.head(piece)
    store.fault = None
    assert store.path(piece).exists() and store.head(piece).piece_id == piece


async def test_forge_keeps_the_bytes_and_lies_in_the_leaves(store: FaultyStore) -> None:
    [(piece, (data, meta))] = (await _stored(store, 1)).items()
    store.fault = "forge"
    assert piece_data(store.path(piece)) == data
    forged = store.head(piece)
    assert forged.merkle_root == meta.merkle_root and len(forged.leaves) == len(meta.leaves)
    assert all(a != b for a, b in zip(forged.leaves, meta.leaves, strict=True))
    assert store.reads == 1


@pytest.mark.parametrize("size", [5000, 3 << 20])
async def test_full_fails_writes_half_way_and_leaves_nothing(
    tmp_path: Path, store: FaultyStore, size: int
) -> None:
    store.fault = "full"
    with pytest.raises(InsufficientStorage, match="disk full"):
        await store.write(pid(), chunks_of(os.urandom(size), 1 << 20), 8 << 20, None, SERIAL)
    assert files_under(tmp_path / "store") == []
    assert (store.used_bytes, store.reserved_bytes, store.piece_count) == (0, 0, 0)
    store.fault = None
    assert await _stored(store, 1)
