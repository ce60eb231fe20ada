"""Writing a stream of plaintext as segments: the one loop behind a simple upload and a part.

The body is read into a segment buffer; while that segment is hashed (on worker
threads) and stored (on nodes, or inline in the metadata when it is at or under
the inline threshold), the next one is already being read into a second buffer.
Memory is bounded by two segments, never by the object. Buffers are lent by the
client's :class:`~skymesh.client.buffers.BufferPool` under its budget: the first
is taken once the body's first bytes are there (waiting for the budget, or
:class:`~skymesh.client.buffers.SlowDown`), the read-ahead one only when the
budget has room at once (else the next segment is read after this one is
stored), and all go back when :meth:`SegmentWriter.write` ends, however it ends.
Where a segment goes is the caller's :data:`Place`; a segment the coordinator
may record at once is handed to ``commit_earlier``, so only the last ones wait
for the caller's commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

import aiohttp

from skymesh import errors
from skymesh.client.buffers import BufferPool
from skymesh.client.upload import SegmentUploadError, store_segment
from skymesh.codec.crypto import SegmentCipher
from skymesh.wire.metainfo import CodecParams, Placement, SegmentCommit, SegmentPosition

log = logging.getLogger(__name__)

SEGMENT_ATTEMPTS = 3  # placements tried per segment, each without the nodes that failed
INLINE_HASH_LIMIT = 64 * 1024  # hashed on the event loop up to here: a thread hop costs more
STORE_GRACE = 30.0  # seconds a store under way may finish after its upload was cancelled

#: Nodes for one segment: ``(position, plain size, nodes to leave out)`` -> a placement.
Place = Callable[[SegmentPosition, int, list[str]], Awaitable[Placement]]


#: A body's next bytes: a view must stay unchanged once handed over (of bytes, say).
Chunk = bytes | memoryview


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...


class ChunkReader:
    """Reads exact-size runs from an async iterator of chunks, into reusable buffers."""

    def __init__(self, chunks: AsyncIterator[Chunk]):
        self._chunks = chunks
        self._left = memoryview(b"")
        self.eof = False
        self.total = 0

    async def wait_data(self) -> None:
        """Wait for the body's next bytes (or its end), holding no buffer meanwhile."""
        if not self._left and not self.eof:
            try:
                self._left = memoryview(await anext(self._chunks))
            except StopAsyncIteration:
                self.eof = True

    async def read_into(self, buf: bytearray, limit: int) -> int:
        """Fill ``buf[:limit]``; fewer bytes only at the end of the stream."""
        view = memoryview(buf)
        n = 0
        while n < limit:
            if not self._left:
                if self.eof:
                    break
                try:
                    chunk = await anext(self._chunks)
                except StopAsyncIteration:
                    self.eof = True
                    break
                self._left = memoryview(chunk)
                continue
            take = min(limit - n, len(self._left))
            view[n : n + take] = self._left[:take]
            self._left = self._left[take:]
            n += take
        self.total += n
        return n


async def hash_all(hashers: Sequence[Hasher], data: memoryview) -> None:
    """Feed ``data`` to every hasher, each on its own worker thread.

    hashlib and the checksum routines release the GIL, so MD5 and SHA-256, the
    costliest stages of a signed PUT, run on all cores side by side rather than
    one after the other.
    """
    if len(data) <= INLINE_HASH_LIMIT:
        for h in hashers:
            h.update(data)
    elif len(hashers) == 1:
        await asyncio.to_thread(hashers[0].update, data)
    else:
        await asyncio.gather(*(asyncio.to_thread(h.update, data) for h in hashers))


def inline_segment(
    key: bytes, position: SegmentPosition, plain: memoryview, block_size: int, key_salt: bytes
) -> SegmentCommit:
    """A segment small enough to live, encrypted, inside the metadata."""
    cipher = SegmentCipher(key, position.nonce_segment())
    return SegmentCommit(
        position=position,
        plain_size=len(plain),
        block_size=block_size,
        inline_data=cipher.encrypt_block(0, plain),
        key_salt=key_salt,
    )


class SegmentWriter:
    """One upload's body (an object's, or a part's) stored as segments.

    ``key`` encrypts every segment (``key_salt`` is recorded with each, for a
    part's key); ``part`` numbers their positions. ``size``, when known, sizes
    the buffers; the body is read to its end all the same. Every byte read is fed
    to an MD5 (:attr:`md5`, the S3 ETag) and to ``hashers``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        buffers: BufferPool,
        codec: CodecParams,
        source: AsyncIterator[Chunk],
        key: bytes,
        *,
        key_salt: bytes = b"",
        part: int = 0,
        size: int | None = None,
        hashers: Sequence[Hasher] = (),
    ) -> None:
        self.session = session
        self.buffers = buffers
        self.codec = codec
        self.key = key
        self.key_salt = key_salt
        self.part = part
        self.size = size
        self.md5 = hashlib.md5(usedforsecurity=False)
        self._hashers: list[Hasher] = [self.md5, *hashers]
        self._reader = ChunkReader(source)
        self._taken: list[bytearray] = []  # lent by the pool: back when write() ends
        # segments stored in pieces that no commit has recorded yet: after write()
        # those it answers; after a failure, what the caller must still get deleted
        self.unrecorded: list[SegmentCommit] = []

    @property
    def total(self) -> int:
        """Bytes read from the body so far (all of it, once :meth:`write` returned)."""
        return self._reader.total

    async def write(
        self,
        place: Place,
        commit_earlier: Callable[[SegmentCommit], Awaitable[None]] | None = None,
    ) -> list[SegmentCommit]:
        """Store the whole body; answers the segments not handed to ``commit_earlier``.

        With ``commit_earlier`` each segment but the last is handed over while
        the next one is stored; without it, every segment is answered. The first
        segment's buffer holds more than the inline threshold, so a body that
        fits it is one inline segment, and ``place`` is then never called.
        """
        try:
            segments = await self._write(place, commit_earlier)
        except BaseException:
            self._release(reuse=False)
            raise
        self._release(reuse=True)
        return segments

    async def _write(
        self,
        place: Place,
        commit_earlier: Callable[[SegmentCommit], Awaitable[None]] | None,
    ) -> list[SegmentCommit]:
        codec = self.codec
        reader = self._reader
        await reader.wait_data()
        buf = await self._take(max(self._next_size(), codec.inline_threshold + 1))
        n = await reader.read_into(buf, len(buf))
        spare: bytearray | None = None
        kept: list[SegmentCommit] = []
        index = 0
        while True:
            view = memoryview(buf)[:n]
            position = SegmentPosition(part=self.part, index=index)
            hashing = asyncio.create_task(hash_all(self._hashers, view))
            more = not reader.eof and n == len(buf)
            # read the next segment while this one is stored: into the buffer of the
            # one before where it is large enough, else into one the budget has room for
            next_buf: bytearray | None = None
            reading: asyncio.Task[int] | None = None
            if more:
                size = self._next_size()
                next_buf = spare if spare is not None and len(spare) >= size else None
                next_buf = next_buf or self._try_take(size)
                if next_buf is not None:
                    reading = asyncio.create_task(reader.read_into(next_buf, len(next_buf)))
            try:
                if commit_earlier is not None and kept:
                    earlier = kept.pop()
                    await commit_earlier(earlier)
                    self.unrecorded.remove(earlier)
                if n <= codec.inline_threshold:
                    segment = inline_segment(
                        self.key, position, view, codec.block_size, self.key_salt
                    )
                else:
                    segment = await self._store_noted(position, view, place)
                await hashing
            except BaseException:
                hashing.cancel()
                if reading is not None:
                    reading.cancel()
                await asyncio.gather(
                    hashing, *([reading] if reading else []), return_exceptions=True
                )
                raise
            kept.append(segment)
            if reading is not None:
                next_n = await reading
            elif more:
                # no read-ahead: this segment is stored, so its buffer is free again
                size = self._next_size()
                if len(buf) >= size:
                    next_buf = buf
                elif spare is not None and len(spare) >= size:
                    next_buf = spare
                else:
                    next_buf = await self._take(size)
                next_n = await reader.read_into(next_buf, len(next_buf))
            else:
                next_n = 0
            if next_n == 0:
                return kept
            assert next_buf is not None
            if next_buf is not buf:
                spare, buf = buf, next_buf
            n = next_n
            index += 1

    def _release(self, *, reuse: bool) -> None:
        """Give every buffer back to the budget; kept for reuse only after a success,
        since after a failure a worker thread may still be reading one."""
        for buf in self._taken:
            self.buffers.give(buf, reuse=reuse)
        self._taken.clear()

    def _next_size(self) -> int:
        """A full segment, or what the declared size leaves of one: at least a byte, to see
        the end. Past the declared size (it was wrong), full segments again."""
        cap = self.codec.max_segment_size
        if self.size is None or self.total > self.size:
            return cap
        return max(1, min(cap, self.size - self.total))

    async def _take(self, size: int) -> bytearray:
        buf = await self.buffers.take(size)
        self._taken.append(buf)
        return buf

    def _try_take(self, size: int) -> bytearray | None:
        buf = self.buffers.try_take(size)
        if buf is not None:
            self._taken.append(buf)
        return buf

    async def _store_noted(
        self, position: SegmentPosition, view: memoryview, place: Place
    ) -> SegmentCommit:
        """:meth:`_store`, noting the segment in :attr:`unrecorded`.

        Cancelled midway (the client hung up), the store is given up to
        :data:`STORE_GRACE` seconds to finish, so that its pieces are known and
        the caller's abort can have them deleted rather than left for
        reconciliation.
        """
        storing = asyncio.ensure_future(self._store(position, view, place))
        try:
            segment = await asyncio.shield(storing)
        except asyncio.CancelledError:
            if not storing.done():
                await asyncio.wait({storing}, timeout=STORE_GRACE)
            if storing.done() and not storing.cancelled() and storing.exception() is None:
                self.unrecorded.append(storing.result())
            else:
                storing.cancel()
            raise
        self.unrecorded.append(segment)
        return segment

    async def _store(
        self, position: SegmentPosition, view: memoryview, place: Place
    ) -> SegmentCommit:
        """Store one segment on nodes, asking for fresh ones when too few took their piece."""
        exclude: list[str] = []
        last: errors.SkymeshError | None = None
        for attempt in range(SEGMENT_ATTEMPTS):
            placement = await place(position, len(view), exclude)
            try:
                return await store_segment(
                    self.session,
                    placement,
                    position,
                    view,
                    self.key,
                    self.codec.block_size,
                    key_salt=self.key_salt,
                )
            except SegmentUploadError as e:
                last = e
                exclude.extend(n for n in e.failed_nodes if n not in exclude)
                log.warning(
                    "segment %s attempt %d failed (%s); retrying without %d nodes",
                    position,
                    attempt + 1,
                    e,
                    len(exclude),
                )
        assert last is not None
        raise last
