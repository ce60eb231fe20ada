"""Pieces on local disk: the node's :class:`~skymesh.node.store.PieceStore`.

Layout under ``root``::

    lock                         flock: one process per store
    tmp/<n>                      pieces being received (deleted on open)
    pieces/<id[0:2]>/<id>        the piece's bytes, then its PieceMeta and a footer
    corrupt/                     inconsistent files found on open, kept for a human

One level of 256 directories, all made when the store opens: a write never creates
a directory, and at millions of pieces a directory holds tens of thousands of
entries, which ext4's and XFS's hashed directories look up in constant time.
Stores in the older two-level layout move over when they open (:func:`_flatten`).

A piece is one file (:mod:`skymesh.node.piecefile`): its bytes from offset 0, so a
ranged read is an ``lseek`` and the kernel's ``sendfile`` can serve it, then its
record. It is written whole under ``tmp/`` and renamed into place: a piece file's
presence means the piece is complete. Stores that kept the record in a sidecar
(``<id>.meta``, until 2026-12) are converted when they open (:meth:`_convert`).
A piece id is checked with :func:`~skymesh.wire.pieces.is_valid_piece_id` before
any path is built from it: no path is ever made from anything else.

Disk work (writes, fsync, rename, unlink) runs on a small thread pool owned by
the store, one batched ``writev`` per MiB received; the event loop moves buffers,
counts bytes and hashes the Merkle leaves as they arrive. Without fsync, writes and
the commit are page-cache copies and run on the loop (:attr:`inline_writes`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import msgspec

from skymesh.codec.merkle import Buffer, MerkleBuilder
from skymesh.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    InsufficientStorage,
    NotFound,
    SkymeshError,
    TooLarge,
)
from skymesh.node.piecefile import PieceFileError, data_size_at, read_tail_at, trailer
from skymesh.node.store import META_VERSION, PieceMeta
from skymesh.private import make_dirs
from skymesh.wire.pieces import is_valid_piece_id

log = logging.getLogger(__name__)

T = TypeVar("T")
Writev = Callable[[int, list[Buffer]], None]
"""Writes every byte of the buffers to a file descriptor, or raises :class:`OSError`."""

META_SUFFIX = ".meta"  # the old layout's sidecars, converted on open
WRITE_BATCH = 1024 * 1024  # bytes handed to the disk thread at a time
DISK_THREADS = 4
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_HEX = frozenset("0123456789abcdef")
_PREFIXES = tuple(f"{i:02x}" for i in range(256))  # the directories under pieces/


class _MetaHead(msgspec.Struct):
    """What the open scan needs of a record; decoding it skips the leaves."""

    version: int
    piece_id: str
    size: int


_encode = msgspec.msgpack.Encoder().encode
_decode_meta = msgspec.msgpack.Decoder(PieceMeta).decode
_decode_head = msgspec.msgpack.Decoder(_MetaHead).decode


class _Temp:
    """A piece being received: its temp file."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str, fd: int):
        self.path: str | None = path
        self.fd: int | None = fd

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def discard(self) -> None:
        """Close and delete whatever is left; safe to call from any thread, twice."""
        with contextlib.suppress(OSError):
            self.close()
        p, self.path = self.path, None
        if p is not None:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("cannot remove temp file %s: %s", p, e)


class DiskPieceStore:
    """Pieces on one local filesystem, with capacity accounting.

    One process owns a store at a time (an ``flock`` on ``root/lock``); call
    :meth:`close` to release it. ``writev`` writes piece files (the test harness
    passes one that fails, as a disk that fills up).
    """

    def __init__(
        self,
        root: Path,
        capacity_bytes: int,
        chunk_size: int,
        fsync: bool = True,
        *,
        writev: Writev | None = None,
    ):
        if capacity_bytes < 0:
            raise ConfigError(f"capacity_bytes must be >= 0, not {capacity_bytes}")
        if chunk_size <= 0:
            raise ConfigError(f"chunk_size must be > 0, not {chunk_size}")
        self.root = Path(root)
        self.chunk_size = chunk_size
        self.fsync = fsync
        # Without fsync a write only copies into the page cache (a piece of 1.4 MB:
        # about 0.3 ms with its record and rename), which costs less on the loop than
        # the two thread switches of a hop to the disk thread; with fsync, never.
        self.inline_writes = not fsync
        self._writev = writev_all if writev is None else writev
        self._capacity = capacity_bytes
        self._pieces_dir = self.root / "pieces"
        self._tmp_dir = self.root / "tmp"
        # The write path builds str paths: pathlib's objects cost microseconds a piece.
        self._pieces_str = str(self._pieces_dir)
        self._tmp_str = str(self._tmp_dir)
        # Temp names need only be unique in this process: one process owns the store
        # (the lock) and tmp/ is emptied when it opens.
        self._tmp_names = itertools.count()
        self._corrupt_dir = self.root / "corrupt"
        for d in (self.root, self._pieces_dir, self._tmp_dir):
            make_dirs(d)
        for prefix in _PREFIXES:
            (self._pieces_dir / prefix).mkdir(mode=0o700, exist_ok=True)
        self._lock_fd: int | None = self._lock()
        self._used = 0
        self._count = 0
        self._reserved = 0
        self._writing: set[str] = set()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            DISK_THREADS, thread_name_prefix="piecestore"
        )
        try:
            self._clean_tmp()
            _flatten(self._pieces_dir)
            self._scan()
        except BaseException:
            self.close()
            raise
        log.info(
            "piece store %s: %d pieces, %d of %d bytes used",
            self.root,
            self._count,
            self._used,
            self._capacity,
        )

    @classmethod
    async def open(
        cls, root: Path, capacity_bytes: int, chunk_size: int, fsync: bool = True
    ) -> DiskPieceStore:
        """Open a store without blocking the event loop on the initial scan."""
        return await asyncio.to_thread(cls, root, capacity_bytes, chunk_size, fsync)

    def close(self) -> None:
        """Release the store's lock and threads. Writes in flight should be finished first."""
        self._pool.shutdown(wait=True)
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)

    # ------------------------------------------------------------ accounting

    @property
    def capacity_bytes(self) -> int:
        return self._capacity

    @property
    def used_bytes(self) -> int:
        """Bytes of stored pieces (piece data; their records are not counted)."""
        return self._used

    @property
    def reserved_bytes(self) -> int:
        """Bytes promised to pieces being received."""
        return self._reserved

    @property
    def free_bytes(self) -> int:
        return max(0, self._capacity - self._used - self._reserved)

    @property
    def piece_count(self) -> int:
        return self._count

    # ------------------------------------------------------------ paths

    @staticmethod
    def _check_id(piece_id: str) -> None:
        if not isinstance(piece_id, str) or not is_valid_piece_id(piece_id):
            shown = repr(piece_id)[:80]
            raise BadRequest(f"invalid piece id {shown}: expected 64 lowercase hex characters")

    def _dir(self, piece_id: str) -> Path:
        return self._pieces_dir / piece_id[0:2]

    def path(self, piece_id: str) -> Path:
        """The piece file of ``piece_id`` (which may not exist)."""
        self._check_id(piece_id)
        return self._dir(piece_id) / piece_id

    def _file(self, piece_id: str) -> str:
        """:meth:`path` as a str, of a checked id."""
        return f"{self._pieces_str}/{piece_id[0:2]}/{piece_id}"

    def exists(self, piece_id: str) -> bool:
        self._check_id(piece_id)
        return os.path.exists(self._file(piece_id))

    def head(self, piece_id: str) -> PieceMeta:
        """The record of a stored piece; :class:`NotFound` when it is not stored."""
        try:
            size, raw = read_tail_at(self.path(piece_id))
        except FileNotFoundError:
            raise NotFound(f"piece {piece_id} is not stored here") from None
        except PieceFileError as e:
            raise SkymeshError(f"piece file {piece_id} is corrupt: {e}") from e
        try:
            meta = _decode_meta(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise SkymeshError(f"record of piece {piece_id} is corrupt: {e}") from e
        if meta.version != META_VERSION or meta.piece_id != piece_id or meta.size != size:
            raise SkymeshError(
                f"record of piece {piece_id} has version {meta.version}, id {meta.piece_id} "
                f"and size {meta.size} (file: {size}): not readable by this node"
            )
        return meta

    def iter_piece_ids(self) -> Iterator[str]:
        """Ids of stored pieces, in no order (blocking directory walk: use from a thread)."""
        for d in _subdirs(self._pieces_dir):
            with os.scandir(d.path) as it:
                for entry in it:
                    if is_valid_piece_id(entry.name):
                        yield entry.name

    # ------------------------------------------------------------ write

    def _reserve(self, nbytes: int, held: list[int]) -> None:
        if self._used + self._reserved + nbytes > self._capacity:
            raise InsufficientStorage(
                f"piece does not fit: {self._used} bytes used and {self._reserved} "
                f"reserved of {self._capacity}, {nbytes} more needed"
            )
        self._reserved += nbytes
        held[0] += nbytes

    async def write(
        self,
        piece_id: str,
        chunks: AsyncIterator[Buffer],
        max_bytes: int,
        expected_size: int | None,
        serial: str,
    ) -> PieceMeta:
        """Receive a piece from ``chunks``, hash it, and store it durably.

        Raises :class:`TooLarge` as soon as more than ``max_bytes`` arrive,
        :class:`InsufficientStorage` when the piece would not fit,
        :class:`BadRequest` when the body is shorter or longer than
        ``expected_size``, :class:`Conflict` when the piece is already stored (or
        being stored). Whatever fails leaves nothing behind.
        """
        self._check_id(piece_id)
        if expected_size is not None:
            if expected_size < 0:
                raise BadRequest(f"negative piece size {expected_size}")
            if expected_size > max_bytes:
                raise TooLarge(f"piece of {expected_size} bytes exceeds the allowed {max_bytes}")
        if piece_id in self._writing or self.exists(piece_id):
            raise Conflict(f"piece {piece_id} is already stored")
        self._writing.add(piece_id)
        held = [0]  # bytes this write has reserved
        try:
            if expected_size is not None:
                self._reserve(expected_size, held)
            return await self._receive(piece_id, chunks, max_bytes, expected_size, serial, held)
        finally:
            self._reserved -= held[0]
            self._writing.discard(piece_id)

    async def _receive(
        self,
        piece_id: str,
        chunks: AsyncIterator[Buffer],
        max_bytes: int,
        expected_size: int | None,
        serial: str,
        held: list[int],
    ) -> PieceMeta:
        path = f"{self._tmp_str}/{next(self._tmp_names)}"
        # Creating an empty file takes microseconds; in the loop, it cannot leak on cancel.
        tmp = _Temp(path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        builder = MerkleBuilder(self.chunk_size)
        # The disk thread appends batch n while the loop receives and hashes batch n + 1.
        pending: concurrent.futures.Future[None] | None = None
        try:
            size = 0
            batch: list[Buffer] = []
            batch_len = 0
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"piece exceeds the allowed {max_bytes} bytes")
                if expected_size is not None:
                    if size > expected_size:
                        raise BadRequest(f"body longer than its declared {expected_size} bytes")
                elif size > held[0]:
                    self._reserve(size - held[0], held)
                if batch_len >= WRITE_BATCH:
                    # A full batch with more to come goes to the disk thread now; the
                    # last one waits for the commit (a piece in one chunk: one trip).
                    if self.inline_writes:
                        _append(self._writev, tmp, batch)
                    else:
                        if pending is not None:
                            await asyncio.wrap_future(pending)
                        pending = self._pool.submit(_append, self._writev, tmp, batch)
                    batch, batch_len = [], 0
                # Hash here, not in the disk thread: BLAKE3 releases the GIL per
                # 64 KiB leaf, and a thread re-taking it from a busy loop for every
                # leaf ran at half speed (convoy); one writev per batch does not.
                builder.update(chunk)
                batch.append(chunk)
                batch_len += len(chunk)
            if pending is not None:
                await asyncio.wrap_future(pending)
            pending = None
            if expected_size is not None and size != expected_size:
                raise BadRequest(
                    f"body of {size} bytes is shorter than its declared {expected_size}"
                )
            root, leaves = builder.finish()
            meta = PieceMeta(
                piece_id=piece_id,
                size=size,
                chunk_size=self.chunk_size,
                merkle_root=root,
                leaves=leaves,
                serial=serial,
                stored_at=time.time(),
            )
            if self.inline_writes:
                self._commit(tmp, batch, meta)
                self._used += size
                self._count += 1
                return meta
            # The last batch goes with the commit: one trip to the disk thread, not two.
            pending = self._pool.submit(self._commit, tmp, batch, meta)
            done = asyncio.wrap_future(pending)

            def account(f: asyncio.Future[None]) -> None:
                # Registered before the await below, so it runs before write() returns;
                # and it still runs if the caller is cancelled mid-commit.
                if not f.cancelled() and f.exception() is None:
                    self._used += size
                    self._count += 1

            done.add_done_callback(account)
            await asyncio.shield(done)
            return meta
        except BaseException:
            if pending is not None and not pending.done():
                # A disk thread still holds the fd: clean up once it lets go.
                pending.add_done_callback(lambda _f: tmp.discard())
            else:
                tmp.discard()
            raise

    def _commit(self, tmp: _Temp, tail: list[Buffer], meta: PieceMeta) -> None:
        """Append the piece's last bytes and its record, then make it durable and
        visible (disk thread)."""
        assert tmp.fd is not None and tmp.path is not None
        _append(self._writev, tmp, [*tail, trailer(_encode(meta))])
        if self.fsync:
            _fdatasync(tmp.fd)
        tmp.close()
        final = self._file(meta.piece_id)
        try:
            os.replace(tmp.path, final)  # complete: its presence means stored
            tmp.path = None
            if self.fsync:
                _fsync_dir(os.path.dirname(final))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(final)
            raise

    # ------------------------------------------------------------ delete

    async def delete(self, piece_id: str) -> bool:
        """Remove a piece; False when it was not stored."""
        size = await self._run(_remove, self.path(piece_id))
        if size is None:
            return False
        self._used -= size
        self._count -= 1
        return True

    # ------------------------------------------------------------ open

    def _lock(self) -> int:
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"piece store {self.root} is in use by another process") from None
        return fd

    def _clean_tmp(self) -> None:
        removed = 0
        with os.scandir(self._tmp_dir) as it:
            for entry in it:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except IsADirectoryError:
                    log.warning("leaving unexpected directory %s", entry.path)
                except FileNotFoundError:
                    pass
        if removed:
            log.info("removed %d leftover temp files from %s", removed, self._tmp_dir)

    def _quarantine(self, path: Path, why: str) -> None:
        self._corrupt_dir.mkdir(mode=0o700, exist_ok=True)
        target = self._corrupt_dir / f"{path.name}.{int(time.time())}"
        log.warning("moving %s to %s: %s", path, target, why)
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, target)

    def _scan(self) -> None:
        """Count stored pieces from their records, convert pieces with sidecars, and
        tidy what a crash left behind."""
        used = count = converted = 0
        for entry in _subdirs(self._pieces_dir):
            d = Path(entry.path)
            names = set(os.listdir(d))
            for name in sorted(names):
                if name.endswith(META_SUFFIX):
                    if name[: -len(META_SUFFIX)] not in names:
                        # sidecar placed, data not: an old layout's interrupted write or delete
                        log.info("removing orphan sidecar %s", d / name)
                        (d / name).unlink(missing_ok=True)
                    continue
                if not (is_valid_piece_id(name) and name[0:2] == entry.name):
                    log.warning("ignoring unexpected file %s", d / name)
                    continue
                if name + META_SUFFIX in names:
                    size = self._convert(d, name)
                    converted += size is not None
                else:
                    size = self._check_piece(d, name)
                if size is not None:
                    used += size
                    count += 1
        self._used, self._count = used, count
        if converted:
            log.info(
                "converted %d pieces of %s from data file and sidecar to one file",
                converted,
                self._pieces_dir,
            )

    def _check_piece(self, d: Path, name: str) -> int | None:
        """Bytes of piece data in ``d/name``, or None when it was set aside."""
        try:
            size, raw = read_tail_at(d / name)
            head = _decode_head(raw)
        except (OSError, PieceFileError, msgspec.DecodeError, msgspec.ValidationError) as e:
            self._quarantine(d / name, f"unreadable piece file: {e}")
            return None
        if head.version != META_VERSION or head.piece_id != name or head.size != size:
            self._quarantine(
                d / name,
                f"record v{head.version} for {head.piece_id} of {head.size} bytes "
                f"does not match the file's {size} bytes of piece data",
            )
            return None
        return head.size

    def _convert(self, d: Path, name: str) -> int | None:
        """Append the sidecar ``d/name.meta`` to its data file ``d/name`` as its record,
        then remove the sidecar; bytes of piece data, or None when both were set aside.

        Crash-safe at every step: until the sidecar is gone it is the truth, and a
        data file longer than the sidecar's ``size`` (an earlier conversion cut
        short) either already ends with exactly this record or is cut back to
        ``size`` and done again. With fsync, the record is durable before the sidecar
        goes. The piece's bytes are never copied or moved.
        """
        data, side = d / name, d / (name + META_SUFFIX)
        try:
            raw = side.read_bytes()
            head = _decode_head(raw)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
            self._quarantine(data, f"unreadable sidecar: {e}")
            self._quarantine(side, "unreadable sidecar")
            return None
        tail = trailer(raw)
        fd = os.open(data, os.O_RDWR | os.O_CLOEXEC)
        try:
            actual = os.fstat(fd).st_size
            ok = head.version == META_VERSION and head.piece_id == name and head.size <= actual
            done = actual == head.size + len(tail) and os.pread(fd, len(tail), head.size) == tail
            if ok and not done:
                os.ftruncate(fd, head.size)
                os.lseek(fd, head.size, os.SEEK_SET)
                self._writev(fd, [tail])
            if ok and self.fsync:  # also when done: a process crash may have left it unsynced
                _fdatasync(fd)
        finally:
            os.close(fd)
        if not ok:
            self._quarantine(
                data,
                f"sidecar v{head.version} for {head.piece_id} of {head.size} bytes "
                f"does not match the {actual}-byte data file",
            )
            self._quarantine(side, "mismatched sidecar")
            return None
        side.unlink()
        return head.size

    # ------------------------------------------------------------ helpers

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.wrap_future(self._pool.submit(fn, *args))


def _subdirs(path: Path) -> list[os.DirEntry[str]]:
    """Two-hex-character subdirectories of ``path``."""
    with os.scandir(path) as it:
        return [
            e
            for e in it
            if len(e.name) == 2 and _HEX.issuperset(e.name) and e.is_dir(follow_symlinks=False)
        ]


def _append(writev: Writev, tmp: _Temp, chunks: list[Buffer]) -> None:
    """Append ``chunks`` to the temp file (disk thread)."""
    assert tmp.fd is not None
    try:
        writev(tmp.fd, chunks)
    except OSError as e:
        if e.errno in _DISK_FULL:
            raise InsufficientStorage(f"disk full: {e}") from e
        raise SkymeshError(f"cannot write piece: {e}") from e


def writev_all(fd: int, bufs: list[Buffer]) -> None:
    """The disk's :data:`Writev`: ``os.writev`` until every byte is written."""
    views = [memoryview(b) for b in bufs]
    i = 0
    while i < len(views):
        n = os.writev(fd, views[i : i + _IOV_MAX])
        while n > 0:
            if n >= len(views[i]):
                n -= len(views[i])
                i += 1
            else:
                views[i] = views[i][n:]
                n = 0


def _fdatasync(fd: int) -> None:
    try:
        getattr(os, "fdatasync", os.fsync)(fd)
    except OSError as e:
        if e.errno in _DISK_FULL:
            raise InsufficientStorage(f"disk full: {e}") from e
        raise


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flatten(pieces_dir: Path) -> None:
    """Move a store in the old two-level layout (``<id[0:2]>/<id[2:4]>/``) to one level.

    Each file moves up by a rename within one filesystem, sidecars before their data
    files as a write places them, so a crash part-way leaves both layouts' rules
    intact and the next open finishes the move. A name already taken one level up
    (which only a crash between the two renames of one file could cause) is left
    for the scan to report.
    """
    moved = 0
    for outer in _subdirs(pieces_dir):
        for inner in _subdirs(Path(outer.path)):
            names = sorted(os.listdir(inner.path), key=lambda n: not n.endswith(META_SUFFIX))
            for name in names:
                target = Path(outer.path) / name
                if target.exists():
                    log.warning(
                        "not moving %s over an existing %s", Path(inner.path) / name, target
                    )
                    continue
                os.rename(Path(inner.path) / name, target)
                moved += 1
            with contextlib.suppress(OSError):  # not empty: something was left behind
                os.rmdir(inner.path)
    if moved:
        log.info("moved %d piece files of %s to the one-level layout", moved, pieces_dir)


def _remove(path: Path) -> int | None:
    """Delete a piece file; its bytes of piece data, or None when it was not there."""
    try:
        try:
            size = data_size_at(path)
        except PieceFileError as e:  # its footer rotted since the store opened
            log.warning("deleting %s, whose size is unreadable: %s", path, e)
            size = 0
        os.unlink(path)
    except FileNotFoundError:
        return None
    return size
