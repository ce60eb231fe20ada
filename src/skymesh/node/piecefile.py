"""A stored piece is one file: its bytes, then its record, then a fixed footer.

::

    [0, size)              the piece's bytes, exactly as received
    [size, size + n)       the record: msgpack of PieceMeta (n bytes)
    last 16 bytes          footer: n (u32 LE), format (u32 LE, 1), magic b"skypiece"

One file is one inode, one rename and one ``fdatasync`` per piece (a separate
sidecar file cost a second of each, and ext4's inode allocation showed in the
nodes' PUT profile). The piece's bytes start at offset 0, so a ranged read is
still an ``lseek`` and ``sendfile`` serves ``[start, stop)`` straight from the
file; whoever reads a piece takes its length from here (:func:`data_size`),
never from the file's length, so the record never leaks into a GET, a range or
an audit.
"""

from __future__ import annotations

import os
import struct

from skymesh.errors import SkymeshError

MAGIC = b"skypiece"
FORMAT = 1
FOOTER = struct.Struct("<II8s")
_TAIL_READ = 4096  # one pread gets the footer and, for pieces up to ~7 MiB, the record


class PieceFileError(SkymeshError):
    """The file does not end with a readable footer: not (or no longer) a piece file."""


def trailer(record: bytes) -> bytes:
    """What follows the piece's bytes: ``record`` and its footer."""
    return record + FOOTER.pack(len(record), FORMAT, MAGIC)


def _footer(tail: bytes, file_size: int) -> int:
    """The record's length, from the file's last :data:`FOOTER` bytes."""
    if len(tail) != FOOTER.size:
        raise PieceFileError(f"a file of {file_size} bytes has no piece footer")
    n, fmt, magic = FOOTER.unpack(tail)
    if magic != MAGIC or fmt != FORMAT or n > file_size - FOOTER.size:
        raise PieceFileError(
            f"no piece footer (format {fmt}, magic {magic!r}, record of {n} bytes)"
        )
    return int(n)


def data_size(fd: int) -> int:
    """Bytes of piece data in the open piece file ``fd`` (an ``fstat`` and one ``pread``)."""
    file_size = os.fstat(fd).st_size
    tail = os.pread(fd, FOOTER.size, max(0, file_size - FOOTER.size))
    return file_size - FOOTER.size - _footer(tail, file_size)


def read_tail(fd: int) -> tuple[int, bytes]:
    """(bytes of piece data, the record) of the open piece file ``fd``."""
    file_size = os.fstat(fd).st_size
    want = min(file_size, _TAIL_READ)
    tail = os.pread(fd, want, file_size - want)
    n = _footer(tail[-FOOTER.size :], file_size)
    size = file_size - FOOTER.size - n
    if n + FOOTER.size <= len(tail):
        record = tail[len(tail) - FOOTER.size - n : len(tail) - FOOTER.size]
    else:
        record = os.pread(fd, n, size)
        if len(record) != n:
            raise PieceFileError("piece file shrank while its record was read")
    return size, record


def data_size_at(path: str | os.PathLike[str]) -> int:
    """:func:`data_size` of the piece file at ``path`` (``FileNotFoundError`` when absent)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return data_size(fd)
    finally:
        os.close(fd)


def read_tail_at(path: str | os.PathLike[str]) -> tuple[int, bytes]:
    """:func:`read_tail` of the piece file at ``path`` (``FileNotFoundError`` when absent)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return read_tail(fd)
    finally:
        os.close(fd)
