"""Bodies made on the fly and sinks that keep nothing: big objects without big memory.

A 10 GiB stream must not need 10 GiB of RAM or disk, and Tahoe-LAFS's convergent
encryption turns a re-upload of the same bytes into a no-op, so every body is unique:
bytes come from one random pool, and each 1 MiB chunk starts with the object's own
seed and the chunk's index. No system compresses or deduplicates below the object,
so a pool repeated inside one object costs nobody anything.
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import threading

CHUNK = 1024 * 1024
_POOL_SIZE = 16 * CHUNK
_pool: bytes | None = None
_pool_lock = threading.Lock()
_seeds = itertools.count(int.from_bytes(os.urandom(6), "big") << 16)


def _random_pool() -> bytes:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = os.urandom(_POOL_SIZE)
        return _pool


def unique_bytes(size: int) -> bytes:
    """A small body no other call returns (seed first, then random bytes)."""
    head = struct.pack(">Q", next(_seeds))
    return (head + os.urandom(max(0, size - len(head))))[:size]


class RandomReader(io.RawIOBase):
    """A read-only stream of ``size`` unique pseudo-random bytes, made as they are read.

    Not seekable on purpose: boto3 then reads part by part instead of mapping a file,
    as it would for any stream a user uploads.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self._seed = next(_seeds)
        self._pool = memoryview(_random_pool())

    def __len__(self) -> int:  # requests/urllib3 use it for Content-Length
        return self.size - self.pos

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        n = min(len(out), self.size - self.pos)
        done = 0
        while done < n:
            pos = self.pos + done
            chunk, offset = divmod(pos, CHUNK)
            take = min(n - done, CHUNK - offset)
            start = (chunk * CHUNK + offset) % (_POOL_SIZE - CHUNK)  # a window of the pool
            out[done : done + take] = self._pool[start : start + take]
            if offset < 16:  # stamp the seed and the chunk index into the first 16 bytes
                stamp = struct.pack(">QQ", self._seed, chunk)[offset : offset + take]
                out[done : done + len(stamp)] = stamp
            done += take
        self.pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self.pos
        buf = bytearray(min(size, self.size - self.pos))
        n = self.readinto(buf)
        return bytes(buf[:n])


class NullSink(io.RawIOBase):
    """A writable, seekable stream that counts what it is given and keeps none of it.

    Seekable so that boto3's download_fileobj writes ranged parts as they come instead
    of buffering them to restore order, as it would for a file on disk.
    """

    def __init__(self) -> None:
        self.written = 0
        self.pos = 0
        self.end = 0
        self.lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.end}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        n = len(data)
        with self.lock:
            self.written += n
            self.pos += n
            self.end = max(self.end, self.pos)
        return n
