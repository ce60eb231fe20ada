"""Reconciliation: delete pieces the coordinator no longer references.

Some pieces are recorded nowhere: the slow uploads the long tail cut off after
they had stored, attempts that failed, uploads that never committed. The
coordinator cannot send delete orders for what it does not know, so now and then
it sends each node a signed Bloom filter of every piece it references there
(:class:`~skymesh.wire.durability.RetainFilter`, ``POST /v1/retain``). The node
deletes a piece when the filter does not contain it **and** it was stored before
the filter's ``stored_before``; pieces of uploads in flight are younger than
that and survive. A member is never missing from a Bloom filter, so a referenced
piece is never deleted; about 1% of the garbage survives each round.

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

import msgspec
from aiohttp import web

from skymesh.codec.bloom import BloomFilter
from skymesh.errors import BadRequest, CodecError, Conflict, Forbidden, TooLarge
from skymesh.node.orders import OrderVerifier
from skymesh.node.store import PieceStore
from skymesh.rpc import json_response
from skymesh.wire.durability import RetainFilter, RetainReport, RetainResponse
from skymesh.wire.signing import Signed, open_signed

log = logging.getLogger(__name__)

MAX_RETAIN_BODY = 384 * 1024 * 1024  # a 256 MiB filter, base64 in JSON
MAX_CLOCK_SKEW = 300.0  # a filter from the future by more than this is refused
MAX_FILTER_AGE = 2 * 24 * 3600.0  # an older filter (a replay) is refused
IDLE_DELAY = 3600.0  # the loop sleeps this long when no filter waits (a POST wakes it)


class RetainSweeper:
    """Checks filters (:meth:`accept`) and applies the newest one (:meth:`step`)."""

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
        self.removed_total = 0  # for metrics
        self.wake: Callable[[], None] = lambda: None  # set to the loop's trigger

    def accept(self, signed: Signed) -> RetainResponse:
        """Check a signed filter and queue it for the sweep (replacing an older queued one)."""
        trusted = self.verifier.trusted_keys
        if not trusted:
            raise Forbidden("RetainFilter refused: this node trusts no coordinator yet")
        f = open_signed(signed, RetainFilter, trusted=trusted)
        now = self.clock()
        if f.node_id != self.node_id:
            raise Forbidden(f"filter is for node {f.node_id}, not this node ({self.node_id})")
        if f.created_at > now + MAX_CLOCK_SKEW:
            raise Forbidden(
                f"filter created {f.created_at - now:.0f} s in the future; check clocks"
            )
        if f.created_at < now - MAX_FILTER_AGE:
            raise Forbidden(f"filter created {now - f.created_at:.0f} s ago is too old")
        if f.stored_before > f.created_at:
            raise BadRequest("filter's stored_before is after its creation")
        newest = max(
            (x.created_at for x in (self.last, self.pending and self.pending[0]) if x is not None),
            default=None,
        )
        if newest is not None and f.created_at < newest:
            raise Conflict("a newer filter was already received; this one is stale")
        try:
            bloom = BloomFilter(f.num_bits, f.hashes, f.seed, f.bits)
        except CodecError as e:
            raise BadRequest(f"malformed filter: {e}") from e
        self.pending = (f, bloom)
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
            try:
                st = os.stat(self.store.path(piece_id))
            except FileNotFoundError:
                continue
            # The data file is renamed into place when the piece is complete: its
            # mtime is when the last byte was written, i.e. when it was stored.
            if st.st_mtime >= stored_before:
                young += 1
                continue
            doomed.append((piece_id, st.st_size))
        return checked, doomed, young


RETAIN = web.AppKey("retain", RetainSweeper)


def install_retain(app: web.Application, sweeper: RetainSweeper) -> None:
    """Add ``POST /v1/retain`` to the node's application (before it starts)."""
    app[RETAIN] = sweeper
    app.router.add_post("/v1/retain", _retain)


async def _retain(request: web.Request) -> web.Response:
    sweeper = request.app[RETAIN]
    if request.content_length is not None and request.content_length > MAX_RETAIN_BODY:
        raise TooLarge(f"retain body over {MAX_RETAIN_BODY} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(1024 * 1024):
        body += chunk
        if len(body) > MAX_RETAIN_BODY:
            raise TooLarge(f"retain body over {MAX_RETAIN_BODY} bytes")
    try:
        signed = msgspec.json.decode(bytes(body), type=Signed)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise BadRequest(f"malformed Signed[RetainFilter]: {e}") from e
    return json_response(sweeper.accept(signed), status=202)
