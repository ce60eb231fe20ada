"""The one segment writer behind put_object and upload_part, with nodes faked at store_segment."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import cast

import aiohttp
import pytest

from skymesh.client import writer as writer_module
from skymesh.client.buffers import MIN_POOLED, BufferPool
from skymesh.client.upload import SegmentUploadError
from skymesh.client.writer import SegmentWriter
from skymesh.codec.crypto import SegmentCipher, new_data_key
from skymesh.wire.metainfo import CodecParams, Placement, Scheme, SegmentCommit, SegmentPosition
from tests.conftest import random_bytes

SEGMENT = 64 * 1024
INLINE = 4096
CODEC = CodecParams(max_segment_size=SEGMENT, inline_threshold=INLINE, block_size=16 * 1024)
KEY = new_data_key()
# The writer hands its session only to store_segment, which these tests fake.
NO_SESSION = cast(aiohttp.ClientSession, None)


class FakeNodes:
    """Stands in for ``store_segment``: keeps each segment's plaintext by position."""

    def __init__(self) -> None:
        self.stored: dict[tuple[int, int], bytes] = {}
        self.fail_first: list[str] = []  # nodes the first attempt of each segment loses
        self.attempts: dict[tuple[int, int], int] = {}
        self.gate: asyncio.Event | None = None  # when set: a store waits for it

    async def store(
        self,
        session: aiohttp.ClientSession,
        placement: Placement,
        position: SegmentPosition,
        plaintext: memoryview,
        data_key: bytes,
        block_size: int,
        key_salt: bytes = b"",
    ) -> SegmentCommit:
        at = (position.part, position.index)
        self.attempts[at] = self.attempts.get(at, 0) + 1
        if self.fail_first and self.attempts[at] == 1:
            raise SegmentUploadError("too few receipts", list(self.fail_first))
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), 5)
        self.stored[at] = bytes(plaintext)
        return SegmentCommit(
            position=position,
            plain_size=len(plaintext),
            block_size=block_size,
            root_piece_id=placement.root_piece_id,
            key_salt=key_salt,
        )


class Placer:
    """A ``Place`` that records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[SegmentPosition, int, list[str]]] = []

    async def __call__(
        self, position: SegmentPosition, plain_size: int, exclude: list[str]
    ) -> Placement:
        self.asked.append((position, plain_size, list(exclude)))
        return Placement(
            root_piece_id=f"{len(self.asked):064x}",
            scheme=Scheme(k=1, repair=1, optimal=1, total=2),
            max_piece_size=SEGMENT,
            pieces=[],
        )


@pytest.fixture
def nodes(monkeypatch: pytest.MonkeyPatch) -> FakeNodes:
    fake = FakeNodes()
    monkeypatch.setattr(writer_module, "store_segment", fake.store)
    return fake


async def chunks(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def make(
    data: bytes, *, size: int | None = None, part: int = 0, key_salt: bytes = b""
) -> SegmentWriter:
    return SegmentWriter(
        NO_SESSION, BufferPool(), CODEC, chunks(data), KEY, key_salt=key_salt, part=part, size=size
    )


def plaintext(nodes: FakeNodes, segments: list[SegmentCommit], part: int = 0) -> bytes:
    out = b""
    for seg in sorted(segments, key=lambda s: s.position.index):
        pos = seg.position
        if seg.inline_data is not None:
            cipher = SegmentCipher(KEY, pos.nonce_segment())
            out += cipher.decrypt_block(0, seg.inline_data)
        else:
            out += nodes.stored[(part, pos.index)]
    return out


async def test_a_body_within_the_inline_threshold_is_one_inline_segment(nodes: FakeNodes) -> None:
    place = Placer()
    for data in (b"", b"x" * INLINE):
        w = make(data, size=len(data))
        segments = await w.write(place)
        assert [s.inline_data is not None for s in segments] == [True]
        assert plaintext(nodes, segments) == data
        assert (w.total, w.md5.hexdigest()) == (len(data), hashlib.md5(data).hexdigest())
    assert place.asked == []  # no node, no placement


@pytest.mark.parametrize("size_known", [True, False])
async def test_segments_go_to_nodes_and_a_short_last_one_inline(
    nodes: FakeNodes, size_known: bool
) -> None:
    data = random_bytes(3 * SEGMENT + 100)
    place = Placer()
    committed: list[SegmentCommit] = []

    async def commit(seg: SegmentCommit) -> None:
        committed.append(seg)

    w = make(data, size=len(data) if size_known else None)
    last = await w.write(place, commit_earlier=commit)
    assert [s.position.index for s in committed] == [0, 1, 2]
    assert [s.position.index for s in last] == [3]
    assert last[0].inline_data is not None  # 100 bytes: in the metadata
    assert [(p.index, n) for p, n, _ in place.asked] == [(0, SEGMENT), (1, SEGMENT), (2, SEGMENT)]
    assert plaintext(nodes, committed + last) == data
    assert w.md5.hexdigest() == hashlib.md5(data).hexdigest()


async def test_a_part_keeps_every_segment_with_its_position_and_salt(nodes: FakeNodes) -> None:
    data = random_bytes(2 * SEGMENT)
    w = make(data, size=len(data), part=7, key_salt=b"s" * 16)
    segments = await w.write(Placer())
    assert [(s.position.part, s.position.index) for s in segments] == [(7, 0), (7, 1)]
    assert {s.key_salt for s in segments} == {b"s" * 16}
    assert plaintext(nodes, segments, part=7) == data


async def test_the_next_segment_is_read_while_one_is_stored(nodes: FakeNodes) -> None:
    data = random_bytes(2 * SEGMENT)
    pulled = 0
    nodes.gate = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        nonlocal pulled
        async for chunk in chunks(data):
            pulled += len(chunk)
            if pulled == len(data):
                assert nodes.gate is not None
                nodes.gate.set()  # stores wait until the whole body was read
            yield chunk

    w = SegmentWriter(NO_SESSION, BufferPool(), CODEC, source(), KEY, size=len(data))
    segments = await w.write(Placer())
    assert plaintext(nodes, segments) == data


async def test_a_wrong_size_loses_nothing(nodes: FakeNodes) -> None:
    data = random_bytes(3 * SEGMENT)
    w = make(data, size=SEGMENT + 10)
    segments = await w.write(Placer())
    assert plaintext(nodes, segments) == data
    # past the declared size, segments are full ones again, not one byte each
    assert len(segments) <= 5


async def test_a_failed_attempt_asks_again_without_the_nodes_that_failed(
    nodes: FakeNodes,
) -> None:
    nodes.fail_first = ["n1", "n2"]
    place = Placer()
    segments = await make(random_bytes(SEGMENT), size=SEGMENT).write(place)
    assert [exclude for _, _, exclude in place.asked] == [[], ["n1", "n2"]]
    assert len(segments) == 1


async def test_buffers_go_back_for_reuse_when_the_write_succeeds(nodes: FakeNodes) -> None:
    big = MIN_POOLED  # smaller buffers are not pooled
    codec = CodecParams(max_segment_size=big, inline_threshold=INLINE, block_size=16 * 1024)
    pool = BufferPool()
    data = random_bytes(2 * big)
    w = SegmentWriter(NO_SESSION, pool, codec, chunks(data), KEY, size=len(data))
    await w.write(Placer())
    assert pool.lent == 0 and pool.held == 2 * big


async def test_a_failed_write_returns_its_budget_but_not_its_buffers(nodes: FakeNodes) -> None:
    big = MIN_POOLED
    codec = CodecParams(max_segment_size=big, inline_threshold=INLINE, block_size=16 * 1024)
    pool = BufferPool(budget=4 * big)

    async def fail(*_: object) -> Placement:
        raise SegmentUploadError("no nodes", ["n1"])

    w = SegmentWriter(NO_SESSION, pool, codec, chunks(random_bytes(3 * big)), KEY)
    with pytest.raises(SegmentUploadError):
        await w.write(fail)
    assert pool.lent == 0 and pool.held == 0


async def test_without_budget_for_read_ahead_segments_are_read_one_after_another(
    nodes: FakeNodes,
) -> None:
    big = MIN_POOLED
    codec = CodecParams(max_segment_size=big, inline_threshold=INLINE, block_size=16 * 1024)
    pool = BufferPool(budget=big, wait=0.1)  # room for one segment buffer only
    data = random_bytes(3 * big + 100)
    w = SegmentWriter(NO_SESSION, pool, codec, chunks(data), KEY, size=len(data))
    segments = await w.write(Placer())
    assert plaintext(nodes, segments) == data
    assert pool.lent == 0 and pool.refused == 0


async def test_a_body_that_sends_nothing_holds_no_buffer(nodes: FakeNodes) -> None:
    pool = BufferPool(budget=4 * SEGMENT)
    started = asyncio.Event()

    async def silent() -> AsyncIterator[bytes]:
        started.set()
        await asyncio.sleep(3600)
        yield b""

    w = SegmentWriter(NO_SESSION, pool, CODEC, silent(), KEY, size=SEGMENT)
    task = asyncio.create_task(w.write(Placer()))
    await started.wait()
    await asyncio.sleep(0.01)
    assert pool.lent == 0  # declared a full segment, sent nothing: nothing lent yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
