"""DiskPieceStore: its files on disk. What every piece store does is in
test_piece_store_contract.py."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import msgspec
import pytest

from skymesh.codec.merkle import Buffer
from skymesh.errors import ConfigError, InsufficientStorage, SkymeshError
from skymesh.node.diskstore import META_SUFFIX, DiskPieceStore, Writev
from skymesh.node.piecefile import read_tail_at, trailer
from tests.unit.test_piece_store_contract import (
    CHUNK,
    SERIAL,
    chunks_of,
    files_under,
    pid,
    piece_data,
)


async def test_layout(tmp_path: Path) -> None:
    store = DiskPieceStore(tmp_path, capacity_bytes=1 << 20, chunk_size=CHUNK)
    try:
        data = os.urandom(3 * CHUNK + 123)
        piece = pid()
        await store.write(piece, chunks_of(data), 1 << 20, len(data), SERIAL)
        path = store.path(piece)
        assert path == tmp_path / "pieces" / piece[:2] / piece
        # one file: the piece's bytes from offset 0, then its record and the footer
        assert files_under(tmp_path) == [f"pieces/{piece[:2]}/{piece}"]
        assert path.read_bytes() == data + trailer(msgspec.msgpack.encode(store.head(piece)))
        assert len(list((tmp_path / "pieces").iterdir())) == 256
    finally:
        store.close()


async def test_reopen_tidies_what_a_crash_left(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = DiskPieceStore(root, capacity_bytes=1 << 20, chunk_size=CHUNK)
    kept = {pid(): os.urandom(5000), pid(): os.urandom(7000)}
    for p, d in kept.items():
        await store.write(p, chunks_of(d), 1 << 20, len(d), SERIAL)
    with pytest.raises(ConfigError, match="in use"):
        DiskPieceStore(root, capacity_bytes=1 << 20, chunk_size=CHUNK)
    truncated = pid()
    await store.write(truncated, chunks_of(b"y" * 9000), 1 << 20, 9000, SERIAL)
    store.close()

    # What a crash can leave: temp files, an old layout's sidecar without data; and
    # what no crash leaves: a file without a footer, a piece file cut short.
    (root / "tmp" / "abc123").write_bytes(b"half a piece")
    (root / "tmp" / "abc123.meta").write_bytes(b"half a sidecar")
    orphan = pid()
    (root / "pieces" / orphan[:2] / (orphan + META_SUFFIX)).write_bytes(b"x")
    loose = pid()
    (root / "pieces" / loose[:2] / loose).write_bytes(b"no footer")
    os.truncate(root / "pieces" / truncated[:2] / truncated, 100)

    store = await DiskPieceStore.open(root, capacity_bytes=1 << 20, chunk_size=CHUNK)
    try:
        assert store.used_bytes == 12_000 and store.piece_count == 2
        assert sorted(store.iter_piece_ids()) == sorted(kept)
        assert files_under(root / "tmp") == []
        assert not (root / "pieces" / orphan[:2] / (orphan + META_SUFFIX)).exists()
        # set aside for a human: the file without a footer, the truncated one
        assert sorted(p.name.split(".")[0] for p in (root / "corrupt").iterdir()) == sorted(
            [loose, truncated]
        )
    finally:
        store.close()


def _failing(err: int) -> Writev:
    """A disk that writes half of its first buffer, then fails with ``err``."""

    def writev(fd: int, bufs: list[Buffer]) -> None:
        if bufs and len(bufs[0]) > 1:
            os.write(fd, bufs[0][: len(bufs[0]) // 2])
        raise OSError(err, os.strerror(err))

    return writev


@pytest.mark.parametrize(
    ("err", "raised"), [(errno.ENOSPC, InsufficientStorage), (errno.EIO, SkymeshError)]
)
@pytest.mark.parametrize("size", [5000, 3 << 20])  # written with the commit; in batches before
async def test_a_failing_disk_leaves_nothing(
    tmp_path: Path, err: int, raised: type[Exception], size: int
) -> None:
    store = DiskPieceStore(tmp_path, 1 << 30, CHUNK, writev=_failing(err))
    try:
        with pytest.raises(raised) as e:
            await store.write(pid(), chunks_of(os.urandom(size), 1 << 20), 8 << 20, None, SERIAL)
        assert type(e.value) is raised
        assert files_under(tmp_path) == []
        assert (store.used_bytes, store.reserved_bytes, store.piece_count) == (0, 0, 0)
    finally:
        store.close()


async def test_two_level_store_moves_to_one_level_on_open(tmp_path: Path) -> None:
    """A store written in the old <id[0:2]>/<id[2:4]>/ layout opens with every piece
    readable, counted and in the one-level layout; a name already taken above stays."""
    store = DiskPieceStore(tmp_path, capacity_bytes=1 << 20, chunk_size=CHUNK)
    kept = {pid(): os.urandom(5000), pid(): os.urandom(7000)}
    for p, d in kept.items():
        await store.write(p, chunks_of(d), 1 << 20, len(d), SERIAL)
    store.close()
    for p in kept:  # push them down into the old layout, which had sidecars
        old = tmp_path / "pieces" / p[:2] / p[2:4]
        old.mkdir(exist_ok=True)
        _to_sidecar(store.path(p))
        for name in (p, p + META_SUFFIX):
            os.rename(tmp_path / "pieces" / p[:2] / name, old / name)
    clash = pid()
    (tmp_path / "pieces" / clash[:2] / clash[2:4]).mkdir()
    (tmp_path / "pieces" / clash[:2] / clash[2:4] / clash).write_bytes(b"below")
    (tmp_path / "pieces" / clash[:2] / clash).write_bytes(b"above")

    store = await DiskPieceStore.open(tmp_path, capacity_bytes=1 << 20, chunk_size=CHUNK)
    try:
        assert (store.used_bytes, store.piece_count) == (12_000, 2)
        for p, d in kept.items():
            assert store.path(p) == tmp_path / "pieces" / p[:2] / p
            assert piece_data(store.path(p)) == d
            assert store.head(p).size == len(d)
            assert not (tmp_path / "pieces" / p[:2] / p[2:4]).exists()
        assert (tmp_path / "pieces" / clash[:2] / clash[2:4] / clash).read_bytes() == b"below"
        assert files_under(tmp_path / "pieces") == sorted(
            [f"{clash[:2]}/{clash[2:4]}/{clash}", *(f"{p[:2]}/{p}" for p in kept)]
        )
        assert sorted(store.iter_piece_ids()) == sorted(kept)
    finally:
        store.close()


def _to_sidecar(path: Path, keep: int = 0) -> None:
    """Split a piece file into the old layout's data file and ``.meta`` sidecar, as a
    conversion that appended only ``keep`` bytes of the trailer before a crash left it."""
    size, record = read_tail_at(path)
    os.truncate(path, size + keep)  # the file is data + trailer(record)
    path.with_name(path.name + META_SUFFIX).write_bytes(record)


async def test_sidecar_store_is_converted_on_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store of data files and sidecars opens as one file per piece, with the same
    bytes and records, whatever step of an earlier conversion a crash stopped at."""
    store = DiskPieceStore(tmp_path, capacity_bytes=1 << 20, chunk_size=CHUNK)
    pieces = {pid(): os.urandom(n) for n in (5000, 0, 7000, 9000, 3000, 4000)}
    for p, d in pieces.items():
        await store.write(p, chunks_of(d), 1 << 20, len(d), SERIAL)
    metas = {p: store.head(p) for p in pieces}
    store.close()
    old, empty, cut, appended, _done, bad = pieces  # done: converted, its sidecar gone
    for p in (old, empty, bad):
        _to_sidecar(store.path(p))
    _to_sidecar(store.path(cut), keep=7)  # a crash mid-append
    record = store.path(appended).stat().st_size - len(pieces[appended])
    _to_sidecar(store.path(appended), keep=record)  # a crash before the sidecar went
    os.truncate(store.path(bad), 100)  # a sidecar of more bytes than its data file's

    caplog.set_level(logging.INFO, logger="skymesh.node.diskstore")
    store = await DiskPieceStore.open(tmp_path, capacity_bytes=1 << 20, chunk_size=CHUNK)
    try:
        kept = {p: d for p, d in pieces.items() if p != bad}
        assert (store.used_bytes, store.piece_count) == (sum(map(len, kept.values())), 5)
        assert sorted(store.iter_piece_ids()) == sorted(kept)
        for p, d in kept.items():
            assert piece_data(store.path(p)) == d
            assert store.head(p) == metas[p]
        assert files_under(tmp_path / "pieces") == sorted(f"{p[:2]}/{p}" for p in kept)
        assert sorted(p.name.split(".")[0] for p in (tmp_path / "corrupt").iterdir()) == [bad] * 2
        assert "converted 4 pieces" in caplog.text  # all but done (and bad)
        assert await store.delete(old)
        assert store.used_bytes == sum(map(len, kept.values())) - len(kept[old])
    finally:
        store.close()
