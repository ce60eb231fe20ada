"""The node's HTTP face: pieces in and out against signed orders.

=======  ===============================  ======  =====================================
method   path                             order   answers
=======  ===============================  ======  =====================================
GET      /v1/identity                     -       200 PeerIdentity (role "node")
GET      /healthz                         -       200 {"status": "ok", used/free bytes...}
PUT      /v1/pieces/{piece_id}            put     201 Signed[PieceReceipt]; 403 409 413 507
GET      /v1/pieces/{piece_id}            get     200 bytes, 206 one range; 403 404 416
HEAD     /v1/pieces/{piece_id}            get     200 Content-Length, X-Skymesh-Merkle-Root
GET      /v1/pieces/{piece_id}/hashes     get     200 PieceHashes
DELETE   /v1/pieces/{piece_id}            delete  204; 404 when not stored
GET      /v1/pieces/{piece_id}/audit      audit   200 AuditChunk (?chunk=N); 404
POST     /v1/retain                       -       202 RetainResponse (signed filter; node/retain.py)
=======  ===============================  ======  =====================================

The order travels in the ``X-Skymesh-Order`` header and is checked before any
body is read; a malformed piece id is a 400 before anything else. Only ``GET``
of piece bytes is charged against a get order's allowance (``HEAD`` and
``/hashes`` are not). Errors are JSON :class:`~skymesh.wire.base.ErrorBody`.

On the node's port, ``PUT`` and ``GET`` of piece bytes are served by
:mod:`skymesh.node.front` straight off the socket, through the same
:func:`admit_put`, :func:`store_piece` and :func:`open_read` as the handlers here,
which serve them on connections the front handed to aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from skymesh import __version__
from skymesh.codec.merkle import Buffer
from skymesh.errors import BadRequest, NotFound, SkymeshError, TooLarge
from skymesh.node.audit import audit_chunk
from skymesh.node.orders import OrderVerifier
from skymesh.node.piecefile import data_size
from skymesh.node.store import PieceStore
from skymesh.piecetransfer.receipts import sign_receipt
from skymesh.rpc import Handler, error_middleware, json_response
from skymesh.wire.base import ErrorBody
from skymesh.wire.identity import Identity
from skymesh.wire.node import (
    PIECE_AUDIT_PATH,
    PIECE_HASHES_PATH,
    PIECE_PATH,
    Order,
    PieceAction,
    PieceHashes,
)
from skymesh.wire.pieces import is_valid_piece_id
from skymesh.wire.registry import PeerIdentity
from skymesh.wire.signing import ORDER_HEADER, Signed

log = logging.getLogger(__name__)

MERKLE_ROOT_HEADER = "X-Skymesh-Merkle-Root"
CHUNK_SIZE_HEADER = "X-Skymesh-Chunk-Size"
READ_CHUNK = 1024 * 1024  # most bytes taken from the request stream at a time
SEND_CHUNK = 1024 * 1024  # bytes per read when not using sendfile
_PIECE_HEADERS = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}


@dataclass
class NodeCounters:
    """Plain counters for a metrics endpoint to read."""

    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    refusals: collections.Counter[str] = field(default_factory=collections.Counter)
    bytes_received: int = 0
    bytes_sent: int = 0
    pieces_stored: int = 0
    pieces_deleted: int = 0


@dataclass
class NodeContext:
    """What the handlers share; ``app[NODE]``."""

    store: PieceStore
    verifier: OrderVerifier
    identity: Identity
    counters: NodeCounters
    clock: Callable[[], float] = time.time
    sendfile: bool = True


NODE = web.AppKey("node", NodeContext)


def create_app(
    store: PieceStore,
    verifier: OrderVerifier,
    identity: Identity,
    *,
    clock: Callable[[], float] = time.time,
    sendfile: bool = True,
) -> web.Application:
    """The node's HTTP application (``sendfile=False`` serves pieces by reads and writes)."""
    app = web.Application(middlewares=[_count_middleware, error_middleware, _refusal_middleware])
    app[NODE] = NodeContext(store, verifier, identity, NodeCounters(), clock, sendfile)
    app.router.add_get("/v1/identity", _identity)
    app.router.add_get("/healthz", _healthz)
    app.router.add_put(PIECE_PATH, _put_piece)
    app.router.add_get(PIECE_PATH, _get_piece, allow_head=False)
    app.router.add_head(PIECE_PATH, _head_piece)
    app.router.add_get(PIECE_HASHES_PATH, _get_hashes)
    app.router.add_delete(PIECE_PATH, _delete_piece)
    app.router.add_get(PIECE_AUDIT_PATH, _audit_piece)
    return app


# ---------------------------------------------------------------- middlewares


@web.middleware
async def _count_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    name = resource.canonical if resource is not None else "-"
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        request.app[NODE].counters.requests[f"{request.method} {name} {status}"] += 1


@web.middleware
async def _refusal_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SkymeshError as e:
        request.app[NODE].counters.refusals[e.code] += 1
        if e.status < 500:
            log.info("refused %s %s: %s %s", request.method, request.path, e.status, e)
        raise


# ---------------------------------------------------------------- handlers


def _piece_id(request: web.Request) -> str:
    piece_id = request.match_info["piece_id"]
    if not is_valid_piece_id(piece_id):
        raise BadRequest(
            f"invalid piece id {piece_id[:80]!r}: expected 64 lowercase hex characters"
        )
    return piece_id


async def _identity(request: web.Request) -> web.Response:
    identity = request.app[NODE].identity
    return json_response(
        PeerIdentity(
            id=identity.id, public_key=identity.public_key, role="node", version=__version__
        )
    )


async def _healthz(request: web.Request) -> web.Response:
    node = request.app[NODE]
    store = node.store
    return json_response(
        {
            "status": "ok",
            "node_id": node.identity.id,
            "capacity_bytes": store.capacity_bytes,
            "used_bytes": store.used_bytes,
            "free_bytes": store.free_bytes,
            "piece_count": store.piece_count,
        }
    )


async def _body(request: web.Request, counters: NodeCounters) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            counters.bytes_received += len(chunk)
            yield chunk
    except (HttpProcessingError, aiohttp.ClientPayloadError, ConnectionError) as e:
        raise BadRequest(f"request body ended early: {e}") from e


async def _put_piece(request: web.Request) -> web.Response:
    piece_id = _piece_id(request)
    node = request.app[NODE]
    order = admit_put(node, request.headers.get(ORDER_HEADER), piece_id, request.content_length)
    receipt = await store_piece(
        node, piece_id, order, _body(request, node.counters), request.content_length
    )
    return json_response(receipt, status=201)


def admit_put(
    node: NodeContext, order_value: str | None, piece_id: str, length: int | None
) -> Order:
    """The put order for ``piece_id``, checked (and its serial spent) before any body
    byte is read; :class:`TooLarge` when the declared ``length`` passes its ``max_bytes``."""
    order = node.verifier.check(order_value, piece_id, PieceAction.PUT, node.clock())
    if length is not None and length > order.max_bytes:
        raise TooLarge(f"piece of {length} bytes exceeds the order's {order.max_bytes}")
    return order


async def store_piece(
    node: NodeContext,
    piece_id: str,
    order: Order,
    chunks: AsyncIterator[Buffer],
    length: int | None,
) -> Signed:
    """Store the body ``chunks`` under an admitted put order; the node's signed receipt."""
    meta = await node.store.write(piece_id, chunks, order.max_bytes, length, order.serial)
    node.counters.pieces_stored += 1
    log.debug("stored piece %s (%d bytes, order %s)", piece_id, meta.size, order.serial)
    return sign_receipt(
        node.identity,
        piece_id=piece_id,
        serial=order.serial,
        size=meta.size,
        merkle_root=meta.merkle_root,
        stored_at=meta.stored_at,
    )


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``[start, stop)`` of a single ``bytes=`` range over ``size`` bytes.

    None when the range cannot be satisfied (answer 416); :class:`BadRequest` when
    the header is malformed or asks for several ranges.
    """
    unit, eq, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or not eq:
        raise BadRequest(f"unsupported Range {value[:80]!r}: only bytes=a-b, a- or -n")
    if "," in spec:
        raise BadRequest("only one range per request")
    first, dash, last = (s.strip() for s in spec.partition("-"))
    if not dash or not _is_number(last, allow_empty=True) or not _is_number(first, True):
        raise BadRequest(f"malformed Range {value[:80]!r}")
    if not first:
        if not last:
            raise BadRequest(f"malformed Range {value[:80]!r}")
        n = int(last)
        return (max(0, size - n), size) if n > 0 and size > 0 else None
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1) + 1


def _is_number(s: str, allow_empty: bool = False) -> bool:
    if not s:
        return allow_empty
    return len(s) <= 19 and s.isascii() and s.isdigit()


@dataclass
class PieceRead:
    """A GET of piece bytes, admitted and charged: ``[start, stop)`` of ``file``.

    ``status`` 416 (nothing charged, ``file`` closed) when the range is not within
    the piece's ``size`` bytes; the caller owns ``file`` otherwise.
    """

    file: IO[bytes]
    size: int
    status: int
    start: int
    stop: int
    range_value: str | None

    @property
    def content_range(self) -> str:
        if self.status == 416:
            return f"bytes */{self.size}"
        return f"bytes {self.start}-{self.stop - 1}/{self.size}"


def open_read(
    node: NodeContext, piece_id: str, order_value: str | None, range_value: str | None
) -> PieceRead:
    """Check the get order, open the piece, resolve ``Range`` and charge the allowance."""
    order = node.verifier.check(order_value, piece_id, PieceAction.GET, node.clock())
    try:
        # An open of a cached dentry: microseconds, not worth a thread hop.
        f = open(node.store.path(piece_id), "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise NotFound(f"piece {piece_id} is not stored here") from None
    try:
        size = data_size(f.fileno())  # the piece's bytes, not its record after them
        read = PieceRead(f, size, 200, 0, size, range_value)
        if range_value is not None:
            span = parse_range(range_value, size)
            if span is None:
                node.counters.refusals["InvalidRange"] += 1
                f.close()
                read.status = 416
                return read
            read.status, (read.start, read.stop) = 206, span
        node.verifier.charge(order, read.stop - read.start, order_value or "")
    except BaseException:
        f.close()
        raise
    return read


def unsatisfiable_body(read: PieceRead) -> ErrorBody:
    """The error a 416 carries (with ``Content-Range: bytes */size``)."""
    value = read.range_value or ""
    return ErrorBody(
        code="InvalidRange", message=f"range {value[:80]!r} not within {read.size} bytes"
    )


async def _get_piece(request: web.Request) -> web.StreamResponse:
    piece_id = _piece_id(request)
    node = request.app[NODE]
    read = open_read(
        node, piece_id, request.headers.get(ORDER_HEADER), request.headers.get("Range")
    )
    if read.status == 416:
        refusal = json_response(unsatisfiable_body(read), status=416)
        refusal.headers["Content-Range"] = read.content_range
        return refusal
    with read.file as f:
        start, count = read.start, read.stop - read.start
        # headers given whole: the content_type setter parses its value on every call
        resp = web.StreamResponse(status=read.status, headers=_PIECE_HEADERS)
        resp.content_length = count
        if read.status == 206:
            resp.headers["Content-Range"] = read.content_range
        try:
            await resp.prepare(request)
            if count:
                await _send(request, resp, f, start, count, node.sendfile)
            await resp.write_eof()
        except ConnectionError as e:
            log.debug("reader of piece %s went away: %s", piece_id, e)
            return resp
        node.counters.bytes_sent += count
        return resp


async def _send(
    request: web.Request, resp: web.StreamResponse, f: IO[Any], start: int, count: int, sf: bool
) -> None:
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("connection lost")
    if sf:
        sent = sendfile_now(transport, f.fileno(), start, count)
        start, count = start + sent, count - sent
        if not count:
            return
        try:
            await asyncio.get_running_loop().sendfile(transport, f, start, count)
            return
        except NotImplementedError:
            pass
    fd = f.fileno()
    pos, stop = start, start + count
    while pos < stop:
        data = await asyncio.to_thread(os.pread, fd, min(SEND_CHUNK, stop - pos), pos)
        if not data:
            raise SkymeshError("piece file shrank while being sent")
        await resp.write(data)
        pos += len(data)


def sendfile_now(transport: asyncio.BaseTransport, fd: int, start: int, count: int) -> int:
    """Bytes of ``fd`` sent straight to the socket while it takes them without waiting.

    Most ranges fit the socket's send buffer: one ``sendfile`` call, where the
    loop's ``sendfile`` costs a dozen Python calls (a drain, reading paused and
    resumed, a writer registered and removed). Only while the transport holds no
    unsent bytes (the headers went out whole), or the body would pass them, and
    never under TLS, whose socket carries ciphertext: 0 then, and the caller
    sends it all the loop's way.
    """
    sock = transport.get_extra_info("socket")
    if (
        sock is None
        or transport.get_extra_info("ssl_object") is not None
        or not isinstance(transport, asyncio.WriteTransport)
        or transport.is_closing()
        or transport.get_write_buffer_size()
    ):
        return 0
    out, sent = sock.fileno(), 0
    try:
        while sent < count:
            n = os.sendfile(out, fd, start + sent, count - sent)
            if n == 0:  # the file ended early: the loop's sendfile reports it
                break
            sent += n
    except (BlockingIOError, InterruptedError):
        pass
    return sent


async def _head_piece(request: web.Request) -> web.StreamResponse:
    piece_id = _piece_id(request)
    node = request.app[NODE]
    node.verifier.check(request.headers.get(ORDER_HEADER), piece_id, PieceAction.GET, node.clock())
    meta = node.store.head(piece_id)
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/octet-stream"
    resp.content_length = meta.size
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers[MERKLE_ROOT_HEADER] = meta.merkle_root.hex()
    resp.headers[CHUNK_SIZE_HEADER] = str(meta.chunk_size)
    await resp.prepare(request)
    await resp.write_eof()
    return resp


async def _get_hashes(request: web.Request) -> web.Response:
    piece_id = _piece_id(request)
    node = request.app[NODE]
    node.verifier.check(request.headers.get(ORDER_HEADER), piece_id, PieceAction.GET, node.clock())
    meta = node.store.head(piece_id)
    return json_response(
        PieceHashes(
            piece_id=piece_id, size=meta.size, chunk_size=meta.chunk_size, leaves=meta.leaves
        )
    )


async def _delete_piece(request: web.Request) -> web.Response:
    piece_id = _piece_id(request)
    node = request.app[NODE]
    order = node.verifier.check(
        request.headers.get(ORDER_HEADER), piece_id, PieceAction.DELETE, node.clock()
    )
    if not await node.store.delete(piece_id):
        raise NotFound(f"piece {piece_id} is not stored here")
    node.counters.pieces_deleted += 1
    log.debug("deleted piece %s (order %s)", piece_id, order.serial)
    return web.Response(status=204)


# ---------------------------------------------------------------- audits


async def _audit_piece(request: web.Request) -> web.Response:
    """One Merkle chunk with its proof, against a single-use ``audit`` order."""
    piece_id = _piece_id(request)
    node = request.app[NODE]
    raw = request.query.get("chunk", "")
    if not _is_number(raw):
        raise BadRequest("send the chunk to audit as ?chunk=N (a non-negative integer)")
    node.verifier.check(
        request.headers.get(ORDER_HEADER), piece_id, PieceAction.AUDIT, node.clock()
    )
    return json_response(await audit_chunk(node.store, piece_id, int(raw)))
