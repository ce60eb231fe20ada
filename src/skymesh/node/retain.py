"""Reconciliation: delete pieces the coordinator no longer references.

Some pieces are recorded nowhere: the slow uploads the long tail cut off after
they had stored, attempts that failed, uploads that never committed. The
coordinator cannot send delete orders for what it does not know, so now and then
it sends each node a Bloom filter of every piece it references there
(:class:`~skymesh.wire.durability.RetainFilter`, ``POST /v1/retain``). The node
deletes a piece when the filter does not contain it **and** it was stored before
the filter's ``stored_before``; pieces of uploads in flight are younger than
that and survive. A member is never missing from a Bloom filter, so a referenced
piece is never deleted; about 1% of the garbage survives each round.

A filter is large (about 1.2 bytes a piece), so nothing of it is read before
the signed :class:`~skymesh.wire.durability.RetainOrder` in the order header
says a trusted coordinator sent it, for this node, recently, and of a size this
node's filter can need (:func:`max_filter_body`); one body is read at a time,
and only its ``size`` bytes, checked against the order's digest.

The route only checks and queues the filter; the sweep runs in the node's
``retain`` loop, one at a time, and its report is the answer to the next filter
(and :attr:`RetainSweeper.last`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

import blake3
import msgspec
from aiohttp import web

from skymesh.codec.bloom import DEFAULT_FP_RATE, MAX_BITS, BloomFilter, optimal_size
from skymesh.errors import BadRequest, CodecError, Conflict, Forbidden, TooLarge, Unavailable
from skymesh.node.orders import OrderVerifier
from skymesh.node.piecefile import PieceFileError, data_size_at
from skymesh.node.store import PieceStore
from skymesh.rpc import json_response
from skymesh.wire.durability import (
    RETAIN_PATH,
    RetainFilter,
    RetainOrder,
    RetainReport,
    RetainResponse,
)
from skymesh.wire.signing import ORDER_HEADER, decode_header, open_signed

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW = 300.0  # a filter from the future by more than this is refused
MAX_FILTER_AGE = 2 * 24 * 3600.0  # an older filter (a replay) is refused
IDLE_DELAY = 3600.0  # the loop sleeps this long when no filter waits (a POST wakes it)
# Sizing the largest filter a node accepts (max_filter_body):
MIN_PIECE_FOOTPRINT = 4096  # a stored piece takes at least a filesystem block
MIN_FILTER_MEMBERS = 1 << 20  # a filter of a million pieces (1.2 MiB) always fits
FILTER_ENVELOPE = 4096  # msgpack field names, seed and numbers around the bits
READ_CHUNK = 1024 * 1024


def max_filter_body(capacity_bytes: int, piece_count: int) -> int:
    """The largest retain body a node of this capacity, holding this many pieces, accepts.

    The coordinator's filter for a node holds every piece it references there,
    sized at :data:`DEFAULT_FP_RATE` (about 9.6 bits a piece). A node cannot hold
    more pieces than its capacity has filesystem blocks, nor (with slack for
    pieces the coordinator still counts while they are being deleted) more than
    twice what it holds now; a million pieces always fit. A 100 GiB node accepts
    about 31 MiB; nothing accepts more than the largest filter there is (256 MiB).
    """
    members = max(capacity_bytes // MIN_PIECE_FOOTPRINT, 2 * piece_count, MIN_FILTER_MEMBERS)
    bits, _ = optimal_size(members, DEFAULT_FP_RATE)
    return min(bits, MAX_BITS) // 8 + FILTER_ENVELOPE


class RetainSweeper:
    """Checks filters (:meth:`admit`, :meth:`accept`) and applies the newest one (:meth:`step`)."""

    def __init__(
        self,
        node_id: str,
        store: PieceStore,
        verifier: OrderVerifier,
        clock: Callable[[], float] = time.time,
    ):
        self.node_id = node_id
        self.store = store
        self.verifier = verifier
        self.clock = clock
        self.pending: tuple[RetainFilter, BloomFilter] | None = None
        self.last: RetainReport | None = None
        self.receiving = False  # a body is being read: one at a time
        self.removed_total = 0  # for metrics
        self.wake: Callable[[], None] = lambda: None  # set to the loop's trigger

    @property
    def max_body(self) -> int:
        return max_filter_body(self.store.capacity_bytes, self.store.piece_count)

    def _newest(self) -> float | None:
        """Creation time of the newest filter received (applied or queued)."""
        times = [x.created_at for x in (self.last, self.pending and self.pending[0]) if x]
        return max(times, default=None)

    def admit(self, header: str | None) -> RetainOrder:
        """Check a retain POST's signed order: who sent it, for whom, when, how large.

        Runs before any of the body is read, so a caller without a trusted
        coordinator's signature costs the node no more than its headers.
        """
        trusted = self.verifier.trusted_keys
        if not trusted:
            raise Forbidden("RetainOrder refused: this node trusts no coordinator yet")
        if not header:
            raise Forbidden(f"a retain filter needs a signed RetainOrder in {ORDER_HEADER}")
        order = open_signed(decode_header(header), RetainOrder, trusted=trusted)
        now = self.clock()
        if order.node_id != self.node_id:
            raise Forbidden(f"filter is for node {order.node_id}, not this node ({self.node_id})")
        if order.created_at > now + MAX_CLOCK_SKEW:
            raise Forbidden(
                f"filter created {order.created_at - now:.0f} s in the future; check clocks"
            )
        if order.created_at < now - MAX_FILTER_AGE:
            raise Forbidden(f"filter created {now - order.created_at:.0f} s ago is too old")
        newest = self._newest()
        if newest is not None and order.created_at < newest:
            raise Conflict("a newer filter was already received; this one is stale")
        cap = self.max_body
        if not 0 <= order.size <= cap:
            raise TooLarge(f"retain filter of {order.size} bytes; this node accepts {cap}")
        return order

    def accept(self, order: RetainOrder, body: bytes | bytearray) -> RetainResponse:
        """Check the body ``order`` named and queue its filter (replacing an older queued one)."""
        if blake3.blake3(body).digest() != order.digest:
            raise Forbidden("retain body does not match its order's digest")
        try:
            f = msgspec.msgpack.decode(body, type=RetainFilter)
        # RecursionError: a value nested past Python's recursion limit
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
            raise BadRequest(f"malformed RetainFilter: {e}") from e
        if f.node_id != order.node_id or f.created_at != order.created_at:
            raise BadRequest("the filter's node or creation time is not its order's")
        if f.stored_before > f.created_at:
            raise BadRequest("filter's stored_before is after its creation")
        newest = self._newest()  # again: another may have been queued meanwhile
        if newest is not None and f.created_at < newest:
            raise Conflict("a newer filter was already received; this one is stale")
        try:
            bloom = BloomFilter(f.num_bits, f.hashes, f.seed, f.bits)
        except CodecError as e:
            raise BadRequest(f"malformed filter: {e}") from e
        # the bloom holds its own copy of the bits: keep one copy queued, not two
        self.pending = (msgspec.structs.replace(f, bits=b""), bloom)
        self.wake()
        log.info(
            "retain filter of %d pieces (%d bytes) queued; pieces stored before %s may go",
            f.piece_count,
            len(f.bits),
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.stored_before)),
        )
        return RetainResponse(queued=True, last=self.last)

    async def step(self) -> float:
        """Apply the queued filter, if any; the loop's delay until the next look."""
        job, self.pending = self.pending, None
        if job is not None:
            self.last = await self.sweep(*job)
        return IDLE_DELAY

    async def sweep(self, f: RetainFilter, bloom: BloomFilter) -> RetainReport:
        """Delete every stored piece that is not in ``bloom`` and older than ``stored_before``."""
        checked, doomed, young = await asyncio.to_thread(self._candidates, bloom, f.stored_before)
        removed = removed_bytes = 0
        for piece_id, size in doomed:
            if await self.store.delete(piece_id):
                removed += 1
                removed_bytes += size
        self.removed_total += removed
        report = RetainReport(
            created_at=f.created_at,
            finished_at=self.clock(),
            checked=checked,
            removed=removed,
            removed_bytes=removed_bytes,
            kept_young=young,
        )
        log.info(
            "retain: checked %d pieces, removed %d (%d bytes) the coordinator does not reference;"
            " kept %d unreferenced but younger than the grace",
            checked,
            removed,
            removed_bytes,
            young,
        )
        return report

    def _candidates(
        self, bloom: BloomFilter, stored_before: float
    ) -> tuple[int, list[tuple[str, int]], int]:
        """(pieces checked, [(piece id, size)] to delete, unreferenced but young); blocking."""
        checked = young = 0
        doomed: list[tuple[str, int]] = []
        for piece_id in self.store.iter_piece_ids():
            checked += 1
            if piece_id in bloom:
                continue
            path = self.store.path(piece_id)
            try:
                st = os.stat(path)
                # The piece file is renamed into place when the piece is complete: its
                # mtime is when the last byte was written, i.e. when it was stored.
                if st.st_mtime >= stored_before:
                    young += 1
                    continue
                size = data_size_at(path)
            except FileNotFoundError:
                continue
            except PieceFileError:
                size = 0  # a file the store will not count either; delete removes it
            doomed.append((piece_id, size))
        return checked, doomed, young


RETAIN = web.AppKey("retain", RetainSweeper)


def install_retain(app: web.Application, sweeper: RetainSweeper) -> None:
    """Add ``POST /v1/retain`` to the node's application (before it starts)."""
    app[RETAIN] = sweeper
    app.router.add_post(RETAIN_PATH, _retain)


async def _retain(request: web.Request) -> web.Response:
    sweeper = request.app[RETAIN]
    order = sweeper.admit(request.headers.get(ORDER_HEADER))
    length = request.content_length
    if length is not None and length != order.size:
        raise BadRequest(f"body of {length} bytes; its order names {order.size}")
    if sweeper.receiving:
        raise Unavailable("another retain filter is being received; retry later")
    sweeper.receiving = True
    try:
        body = await _read_exact(request, order.size)
        return json_response(sweeper.accept(order, body), status=202)
    finally:
        sweeper.receiving = False


async def _read_exact(request: web.Request, size: int) -> bytearray:
    """Exactly ``size`` bytes of body, into one buffer; more or fewer is a BadRequest."""
    body = bytearray(size)
    view = memoryview(body)
    got = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        if got + len(chunk) > size:
            raise BadRequest(f"retain body longer than its order's {size} bytes")
        view[got : got + len(chunk)] = chunk
        got += len(chunk)
    if got != size:
        raise BadRequest(f"retain body of {got} bytes is shorter than its order's {size}")
    return body
