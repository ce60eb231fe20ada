"""Reading an object's bytes back: any range, segment by segment, window by window.

For each window of stripes the reader asks ``k`` nodes for the piece bytes it
needs, data pieces first (decoding them needs no arithmetic), and hedges: once a
straggler has taken twice as long as the first piece to arrive (or ``HEDGE_MAX``
passed with none), ``extra`` more nodes are asked, the first ``k`` answers win
and the rest are cancelled; a node that fails is replaced by another at once.
The extra nodes are asked only then, not up front, because on a healthy network
each of them would cost every window a request and a dropped connection.
AES-GCM then authenticates every block, so a wrong byte from any node can never
reach the caller: on a failed tag the window is fetched again with every piece
checked against its Merkle root, and the liars are left out. Windows grow from
one stripe (a quick first byte) to a few MiB, and the next window is fetched
while the current one is decoded.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp

from skymesh import errors
from skymesh.client.keys import segment_key
from skymesh.client.upload import coder_for, scheme_of
from skymesh.codec.crypto import SegmentCipher
from skymesh.codec.layout import SegmentLayout
from skymesh.codec.segment import decode_blocks
from skymesh.piecetransfer.exchange import get_piece_range, get_verified_range
from skymesh.wire.metainfo import DownloadPiece, SegmentDownload

log = logging.getLogger(__name__)

# Stripes per window: a small first window for the first byte, then 4 MiB ones. Each
# window costs every node it reads one request, so only a tail of at most
# TAIL_JOIN stripes joins the window before it: an 8 MiB range (boto3's part, 129
# stripes) takes 3 windows (4 + 64 + 61). Joining its 61-stripe tail would save the
# nodes a request each (CPU -40 % on GET) but holds 8 MiB of pieces per range where
# 4 did, and boto3 reads 10 ranges at once: the gateway's peak memory went from
# ~270 to ~300 MiB, its bound (docs/benchmarks.md, "Piece transfer on the nodes").
WINDOW_GROWTH = (4, 64)
TAIL_JOIN = 8
HEDGE_MIN = 0.02  # s: a straggler gets at least this long past the first piece
HEDGE_MAX = 1.0  # s: with no piece at all by then, ask the extra nodes anyway
SEGMENTS_PER_CALL = 8
# Segments in the call that opens an object: each comes with a signed order per piece,
# all signed before the first byte can flow; the rest follow in batches.
FIRST_CALL_SEGMENTS = 2
REFRESH_ATTEMPTS = 2  # fresh get orders per window, after allowances run out


class SegmentReader:
    """Reads plaintext ranges of one piece-backed segment."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        segment: SegmentDownload,
        data_key: bytes,
        extra: int,
        refresh: Callable[[], Awaitable[SegmentDownload]] | None = None,
    ):
        assert segment.scheme is not None
        self.session = session
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

    async def fetch(self, blocks: range) -> dict[int, bytes]:
        """Piece bytes for ``blocks`` from the first k nodes to answer."""
        start, end = self.layout.piece_range(blocks)
        k = self.scheme.k
        candidates = [p for p in self.order if self._usable(p)]
        if len(candidates) < k:
            raise errors.Unavailable(
                f"segment {self.segment.number}: only {len(candidates)} of {k} needed pieces reachable"
            )
        queue = iter(candidates)
        running: dict[asyncio.Task[bytes], DownloadPiece] = {}

        def launch() -> bool:
            piece = next(queue, None)
            if piece is None:
                return False
            task = asyncio.create_task(
                get_piece_range(self.session, piece, self.segment.root_piece_id, start, end)
            )
            running[task] = piece
            return True

        for _ in range(k):
            launch()
        loop = asyncio.get_running_loop()
        began = loop.time()
        first_at: float | None = None  # when the first piece arrived
        hedged = self.extra <= 0
        got: dict[int, bytes] = {}
        problems: list[str] = []
        try:
            while len(got) < k:
                if not running:
                    raise errors.Unavailable(
                        f"segment {self.segment.number}: only {len(got)} of {k} pieces answered: "
                        + "; ".join(problems[:5])
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
                    for _ in range(self.extra):
                        launch()
                    continue
                for task in done:
                    piece = running.pop(task)
                    err = task.exception()
                    if err is None:
                        got[piece.piece_num] = task.result()
                        if first_at is None:
                            first_at = loop.time()
                    else:
                        self._failed(piece, err)
                        problems.append(f"{piece.node_id}: {err}")
                        launch()
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        return dict(sorted(got.items())[:k])

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

    async def decode(self, blocks: range, pieces: Mapping[int, bytes | memoryview]) -> bytes:
        """Plaintext of ``blocks`` from the pieces' bytes for those blocks alone."""
        return await asyncio.to_thread(
            decode_blocks, self.cipher, self.coder, self.layout, blocks, pieces
        )

    async def plaintext(self, blocks: range, pieces: dict[int, bytes]) -> AsyncIterator[bytes]:
        """Plaintext of window ``blocks`` from its pieces, in parts of at most
        ``WINDOW_GROWTH[-1]`` stripes, each decoded when the one before it is taken.

        A part stays under the allocator's mmap threshold (``tuning.py``), where a
        joined window of 125 stripes came from fresh pages; and only one part is
        held beside the pieces. A part that fails to decode (a lying node) has the
        window re-read with every piece checked against its Merkle root.
        """
        first = self.layout.piece_offset(blocks.start)
        verified = False
        step = WINDOW_GROWTH[-1]
        for b in range(blocks.start, blocks.stop, step):
            part = range(b, min(blocks.stop, b + step))
            lo, hi = (x - first for x in self.layout.piece_range(part))
            try:
                plain = await self.decode(part, {n: p[lo:hi] for n, p in _views(pieces)})
            except errors.CodecError:
                if verified:
                    raise
                log.warning(
                    "segment %d blocks %d-%d failed to decode; re-reading with Merkle checks",
                    self.segment.number,
                    blocks.start,
                    blocks.stop - 1,
                )
                pieces = await self.renewing(self.fetch_verified, blocks)
                verified = True
                plain = await self.decode(part, {n: p[lo:hi] for n, p in _views(pieces)})
            yield plain

    async def window(self, blocks: range) -> dict[int, bytes]:
        """The pieces' bytes for window ``blocks`` (orders renewed as needed)."""
        return await self.renewing(self.fetch, blocks)

    async def renewing(
        self, fetch: Callable[[range], Awaitable[dict[int, bytes]]], blocks: range
    ) -> dict[int, bytes]:
        """``fetch(blocks)``, again with fresh orders when re-reads spent the old ones."""
        for attempt in range(REFRESH_ATTEMPTS + 1):
            generation = self.generation
            try:
                return await fetch(blocks)
            except errors.SkymeshError:
                # re-reads around a lying node can spend the get allowances of honest
                # ones: ask for fresh orders and try again, rather than fail the read
                # (the window fetched beside this one may have renewed them already)
                if attempt < REFRESH_ATTEMPTS and (
                    self.generation != generation or await self.refresh_orders()
                ):
                    continue
                raise
        raise AssertionError("unreachable")

    async def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Plaintext [start, end) of this segment, in windows, fetching one window ahead."""
        windows = split_windows(self.layout.blocks_for(start, end))
        if not windows:
            return
        nxt: asyncio.Task[dict[int, bytes]] | None = asyncio.create_task(self.window(windows[0]))
        try:
            for i, w in enumerate(windows):
                assert nxt is not None
                pieces = await nxt
                nxt = (
                    asyncio.create_task(self.window(windows[i + 1]))
                    if i + 1 < len(windows)
                    else None
                )
                pos = w.start * self.layout.block_size
                async for plain in self.plaintext(w, pieces):
                    lo = max(start, pos) - pos
                    hi = min(end, pos + len(plain)) - pos
                    pos += len(plain)
                    if lo < hi:
                        yield plain[lo:hi] if (lo, hi) != (0, len(plain)) else plain
                del pieces
        finally:
            if nxt is not None:
                nxt.cancel()
                await asyncio.gather(nxt, return_exceptions=True)


def _views(pieces: dict[int, bytes]) -> list[tuple[int, memoryview]]:
    return [(n, memoryview(p)) for n, p in pieces.items()]


def split_windows(blocks: range) -> list[range]:
    """``blocks`` cut into windows of ``WINDOW_GROWTH`` stripes; a tail of at most
    ``TAIL_JOIN`` stripes joins the window before it."""
    windows: list[range] = []
    b = blocks.start
    step = 0
    while b < blocks.stop:
        size = WINDOW_GROWTH[min(step, len(WINDOW_GROWTH) - 1)]
        stop = b + size if blocks.stop - b > size + TAIL_JOIN else blocks.stop
        windows.append(range(b, stop))
        b = stop
        step += 1
    return windows


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


async def read_object_range(
    session: aiohttp.ClientSession,
    source: SegmentSource,
    data_key: bytes,
    start: int,
    end: int,
    extra: int,
) -> AsyncIterator[bytes]:
    """Plaintext [start, end) of an object, segment after segment."""
    if start >= end:
        return
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
                plain = cipher.decrypt_block(0, seg.inline_data)
                yield plain[lo:hi]
            else:
                reader = SegmentReader(
                    session, seg, data_key, extra, refresh=functools.partial(source.refetch, number)
                )
                async for chunk in reader.read(lo, hi):
                    yield chunk
        if seg.plain_offset + seg.plain_size >= end:
            break  # done: asking for the next segment would sign orders for nothing
        number += 1
