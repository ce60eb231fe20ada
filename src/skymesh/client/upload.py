"""Storing one segment on nodes: encrypt, erasure-code and stream pieces in parallel.

The segment's plaintext is already in memory (one segment, bounded by the
segment size). Stripes are encoded in batches in the event loop's thread, each
queued to every node, whose transfers stream at once. Each node's stream has a
small queue; when a node falls behind while at least ``optimal``
others keep up, it is cut off (the long tail). Once ``optimal`` receipts are in
(and the stored set would survive the loss of any one region), the rest are
cancelled.

A node that stops answering (hung, yet still listed online) is never cut by the
long tail where ``optimal == total`` (networks under 14 nodes), so each piece
upload also fails on its own after ``STALL_TIMEOUT`` seconds without progress;
the segment is then retried on other nodes, without it, instead of waiting out
the session's 60 s read timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

from skymesh import errors
from skymesh.codec.crypto import SegmentCipher
from skymesh.codec.erasure import ErasureCoder
from skymesh.codec.layout import SegmentLayout
from skymesh.codec.merkle import DEFAULT_CHUNK_SIZE, MerkleBuilder
from skymesh.codec.scheme import RedundancyScheme
from skymesh.codec.segment import encode_blocks
from skymesh.piecetransfer.exchange import put_piece
from skymesh.piecetransfer.receipts import check_receipt
from skymesh.wire.metainfo import (
    AddressedOrder,
    CommittedPiece,
    Placement,
    Scheme,
    SegmentCommit,
    SegmentPosition,
)
from skymesh.wire.pieces import derive_piece_id
from skymesh.wire.signing import Signed

log = logging.getLogger(__name__)

# Stripes encoded per call (~2 MiB of plaintext, ~2 ms), in the loop's thread: on a
# worker thread each batch cost a wake-up and the GIL passed back and forth at every
# AES block, ISA-L call and BLAKE3 update, ~5 % more of the gateway's PUT CPU on two
# busy cores (docs/benchmarks.md, "Gateway GET without copies").
BATCH_BLOCKS = 32
QUEUE_BATCHES = 8  # batches buffered per node before it counts as behind
# Seconds a node may hold its piece upload without taking a chunk we have ready (or,
# once the body is sent, without answering): long enough for a slow honest link to
# take one ~200 KB chunk, far shorter than the 60 s socket read timeout.
STALL_TIMEOUT = 5.0

_coders: dict[tuple[int, int, int, int], ErasureCoder] = {}


def scheme_of(s: Scheme) -> RedundancyScheme:
    return RedundancyScheme(k=s.k, repair=s.repair, optimal=s.optimal, total=s.total)


def coder_for(scheme: RedundancyScheme) -> ErasureCoder:
    """One coder per scheme: building one costs far more than a stripe."""
    key = (scheme.k, scheme.repair, scheme.optimal, scheme.total)
    coder = _coders.get(key)
    if coder is None:
        coder = _coders[key] = ErasureCoder(scheme)
    return coder


Chunk = bytes | bytearray


@dataclass(eq=False)
class _Sender:
    target: AddressedOrder
    queue: asyncio.Queue[Chunk | None]
    task: asyncio.Task[Signed] | None = None
    merkle: MerkleBuilder = field(default_factory=lambda: MerkleBuilder(DEFAULT_CHUNK_SIZE))
    dropped: bool = False
    progress: float = 0.0  # loop time the node last took a chunk (or its transfer began)
    idle: bool = False  # the node waits for us (empty queue): no stall of its own

    @property
    def alive(self) -> bool:
        return not self.dropped and self.task is not None and not self.task.done()


async def _drain(s: _Sender) -> AsyncIterator[memoryview]:
    loop = asyncio.get_running_loop()
    while True:
        s.idle = s.queue.empty()
        item = await s.queue.get()
        s.idle = False
        s.progress = loop.time()
        if item is None:
            return
        # a view: aiohttp slices every chunk to the declared length, and slicing
        # a bytearray would copy it
        yield memoryview(item)


async def _send(
    session: aiohttp.ClientSession,
    s: _Sender,
    root_piece_id: str,
    size: int,
    stall_timeout: float,
) -> Signed:
    """``put_piece`` that fails once the node makes no progress for ``stall_timeout`` s.

    Only time the node holds us up counts: not while it waits for chunks we have yet
    to encode.
    """
    loop = asyncio.get_running_loop()
    s.progress = loop.time()
    put = asyncio.ensure_future(put_piece(session, s.target, root_piece_id, _drain(s), size))
    try:
        while True:
            left = stall_timeout if s.idle else s.progress + stall_timeout - loop.time()
            done, _ = await asyncio.wait({put}, timeout=max(left, 0.01))
            if done:
                return put.result()
            if not s.idle and loop.time() - s.progress >= stall_timeout:
                raise errors.Unavailable(
                    f"node {s.target.node_id} made no progress for {stall_timeout:g} s"
                )
    finally:
        if not put.done():
            put.cancel()
            await asyncio.gather(put, return_exceptions=True)


def region_safe(regions: list[str], k: int) -> bool:
    """True when losing any one region still leaves ``k`` of these pieces."""
    return all(len(regions) - c >= k for c in Counter(regions).values())


def placement_spread(regions: list[str]) -> bool:
    """Whether a placement spans enough regions (three) to promise region safety."""
    return len(set(regions)) >= 3


class SegmentUploadError(errors.Unavailable):
    """Fewer than ``optimal`` nodes stored their piece."""

    def __init__(self, message: str, failed_nodes: list[str]):
        super().__init__(message)
        self.failed_nodes = failed_nodes


async def store_segment(
    session: aiohttp.ClientSession,
    placement: Placement,
    position: SegmentPosition,
    plaintext: memoryview,
    data_key: bytes,
    block_size: int,
    key_salt: bytes = b"",
    stall_timeout: float = STALL_TIMEOUT,
) -> SegmentCommit:
    """Encrypt, erasure-code and send one segment; answers its commit once enough nodes
    signed for their piece. ``key_salt`` is recorded with it (a part's key)."""
    scheme = scheme_of(placement.scheme)
    layout = SegmentLayout(len(plaintext), block_size, scheme)
    if layout.piece_size > placement.max_piece_size:
        raise errors.BadRequest("segment larger than its placement allows")
    cipher = SegmentCipher(data_key, position.nonce_segment())
    coder = coder_for(scheme)
    senders = [_Sender(t, asyncio.Queue(QUEUE_BATCHES)) for t in placement.pieces]
    for s in senders:
        s.task = asyncio.create_task(
            _send(session, s, placement.root_piece_id, layout.piece_size, stall_timeout)
        )

    def encode(first: int) -> list[bytearray]:
        start = first * block_size
        end = min(len(plaintext), (first + BATCH_BLOCKS) * block_size)
        frags = encode_blocks(cipher, coder, layout, first, plaintext[start:end])
        for s, frag in zip(senders, frags, strict=True):
            if not s.dropped:
                s.merkle.update(frag)
        return frags

    try:
        for first in range(0, layout.block_count, BATCH_BLOCKS):
            await _distribute(senders, encode(first), scheme.optimal)
            await asyncio.sleep(0)  # the transfers (and other requests) run between batches
        for s in senders:
            if s.alive:
                await _put(s, None)
        return await _collect(senders, placement, position, layout, block_size, scheme, key_salt)
    finally:
        for s in senders:
            if s.task is not None and not s.task.done():
                s.task.cancel()
        await asyncio.gather(
            *(s.task for s in senders if s.task is not None), return_exceptions=True
        )


async def _put(s: _Sender, item: Chunk | None) -> None:
    """Queue ``item`` for one node, giving up if its transfer has ended."""
    if s.queue.full():
        assert s.task is not None
        putter = asyncio.create_task(s.queue.put(item))
        done, _ = await asyncio.wait({putter, s.task}, return_when=asyncio.FIRST_COMPLETED)
        if putter not in done:
            putter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await putter
    else:
        s.queue.put_nowait(item)


async def _distribute(senders: list[_Sender], frags: list[bytearray], optimal: int) -> None:
    live = [s for s in senders if s.alive]
    behind = [s for s in live if s.queue.full()]
    keeping_up = len(live) - len(behind)
    for s in live:
        if s in behind and keeping_up >= optimal:
            # the long tail: enough nodes keep pace without this one
            s.dropped = True
            assert s.task is not None
            s.task.cancel()
            log.debug("cut slow node %s from the upload", s.target.node_id)
            continue
        await _put(s, frags[s.target.piece_num])


async def _collect(
    senders: list[_Sender],
    placement: Placement,
    position: SegmentPosition,
    layout: SegmentLayout,
    block_size: int,
    scheme: RedundancyScheme,
    key_salt: bytes,
) -> SegmentCommit:
    all_regions = [p.region for p in placement.pieces]
    # hold out for a region-safe stored set only where the whole placement is one
    placement_safe = placement_spread(all_regions) and region_safe(all_regions, scheme.k)
    by_task = {s.task: s for s in senders if s.task is not None and not s.dropped}
    stored: list[tuple[_Sender, CommittedPiece]] = []
    failures: list[str] = []
    failed_nodes: list[str] = [s.target.node_id for s in senders if s.dropped]
    waiting = set(by_task)
    while waiting:
        if len(stored) >= scheme.optimal and (
            not placement_safe or region_safe([s.target.region for s, _ in stored], scheme.k)
        ):
            break
        done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            s = by_task[task]
            err = task.exception()
            if err is not None:
                failures.append(f"{s.target.node_id}: {err}")
                failed_nodes.append(s.target.node_id)
                continue
            receipt = task.result()
            try:
                check_receipt(
                    receipt,
                    node_id=s.target.node_id,
                    piece_id=derive_piece_id(placement.root_piece_id, s.target.piece_num),
                    size=layout.piece_size,
                    merkle_root=s.merkle.finish()[0],
                )
            except errors.SkymeshError as e:
                failures.append(f"{s.target.node_id}: {e}")
                failed_nodes.append(s.target.node_id)
                continue
            committed = CommittedPiece(
                piece_num=s.target.piece_num, node_id=s.target.node_id, receipt=receipt
            )
            stored.append((s, committed))
    if len(stored) < scheme.optimal:
        raise SegmentUploadError(
            f"only {len(stored)} of {scheme.optimal} needed pieces stored; "
            + "; ".join(failures[:5]),
            failed_nodes,
        )
    pieces = sorted((cp for _, cp in stored), key=lambda cp: cp.piece_num)
    return SegmentCommit(
        position=position,
        plain_size=layout.plain_size,
        block_size=block_size,
        root_piece_id=placement.root_piece_id,
        scheme=placement.scheme,
        piece_size=layout.piece_size,
        pieces=pieces,
        key_salt=key_salt,
    )
