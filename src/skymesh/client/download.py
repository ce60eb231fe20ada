"""Reading an object's bytes back: any range, segment by segment, part by part.

For each range of a segment the reader asks ``k`` nodes once each for all the
piece bytes the range needs, data pieces first (decoding them needs no
arithmetic), and takes every answer as it streams, in parts of stripes: a small
first part (a quick first byte), then parts of up to ``PART_GROWTH[-1]`` stripes,
each decoded when all its pieces' bytes are in. Per node the reader holds one
part (the connection's chunks, not a copy of them), and the connection buffers a
little more before TCP holds the node back: memory is bounded by a part per node,
not by the range. Each part is decoded in the loop's thread into one plaintext
buffer that the reader reuses while the caller drops each view of it before
asking for the next (:class:`~skymesh.client.buffers.ReusedBuffer`).

Per part the reader hedges: once a straggler has taken twice as long as the
first node to deliver the part (or ``HEDGE_MAX`` passed with none), ``extra``
more nodes are asked for the rest of the range from that part on, the first
``k`` to deliver the part win and the rest are dropped; a node that fails, mid-
stream or before, is replaced by another at once. The extra nodes are asked only
then, not up front, because on a healthy network each of them would cost every
range a request and a dropped connection. AES-GCM then authenticates every
block, so a wrong byte from any node can never reach the caller: on a failed tag
the part is fetched again with every piece checked against its Merkle root, the
liars are left out, and the rest of the range is read from fresh streams.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping

import aiohttp

from skymesh import errors
from skymesh.client.buffers import BufferPool, ReusedBuffer
from skymesh.client.keys import segment_key
from skymesh.client.piecestream import PieceStream
from skymesh.client.upload import coder_for, scheme_of
from skymesh.codec.crypto import SegmentCipher
from skymesh.codec.erasure import PieceBytes
from skymesh.codec.layout import SegmentLayout
from skymesh.codec.segment import decode_blocks_into
from skymesh.piecetransfer.exchange import get_verified_range
from skymesh.wire.metainfo import DownloadPiece, SegmentDownload

log = logging.getLogger(__name__)

# Stripes per part: a small first part for the first byte, then parts of 2 MiB of
# plaintext. A part costs no request (a range is one request per node), only a
# decode call; what the reader holds per range is about four parts (the nodes'
# bytes, what their connections buffer, the plaintext, the unsent answer), and
# parts of 64 stripes raised the gateway's peak memory by ~15 MiB over 32 with
# boto3's 10 ranges at once (docs/benchmarks.md, "Streaming reader").
PART_GROWTH = (4, 32)
# A node's connection buffers up to twice its read_bufsize ahead of the reader and
# then stops reading the socket: half a part per node, so the connection holds at most
# about one part more than the reader's buffer (each pause costs a resume, a timer and
# two epoll calls: a 128 KiB bound paused on nearly every 256 KiB socket read).
MIN_READ_BUFSIZE = 64 * 1024
HEDGE_MIN = 0.02  # s: a straggler gets at least this long past the first piece
HEDGE_MAX = 1.0  # s: with no piece at all by then, ask the extra nodes anyway
SEGMENTS_PER_CALL = 8
# Segments in the call that opens an object: each comes with a signed order per piece,
# all signed before the first byte can flow; the rest follow in batches.
FIRST_CALL_SEGMENTS = 2
REFRESH_ATTEMPTS = 2  # fresh get orders per part, after allowances run out


class SegmentReader:
    """Reads plaintext ranges of one piece-backed segment."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        segment: SegmentDownload,
        data_key: bytes,
        extra: int,
        refresh: Callable[[], Awaitable[SegmentDownload]] | None = None,
        buffers: BufferPool | None = None,
    ):
        assert segment.scheme is not None
        self.session = session
        self.buffers = buffers  # where the plaintext buffer comes from and goes back to
        self.segment = segment
        self.scheme = scheme_of(segment.scheme)
        self.layout = SegmentLayout(segment.plain_size, segment.block_size, self.scheme)
        self.cipher = SegmentCipher(
            segment_key(data_key, segment.key_salt), segment.position.nonce_segment()
        )
        self.coder = coder_for(self.scheme)
        self.extra = extra
        self.bad: set[int] = set()  # piece numbers that failed or lied
        self.exhausted: set[int] = set()  # pieces whose get order is used up
        self.generation = 0  # how many times the orders were renewed
        self._refresh = refresh
        self._set_order()

    def _set_order(self) -> None:
        # nodes last seen online first; among them data pieces first: with all k
        # of them, decoding is a copy
        self.order = sorted(
            self.segment.pieces,
            key=lambda p: (not p.online, p.piece_num >= self.scheme.k, p.piece_num),
        )

    def _usable(self, piece: DownloadPiece) -> bool:
        return piece.piece_num not in self.bad and piece.piece_num not in self.exhausted

    def _failed(self, piece: DownloadPiece, err: BaseException) -> None:
        """A refused order is not the node's fault: fresh orders may be asked for it."""
        if isinstance(err, errors.Forbidden):
            self.exhausted.add(piece.piece_num)
        else:
            self.bad.add(piece.piece_num)

    async def refresh_orders(self) -> bool:
        """New get orders from the coordinator, once re-reads have spent the old allowances."""
        if self._refresh is None or not self.exhausted:
            return False
        fresh = await self._refresh()
        if fresh.root_piece_id != self.segment.root_piece_id:
            raise errors.IntegrityError(f"segment {self.segment.number} changed while being read")
        self.segment = fresh
        self.exhausted.clear()
        self._set_order()
        self.generation += 1
        return True

    async def fetch_verified(self, blocks: range) -> dict[int, bytes]:
        """Piece bytes for ``blocks``, each checked against its Merkle root; slow but sure."""
        start, end = self.layout.piece_range(blocks)
        got: dict[int, bytes] = {}
        for piece in self.order:
            if len(got) >= self.scheme.k:
                break
            if not self._usable(piece):
                continue
            try:
                got[piece.piece_num] = await get_verified_range(
                    self.session,
                    piece,
                    self.segment.root_piece_id,
                    self.layout.piece_size,
                    start,
                    end,
                )
            except errors.SkymeshError as e:
                log.warning(
                    "segment %d piece %d on node %s is bad: %s",
                    self.segment.number,
                    piece.piece_num,
                    piece.node_id,
                    e,
                )
                self._failed(piece, e)
        if len(got) < self.scheme.k:
            raise errors.IntegrityError(
                f"segment {self.segment.number}: fewer than {self.scheme.k} intact pieces"
            )
        return got

    def decode_into(self, blocks: range, pieces: Mapping[int, PieceBytes], out: memoryview) -> None:
        """Plaintext of ``blocks`` from the pieces' bytes for those blocks alone, into
        ``out`` (exactly its size); if it raises, ``out`` holds garbage.

        In the loop's thread, not a worker's: a part's AES and copies take well under
        a millisecond, and handing each part to a thread cost more CPU than that
        (wake-ups, and the GIL passed back and forth at every block the AES released
        it for) while it bought nothing on a machine whose cores are busy anyway.
        """
        decode_blocks_into(self.cipher, self.coder, self.layout, blocks, pieces, out)

    async def renewing(
        self, fetch: Callable[[range], Awaitable[dict[int, bytes]]], blocks: range
    ) -> dict[int, bytes]:
        """``fetch(blocks)``, again with fresh orders when re-reads spent the old ones."""
        for attempt in range(REFRESH_ATTEMPTS + 1):
            try:
                return await fetch(blocks)
            except errors.SkymeshError:
                # re-reads around a lying node can spend the get allowances of honest
                # ones: ask for fresh orders and try again, rather than fail the read
                if attempt < REFRESH_ATTEMPTS and await self.refresh_orders():
                    continue
                raise
        raise AssertionError("unreachable")

    def streams(self, blocks: range, capacity: int) -> RangeStreams:
        """Streams of the pieces' bytes for ``blocks``, to be taken part by part."""
        return RangeStreams(self, blocks, capacity)

    async def read(
        self, start: int, end: int, out: ReusedBuffer | None = None
    ) -> AsyncIterator[memoryview]:
        """Plaintext [start, end) of this segment: one request per node, decoded part by
        part into ``out`` (one of its own if None); each view is valid until the next
        step, and a caller that keeps one makes the next part go to a new buffer."""
        blocks = self.layout.blocks_for(start, end)
        parts = split_parts(blocks)
        if not parts:
            return
        own = out is None
        plain = out if out is not None else ReusedBuffer(self.buffers)
        capacity = max(hi - lo for lo, hi in map(self.layout.piece_range, parts))
        room = max(hi - lo for lo, hi in map(self.layout.plain_range, parts))
        i = 0
        refreshes = 0  # fresh orders asked for the part at hand
        try:
            while i < len(parts):
                streams = self.streams(range(parts[i].start, blocks.stop), capacity)
                try:
                    while i < len(parts):
                        part = parts[i]
                        try:
                            pieces = await streams.take(part)
                        except errors.SkymeshError:
                            # re-reads around a lying node can spend the get allowances of
                            # honest ones: ask for fresh orders and go on from this part
                            if refreshes < REFRESH_ATTEMPTS and await self.refresh_orders():
                                refreshes += 1
                                break
                            raise
                        lo, hi = self.layout.plain_range(part)
                        view = plain.take(hi - lo, room)
                        try:
                            self.decode_into(part, pieces, view)
                        except errors.CodecError:
                            log.warning(
                                "segment %d blocks %d-%d failed to decode;"
                                " re-reading with Merkle checks",
                                self.segment.number,
                                part.start,
                                part.stop - 1,
                            )
                            verified = await self.renewing(self.fetch_verified, part)
                            streams.keep_verified(pieces, verified)
                            self.decode_into(part, verified, view)
                            del verified
                        del pieces
                        refreshes = 0
                        i += 1
                        first, last = max(start, lo) - lo, min(end, hi) - lo
                        if first < last:
                            yield view[first:last]
                        view.release()  # only the caller's view may hold the buffer now
                finally:
                    streams.close()
        finally:
            if own:
                plain.close()


class RangeStreams:
    """One stream per node for a range of a segment's blocks, taken part by part.

    Holds ``k`` streams between parts; a part hedges stragglers with ``extra``
    more streams and replaces a failed one at once, each new stream asking for the
    rest of the range from the part at hand (within what the piece's order allows,
    as the old one asked no more).
    """

    def __init__(self, reader: SegmentReader, blocks: range, capacity: int):
        self.reader = reader
        self.end = reader.layout.piece_range(blocks)[1]
        self.capacity = capacity
        self._queue = list(reader.order)  # pieces not asked yet, the first to ask first
        self.live: list[PieceStream] = []  # the streams that delivered the last part

    def _launch(self, at: int) -> PieceStream | None:
        while self._queue:
            piece = self._queue.pop(0)
            if self.reader._usable(piece):
                return PieceStream(
                    self.reader.session,
                    piece,
                    self.reader.segment.root_piece_id,
                    at,
                    self.end,
                    max(MIN_READ_BUFSIZE, self.capacity // 2),
                )
        return None

    async def take(self, blocks: range) -> dict[int, list[memoryview]]:
        """The next part's bytes from the first k nodes to deliver them, by piece number,
        each as the chunks it came in."""
        reader = self.reader
        k = reader.scheme.k
        start, end = reader.layout.piece_range(blocks)
        size = end - start
        usable = len(self.live) + sum(map(reader._usable, self._queue))
        if usable < k:
            raise errors.Unavailable(
                f"segment {reader.segment.number}: only {usable} of {k} needed pieces reachable"
            )
        running: dict[asyncio.Task[list[memoryview]], PieceStream] = {}

        def launch(stream: PieceStream | None) -> bool:
            if stream is None:
                return False
            running[asyncio.create_task(stream.take(size))] = stream
            return True

        for stream in self.live:
            launch(stream)
        for _ in range(k - len(self.live)):
            launch(self._launch(start))
        self.live = []
        loop = asyncio.get_running_loop()
        began = loop.time()
        first_at: float | None = None  # when the first node delivered the part
        hedged = reader.extra <= 0
        got: list[tuple[PieceStream, list[memoryview]]] = []
        problems: list[str] = []
        try:
            while len(got) < k:
                if not running:
                    raise errors.Unavailable(
                        f"segment {reader.segment.number}: only {len(got)} of {k} pieces"
                        " answered: " + "; ".join(problems[:5])
                    )
                timeout = None
                if not hedged:
                    deadline = began + HEDGE_MAX
                    if first_at is not None:
                        deadline = min(deadline, first_at + max(HEDGE_MIN, first_at - began))
                    timeout = max(0.0, deadline - loop.time())
                done, _ = await asyncio.wait(
                    running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:  # stragglers: ask the extra nodes too
                    hedged = True
                    for _ in range(reader.extra):
                        launch(self._launch(start))
                    continue
                for task in done:
                    stream = running.pop(task)
                    err = task.exception()
                    if err is None:
                        got.append((stream, task.result()))
                        if first_at is None:
                            first_at = loop.time()
                    else:
                        stream.close()
                        reader._failed(stream.piece, err)
                        problems.append(f"{stream.piece.node_id}: {err}")
                        launch(self._launch(start))
        except BaseException:
            for stream, _ in got:
                stream.close()
            raise
        finally:
            for task, stream in running.items():
                task.cancel()
                stream.close()
                self._queue.append(stream.piece)  # slow, not bad: a later part may ask again
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        got.sort(key=lambda sv: sv[0].piece.piece_num)  # data pieces first: the least work
        for stream, _ in got[k:]:
            stream.close()
            self._queue.append(stream.piece)
        self.live = [stream for stream, _ in got[:k]]
        return {stream.piece.piece_num: view for stream, view in got[:k]}

    def keep_verified(
        self, taken: Mapping[int, list[memoryview]], verified: Mapping[int, bytes | memoryview]
    ) -> None:
        """After a part failed to decode: only the streams that sent what the Merkle-checked
        re-read got go on; a stream that sent other bytes is a liar's, and one that was
        not checked is dropped for the rest of the range (it may be the liar)."""
        keep: list[PieceStream] = []
        for stream in self.live:
            n = stream.piece.piece_num
            if n in verified and n in taken and b"".join(taken[n]) == verified[n]:
                keep.append(stream)
                continue
            stream.close()
            if n in verified:
                log.warning(
                    "segment %d piece %d on node %s sent bytes that fail its Merkle root",
                    self.reader.segment.number,
                    n,
                    stream.piece.node_id,
                )
                self.reader._failed(stream.piece, errors.IntegrityError("lied"))
        self.live = keep

    def close(self) -> None:
        for stream in self.live:
            stream.close()
        self.live = []


def split_parts(blocks: range) -> list[range]:
    """``blocks`` cut into the parts decoded one at a time: ``PART_GROWTH`` stripes each,
    the last as many as are left."""
    parts: list[range] = []
    b = blocks.start
    step = 0
    while b < blocks.stop:
        size = PART_GROWTH[min(step, len(PART_GROWTH) - 1)]
        stop = min(blocks.stop, b + size)
        parts.append(range(b, stop))
        b = stop
        step += 1
    return parts


class SegmentSource:
    """Segment metadata of one object version, fetched from the coordinator in batches."""

    def __init__(
        self,
        fetch: Callable[[int | None, int | None], Awaitable[list[SegmentDownload]]],
        first: list[SegmentDownload],
        segment_count: int,
    ):
        self._fetch = fetch
        self.known: dict[int, SegmentDownload] = {s.number: s for s in first}
        self.segment_count = segment_count

    async def holding(self, offset: int) -> int:
        """The number of the segment that holds plaintext byte ``offset``."""
        for s in self.known.values():
            if s.plain_offset <= offset < s.plain_offset + s.plain_size:
                return s.number
        for s in await self._fetch(None, offset):
            self.known[s.number] = s
        for s in self.known.values():
            if s.plain_offset <= offset < s.plain_offset + s.plain_size:
                return s.number
        raise errors.IntegrityError(f"no segment holds byte {offset} of the object")

    async def refetch(self, number: int) -> SegmentDownload:
        """Segment ``number`` again, with fresh orders."""
        for s in await self._fetch(number, None):
            if s.number == number:
                return s
        raise errors.IntegrityError(f"segment {number} is missing from the object")

    async def take(self, number: int) -> SegmentDownload:
        if number not in self.known:
            for s in await self._fetch(number, None):
                self.known[s.number] = s
        seg = self.known.pop(number, None)
        if seg is None:
            raise errors.IntegrityError(f"segment {number} is missing from the object")
        return seg


async def read_object_views(
    session: aiohttp.ClientSession,
    source: SegmentSource,
    data_key: bytes,
    start: int,
    end: int,
    extra: int,
    buffers: BufferPool | None = None,
) -> AsyncGenerator[memoryview, None]:
    """Plaintext [start, end) of an object, segment after segment, as views of one
    reused buffer: each is valid until the next step (see
    :class:`~skymesh.client.buffers.ReusedBuffer`), so a caller that writes it out
    copies nothing more; one that keeps a view only costs a new buffer."""
    if start >= end:
        return
    out = ReusedBuffer(buffers)
    try:
        number = await source.holding(start)
        while number < source.segment_count:
            seg = await source.take(number)
            if seg.plain_offset >= end:
                break
            lo = max(0, start - seg.plain_offset)
            hi = min(seg.plain_size, end - seg.plain_offset)
            if lo < hi:
                if seg.inline_data is not None:
                    key = segment_key(data_key, seg.key_salt)
                    cipher = SegmentCipher(key, seg.position.nonce_segment())
                    yield memoryview(cipher.decrypt_block(0, seg.inline_data))[lo:hi]
                else:
                    reader = SegmentReader(
                        session,
                        seg,
                        data_key,
                        extra,
                        refresh=functools.partial(source.refetch, number),
                        buffers=buffers,
                    )
                    async for view in reader.read(lo, hi, out):
                        yield view
                        del view  # the next part may reuse the buffer
            if seg.plain_offset + seg.plain_size >= end:
                break  # done: asking for the next segment would sign orders for nothing
            number += 1
    finally:
        out.close()


async def as_bytes(views: AsyncGenerator[memoryview, None]) -> AsyncIterator[bytes]:
    """The parts of :func:`read_object_views` as ``bytes`` the caller may keep."""
    try:
        async for view in views:
            chunk = bytes(view)
            view.release()  # the next part may reuse the buffer
            yield chunk
    finally:
        await views.aclose()
