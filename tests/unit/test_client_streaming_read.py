"""A segment reader on fake nodes: one request per node per range, taken as it streams.

The nodes serve real pieces of one encrypted, erasure-coded segment in 64 KiB
writes; some of them lie, stall or hang up part-way through their answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from skymesh.client.buffers import BufferPool, ReusedBuffer
from skymesh.client.download import PART_GROWTH, SegmentReader
from skymesh.client.keys import segment_key
from skymesh.client.upload import coder_for
from skymesh.codec.crypto import SegmentCipher, new_data_key
from skymesh.codec.layout import DEFAULT_BLOCK_SIZE, SegmentLayout
from skymesh.codec.merkle import DEFAULT_CHUNK_SIZE, chunk_hashes, merkle_root
from skymesh.codec.scheme import RedundancyScheme
from skymesh.codec.segment import encode_blocks
from skymesh.wire.metainfo import DownloadPiece, Scheme, SegmentDownload, SegmentPosition
from skymesh.wire.node import PieceHashes
from skymesh.wire.pieces import new_root_piece_id
from skymesh.wire.signing import Signed

ROOT = new_root_piece_id()
SALT = b"s" * 16
SCHEME = RedundancyScheme(k=2, repair=3, optimal=4, total=4)
WRITE = 64 * 1024  # what a fake node writes at a time


class FakeNodes:
    """Node ``n`` at ``/<n>/v1/pieces/{id}`` serves piece ``n``; from byte ``lie_from[n]``
    on it sends zeros, at ``stall_at[n]`` it stops sending, at ``cut_at[n]`` it hangs up."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.lie_from: dict[int, int] = {}
        self.stall_at: dict[int, int] = {}
        self.cut_at: dict[int, int] = {}
        self.gets: Counter[int] = Counter()
        self.hashes: Counter[int] = Counter()
        self.app = web.Application()
        self.app.router.add_get("/{n}/v1/pieces/{piece_id}", self._get)
        self.app.router.add_get("/{n}/v1/pieces/{piece_id}/hashes", self._hashes)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        self.gets[n] += 1
        data = self.pieces[n]
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers["Range"])
        assert m is not None
        start, end = int(m.group(1)), int(m.group(2)) + 1
        resp = web.StreamResponse(status=206)
        resp.content_length = end - start
        await resp.prepare(request)
        for pos in range(start, end, WRITE):
            if pos >= self.stall_at.get(n, end):
                await asyncio.sleep(3600)
            if pos >= self.cut_at.get(n, end):
                assert request.transport is not None
                request.transport.close()
                return resp
            chunk = data[pos : min(end, pos + WRITE)]
            if pos >= self.lie_from.get(n, end):
                chunk = bytes(len(chunk))
            await resp.write(chunk)
        return resp

    async def _hashes(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        self.hashes[n] += 1
        data = self.pieces[n]
        body = PieceHashes(
            piece_id=request.match_info["piece_id"],
            size=len(data),
            chunk_size=DEFAULT_CHUNK_SIZE,
            leaves=chunk_hashes(data, DEFAULT_CHUNK_SIZE),
        )
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")


class Segment:
    def __init__(self, stripes: int) -> None:
        self.plain = hashlib.shake_256(b"streaming read").digest(stripes * DEFAULT_BLOCK_SIZE - 99)
        self.key = new_data_key()
        layout = SegmentLayout(len(self.plain), DEFAULT_BLOCK_SIZE, SCHEME)
        cipher = SegmentCipher(segment_key(self.key, SALT), SegmentPosition().nonce_segment())
        self.pieces = [
            bytes(p) for p in encode_blocks(cipher, coder_for(SCHEME), layout, 0, self.plain)
        ]

    def download(self, url: str) -> SegmentDownload:
        return SegmentDownload(
            number=0,
            position=SegmentPosition(),
            plain_offset=0,
            plain_size=len(self.plain),
            block_size=DEFAULT_BLOCK_SIZE,
            root_piece_id=ROOT,
            scheme=Scheme(
                k=SCHEME.k, repair=SCHEME.repair, optimal=SCHEME.optimal, total=SCHEME.total
            ),
            piece_size=len(self.pieces[0]),
            pieces=[
                DownloadPiece(
                    piece_num=n,
                    node_id=f"node-{n}",
                    address=f"{url}/{n}",
                    region="r",
                    merkle_root=merkle_root(chunk_hashes(piece, DEFAULT_CHUNK_SIZE)),
                    order=Signed(body=b"", signer=b"", signature=b""),
                )
                for n, piece in enumerate(self.pieces)
            ],
            key_salt=SALT,
        )


async def _nodes(segment: Segment) -> AsyncIterator[tuple[FakeNodes, SegmentReader]]:
    fake = FakeNodes(segment.pieces)
    server = TestServer(fake.app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            url = str(server.make_url("")).rstrip("/")
            yield fake, SegmentReader(session, segment.download(url), segment.key, extra=2)
    finally:
        await server.close()


SMALL = Segment(3 * PART_GROWTH[-1])  # a range of several parts


@pytest.fixture
async def small() -> AsyncIterator[tuple[FakeNodes, SegmentReader]]:
    async for pair in _nodes(SMALL):
        yield pair


async def _read(reader: SegmentReader, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in reader.read(start, end)])


async def test_a_healthy_range_is_one_request_to_each_of_k_nodes(
    small: tuple[FakeNodes, SegmentReader],
) -> None:
    fake, reader = small
    start, end = 1000, len(SMALL.plain) - 5000  # mid-stripe at both ends
    assert await _read(reader, start, end) == SMALL.plain[start:end]
    assert fake.gets == {0: 1, 1: 1}  # the data pieces, once each, for every part


# Piece 0 misbehaves once the first part and some of the second have gone out: the
# reader has taken its answer as it came, and must not let a wrong byte through.
MID = 200_000


@pytest.mark.parametrize("fault", ["lie", "stall", "cut"])
async def test_a_node_that_fails_mid_stream_is_replaced(
    small: tuple[FakeNodes, SegmentReader], fault: str
) -> None:
    fake, reader = small
    {"lie": fake.lie_from, "stall": fake.stall_at, "cut": fake.cut_at}[fault][0] = MID
    started = time.monotonic()
    assert await _read(reader, 0, len(SMALL.plain)) == SMALL.plain
    assert time.monotonic() - started < 5  # a stall is hedged, not waited out
    if fault == "lie":
        # caught by the Merkle-checked re-read of its part (one more request to each
        # node it asks); piece 1's stream went on, piece 0's was replaced
        assert 0 in reader.bad and fake.hashes[0] == 1
        assert fake.gets == {0: 2, 1: 2, 2: 2}  # piece 2: the re-read, then the stream
    else:
        # a hang-up is replaced by one parity piece, a stall hedged with both
        assert fake.gets[0] == 1 and fake.gets[1] == 1  # no re-reads
        assert fake.gets[2] + fake.gets[3] == (2 if fault == "stall" else 1)
        assert (0 in reader.bad) == (fault == "cut")  # a slow node is not a bad one


async def test_the_reader_holds_a_few_parts_whatever_the_range() -> None:
    """Python's allocations during a 20 MiB read stay within a few parts' worth: the
    nodes' answers are taken as they stream, never read whole (25 MB of pieces here)."""
    segment = Segment(320)
    async for fake, reader in _nodes(segment):
        part = PART_GROWTH[-1] * DEFAULT_BLOCK_SIZE  # plaintext of one part
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            got = hashlib.sha256()
            size = 0
            async for chunk in reader.read(0, len(segment.plain)):
                got.update(chunk)
                size += len(chunk)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert size == len(segment.plain)
        assert got.digest() == hashlib.sha256(segment.plain).digest()
        assert fake.gets == {0: 1, 1: 1}
        print(f"peak {peak / 2**20:.1f} MiB over a read of {size / 2**20:.1f} MiB")
        # a part of pieces (the connections' own chunks), about one more in their
        # connections, the plaintext buffer, a second one while the caller holds its
        # last chunk, and the fake nodes' own buffers: 8.0 MiB, ~4 parts (copying the
        # pieces into a buffer per node and joining decoded blocks took ~6; the reader
        # of 4 + 64-stripe windows before it, fetching one ahead, peaked at 8)
        assert peak < 6 * part


async def test_parts_reuse_one_buffer_unless_a_view_of_it_is_kept(
    small: tuple[FakeNodes, SegmentReader],
) -> None:
    """Every part is decoded into the same buffer while each view is dropped before the
    next is asked for; a caller (or a transport) that keeps views keeps their bytes:
    the next part goes to a new buffer, never over bytes still held."""
    _, reader = small
    pool = BufferPool()
    out = ReusedBuffer(pool)
    parts = reader.read(0, len(SMALL.plain), out)
    got = bytearray()
    while (view := await anext(parts, None)) is not None:
        got += view
        del view  # as the gateway's GET does once the view is written out
    assert got == SMALL.plain and out.replaced == 0
    out.close()
    assert pool.held > 0  # back for the next read

    out = ReusedBuffer(pool)
    kept = [view async for view in reader.read(0, len(SMALL.plain), out)]
    out.close()
    assert b"".join(kept) == SMALL.plain  # no view was written over
    assert out.replaced == len(kept) - 1
