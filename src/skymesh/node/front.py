"""The node's front door: piece bytes served straight off the socket, the rest by aiohttp.

Every connection to the node's port starts with :class:`FrontProtocol`. It reads
request heads itself and serves the two requests that move piece bytes,
``PUT /v1/pieces/{id}`` with a ``Content-Length`` body and ``GET /v1/pieces/{id}``
with at most one ``Range``, by the very rules of :mod:`skymesh.node.api` (it calls
the same :func:`~skymesh.node.api.admit_put`, :func:`~skymesh.node.api.store_piece`
and :func:`~skymesh.node.api.open_read`): same statuses, headers, JSON errors and
counters. What it saves is aiohttp's machinery around them: its request and
payload objects, router and middlewares, and the copies of a body through its
stream reader. A body lands by ``recv_into`` in one buffer, pooled from piece to
piece, which the store hashes and writes as it is; a GET answers with ``sendfile``.

Anything else (another route or method, a query string, ``Transfer-Encoding``,
``Expect``, ``Upgrade``, HTTP/1.0, a repeated header that matters, a byte of the
head it does not fully understand, a head over :data:`HEAD_BUFFER` bytes) goes to
aiohttp's request handler for the rest of the connection, with the bytes already
read: aiohttp answers it, errors included, as if it had read them itself. So a
connection can carry front-served requests, then aiohttp-served ones.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import re
import time
from email.utils import formatdate
from typing import IO, Any

import msgspec
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.tcp_helpers import tcp_keepalive, tcp_nodelay
from aiohttp.web_server import Server
from yarl import URL

from skymesh.errors import BadRequest, SkymeshError
from skymesh.node.api import (
    NODE,
    NodeContext,
    PieceRead,
    admit_put,
    open_read,
    sendfile_now,
    store_piece,
    unsatisfiable_body,
)
from skymesh.wire.base import ErrorBody
from skymesh.wire.node import Order

log = logging.getLogger(__name__)

# A head that does not fit, or has more header lines, goes to aiohttp, which answers
# it or refuses it by its own limits: no line over 8190 bytes, at most 128 headers.
HEAD_BUFFER = 8190
MAX_HEADERS = 100
BODY_SLAB = 4 * 1024 * 1024  # a body up to this size lands in one buffer; larger ones stream
STREAM_SLAB = 1024 * 1024  # ... in slabs of this size (a connection holds three at most)
QUEUED_SLABS = 2  # received slabs waiting for the store before reading pauses
POOLED_SLABS = 8  # body buffers kept for the next PUTs, of whichever connection
KEEPALIVE = 3630.0  # seconds an idle connection stays open (aiohttp's default)
SHUTDOWN_TIMEOUT = 10.0  # seconds requests in flight get when the node stops
_ROUTE = "/v1/pieces/{piece_id}"  # the counters' name for the piece route, as aiohttp's

_REQUEST_LINE = re.compile(rb"(PUT|GET) /v1/pieces/([0-9a-f]{64}) HTTP/1\.1")
# Bytes a head may hold (visible ASCII, space, tab; CR and LF only as line ends), and
# those of a header name (a token): bytes.translate deletes them to find any other.
_HEAD_BYTES = bytes(range(0x20, 0x7F)) + b"\t"
_TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGITS = re.compile(rb"[0-9]{1,18}")
# Headers the front reads: each once, or the request goes to aiohttp.
_ORDER, _RANGE, _LENGTH, _CONNECTION = (
    b"x-skymesh-order",
    b"range",
    b"content-length",
    b"connection",
)
_KNOWN = frozenset({_ORDER, _RANGE, _LENGTH, _CONNECTION})
# Headers whose meaning the front leaves to aiohttp.
_HAND_OVER = frozenset({b"transfer-encoding", b"expect", b"upgrade"})

# Connection states.
_HEAD = 0  # reading a request head
_BODY = 1  # receiving a PUT body into slabs
_BUSY = 2  # a request in hand, its body (if any) all received: further bytes wait
_DRAIN = 3  # discarding the rest of a body that was refused
_GONE = 4  # handed to aiohttp, or closed


class FrontRequest:
    """What the front needs of a request head it serves."""

    __slots__ = ("close", "length", "method", "order", "piece_id", "range")

    def __init__(self, method: str, piece_id: str) -> None:
        self.method = method
        self.piece_id = piece_id
        self.order: str | None = None
        self.range: str | None = None
        self.length: int | None = None
        self.close = False


def parse_head(head: bytes) -> FrontRequest | None:
    """The request in ``head`` (up to, not including, its blank line) when the front
    serves it exactly as aiohttp would; None for anything to hand over."""
    lines = head.split(b"\r\n")
    m = _REQUEST_LINE.fullmatch(lines[0])
    if m is None or len(lines) > MAX_HEADERS + 1:
        return None
    if b"".join(lines).translate(None, _HEAD_BYTES):
        return None  # a stray CR or LF, a control byte, a byte outside ASCII
    req = FrontRequest(m[1].decode(), m[2].decode())
    seen: set[bytes] = set()
    for line in lines[1:]:
        name, colon, raw = line.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN_BYTES):
            return None  # no name, a space before the colon, obs-fold...
        name = name.lower()
        if name in _HAND_OVER:
            return None
        if name not in _KNOWN:
            continue
        if name in seen:
            return None
        seen.add(name)
        value = raw.strip(b" \t")
        if name == _ORDER:
            req.order = value.decode()
        elif name == _RANGE:
            req.range = value.decode()
        elif name == _LENGTH:
            if _DIGITS.fullmatch(value) is None:
                return None
            req.length = int(value)
        else:
            tokens = {t.strip().lower() for t in value.split(b",")}
            if not tokens <= {b"close", b"keep-alive"}:
                return None
            req.close = b"close" in tokens
    if req.method == "PUT" and req.length is None:
        return None  # no length and no chunking: aiohttp's call
    if req.method == "GET" and req.length:
        return None
    return req


_date_second = -1
_date_text = b""


def _date() -> bytes:
    global _date_second, _date_text
    now = int(time.time())
    if now != _date_second:
        _date_second, _date_text = now, formatdate(now, usegmt=True).encode()
    return _date_text


_REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}
_SERVER = SERVER_SOFTWARE.encode()


def response_head(
    status: int, fields: list[tuple[bytes, bytes]], length: int, close: bool = False
) -> bytes:
    """A response head as aiohttp writes one (its header order, ``Date``, ``Server``,
    and ``Connection: close`` on the last response of a connection)."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
    parts += [b"%s: %s\r\n" % f for f in fields]
    parts.append(b"Content-Length: %d\r\nDate: %s\r\nServer: %s\r\n" % (length, _date(), _SERVER))
    parts.append(b"Connection: close\r\n\r\n" if close else b"\r\n")
    return b"".join(parts)


_JSON = (b"Content-Type", b"application/json")
_OCTETS = [(b"Content-Type", b"application/octet-stream"), (b"Accept-Ranges", b"bytes")]
_encode = msgspec.json.encode


class PieceFront:
    """The front of one node: its context, aiohttp's server to hand over to, and the
    connections it serves (closed on :meth:`shutdown`)."""

    def __init__(self, node: NodeContext, server: Server) -> None:
        self.node = node
        self.server = server
        self.connections: set[FrontProtocol] = set()
        self.scratch = memoryview(bytearray(256 * 1024))  # drained bodies land here
        # Body buffers free for the next PUT: a fresh one costs its page faults and
        # zeroing (a third of a millisecond for a 1.4 MB piece); one per connection
        # would hold megabytes on every idle connection of a gateway's pool.
        self._slabs: list[bytearray] = []

    def take_slab(self, size: int) -> bytearray:
        """A body buffer of at least ``size`` bytes, pooled where one is free."""
        for i in range(len(self._slabs) - 1, -1, -1):
            if len(self._slabs[i]) >= size:
                return self._slabs.pop(i)
        return bytearray(size)

    def give_slab(self, slab: bytearray) -> None:
        """Back to the pool: nothing (no disk thread) reads it any more."""
        if len(self._slabs) < POOLED_SLABS:
            self._slabs.append(slab)

    def connection(self) -> FrontProtocol:
        """The protocol factory for the listening socket."""
        return FrontProtocol(self)

    async def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Close idle connections now, the rest once their request is done (or ``timeout``)."""
        tasks = []
        for conn in list(self.connections):
            if conn.task is None:
                conn.close()
            else:
                tasks.append(conn.task)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for conn in list(self.connections):
            conn.close()


class FrontSite(web.BaseSite):
    """A TCP site of an ``AppRunner`` over the node's app whose connections start
    with the front; ``runner.cleanup()`` stops it as it stops any site."""

    __slots__ = ("_bound_port", "_front", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int) -> None:
        super().__init__(runner)
        server = runner.server
        app = getattr(runner, "app", None)
        if server is None or app is None:
            raise RuntimeError("FrontSite needs a set-up AppRunner of the node's app")
        self._front = PieceFront(app[NODE], server)
        self._host = host
        self._port = port
        self._bound_port: int | None = None

    @property
    def front(self) -> PieceFront:
        return self._front

    @property
    def port(self) -> int:
        return self._port if self._bound_port is None else self._bound_port

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._host or "0.0.0.0", port=self.port))

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = server = await loop.create_server(
            self._front.connection, self._host, self._port, backlog=self._backlog
        )
        self._bound_port = server.sockets[0].getsockname()[1] if server.sockets else self._port

    async def stop(self) -> None:
        await super().stop()  # no new connections
        await self._front.shutdown()


class FrontProtocol(asyncio.BufferedProtocol):
    """One connection: request heads parsed here, piece routes served, the rest handed on."""

    def __init__(self, front: PieceFront) -> None:
        self._front = front
        self._node = front.node
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._state = _HEAD
        self._head = bytearray(HEAD_BUFFER)
        self._view = memoryview(self._head)
        self._lo = self._hi = 0  # unparsed bytes: self._head[lo:hi]
        self._paused = False
        self._close_after = False
        self.task: asyncio.Task[None] | None = None
        self._idle_since = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        # the body being received (see _start_body)
        self._slab: bytearray | None = None  # the pooled buffer of the body being received
        self._cur = memoryview(b"")  # the slab being filled
        self._filled = 0
        self._body_left = 0  # body bytes still to come from the socket
        self._unread = 0  # body bytes not yet taken by the store
        self._ready: collections.deque[memoryview] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self._drain_left = 0

    # ------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        tcp_nodelay(transport, True)  # as aiohttp's handler sets them
        tcp_keepalive(transport)
        self._front.connections.add(self)
        self._timer = self._loop.call_at(self._idle_since + KEEPALIVE, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._state != _GONE:
            self._forget()
        if self._unread and self._lost is None:
            self._lost = exc or ConnectionResetError("connection closed")
            self._wake()

    def get_buffer(self, sizehint: int) -> memoryview:
        state = self._state
        if state == _BODY:
            return self._cur[self._filled :]
        if state == _DRAIN:
            return self._front.scratch[: self._drain_left]
        if self._hi == len(self._head):
            self._compact()
        return self._view[self._hi :]

    def buffer_updated(self, nbytes: int) -> None:
        state = self._state
        if state == _BODY:
            self._filled += nbytes
            self._body_left -= nbytes
            if self._filled == len(self._cur):
                self._slab_full()
        elif state == _DRAIN:
            self._drain_left -= nbytes
            if not self._drain_left:
                self._done()
                self._process()
        else:
            self._hi += nbytes
            if state == _HEAD:
                self._process()
            elif self._hi == len(self._head) and self._lo == 0:
                self._pause()  # pipelined requests fill the head buffer: wait

    def eof_received(self) -> bool:
        return False  # close, as aiohttp does

    def pause_writing(self) -> None:
        pass  # responses are small; sendfile past the socket's buffer waits in the loop

    def resume_writing(self) -> None:
        pass

    # ------------------------------------------------------------ heads

    def _process(self) -> None:
        """Serve the complete heads buffered, while the connection is free to."""
        while self._state == _HEAD and self._transport is not None:
            end = self._head.find(b"\r\n\r\n", self._lo, self._hi)
            if end < 0:
                if self._hi - self._lo >= len(self._head):
                    self._hand_over()
                return
            req = parse_head(bytes(self._view[self._lo : end]))
            if req is None or (req.method == "GET" and not self._node.sendfile):
                self._hand_over()  # (reads and writes instead of sendfile: aiohttp's way)
                return
            self._lo = end + 4
            self._close_after = req.close
            if req.method == "PUT":
                self._put(req)
            else:
                self._get(req)

    def _compact(self) -> None:
        n = self._hi - self._lo
        self._head[:n] = self._view[self._lo : self._hi]
        self._lo, self._hi = 0, n

    def _hand_over(self) -> None:
        """Give the connection, and the bytes read of it, to aiohttp."""
        transport = self._transport
        assert transport is not None
        data = bytes(self._view[self._lo : self._hi])
        self._state = _GONE
        self._forget()
        handler = self._front.server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._paused:
            transport.resume_reading()
        if data:
            handler.data_received(data)

    def _forget(self) -> None:
        self._front.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _check_idle(self) -> None:
        self._timer = None
        if self._transport is None:
            return
        now = self._loop.time()
        if self._state == _HEAD and now - self._idle_since >= KEEPALIVE:
            self._transport.close()
            return
        self._timer = self._loop.call_at(max(now, self._idle_since) + KEEPALIVE, self._check_idle)

    def _pause(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def _done(self) -> None:
        """The request is answered and its body consumed: on to the next one."""
        self._state = _HEAD
        self._idle_since = self._loop.time()
        if self._close_after and self._transport is not None:
            self._transport.close()
            return
        self._resume()

    # ------------------------------------------------------------ answers

    def _respond(
        self, status: int, fields: list[tuple[bytes, bytes]], body: bytes, length: int = -1
    ) -> None:
        """Write a response head, and ``body`` or, ``length`` given, none (its bytes follow)."""
        if self._transport is not None and not self._transport.is_closing():
            size = len(body) if length < 0 else length
            head = response_head(status, fields, size, self._close_after)
            self._transport.write(head + body)

    def _refuse(self, method: str, piece_id: str, e: SkymeshError) -> None:
        """What ``error_middleware`` and ``_refusal_middleware`` do with an error."""
        node = self._node
        node.counters.refusals[e.code] += 1
        path = f"/v1/pieces/{piece_id}"
        if e.status < 500:
            log.info("refused %s %s: %s %s", method, path, e.status, e)
        else:
            log.warning("%s %s -> %s %s", method, path, e.code, e)
        self._count(method, e.status)
        self._respond(e.status, [_JSON], _encode(ErrorBody(code=e.code, message=e.message)))

    def _fail(self, method: str, e: BaseException) -> None:
        """An unexpected error: logged, a 500 as aiohttp answers one, and the connection closed."""
        log.error("error handling %s of a piece", method, exc_info=e)
        self._count(method, 500)
        self._close_after = True
        self._respond(
            500,
            [(b"Content-Type", b"text/plain; charset=utf-8")],
            b"500 Internal Server Error\n\nServer got itself in trouble",
        )

    def _count(self, method: str, status: int) -> None:
        self._node.counters.requests[f"{method} {_ROUTE} {status}"] += 1

    # ------------------------------------------------------------ PUT

    def _put(self, req: FrontRequest) -> None:
        assert req.length is not None
        try:
            order = admit_put(self._node, req.order, req.piece_id, req.length)
        except SkymeshError as e:
            self._refuse("PUT", req.piece_id, e)
            self._skip(req.length)
            return
        except Exception as e:
            self._fail("PUT", e)
            self._skip(req.length)
            return
        self._start_body(req.length)
        self.task = self._loop.create_task(self._store(req, order))

    async def _store(self, req: FrontRequest, order: Order) -> None:
        # A failed write drops its buffer, which a disk thread may still be writing from.
        slab, self._slab = self._slab, None
        try:
            receipt = await store_piece(self._node, req.piece_id, order, self, req.length)
        except SkymeshError as e:
            self._refuse("PUT", req.piece_id, e)
        except Exception as e:
            self._fail("PUT", e)
        else:
            if slab is not None:
                self._front.give_slab(slab)
            self._count("PUT", 201)
            self._respond(201, [_JSON], _encode(receipt))
        finally:
            self.task = None
        if self._transport is None:
            return
        left = self._body_left if self._state == _BODY else 0
        self._ready.clear()
        self._unread = 0
        self._skip(left)
        self._process()

    def _start_body(self, length: int) -> None:
        """Receive ``length`` body bytes into slabs, starting with those buffered."""
        size = length if length <= BODY_SLAB else STREAM_SLAB
        if length <= BODY_SLAB:  # one buffer: pooled
            self._slab = self._front.take_slab(size)
            cur = memoryview(self._slab)[:size]
        else:  # streamed: a buffer per slab, held by the store until written
            cur = memoryview(bytearray(size))
        take = min(self._hi - self._lo, size)
        cur[:take] = self._view[self._lo : self._lo + take]
        self._lo += take
        self._cur, self._filled = cur, take
        self._body_left = length - take
        self._unread = length
        self._lost = None
        self._ready.clear()
        self._state = _BODY
        if take == size:
            self._slab_full()

    def _slab_full(self) -> None:
        self._ready.append(self._cur)
        self._wake()
        if self._body_left:
            self._cur = memoryview(bytearray(min(self._body_left, STREAM_SLAB)))
            self._filled = 0
            if len(self._ready) >= QUEUED_SLABS:
                self._pause()
        else:
            self._cur = memoryview(b"")
            self._state = _BUSY

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> FrontProtocol:
        return self

    async def __anext__(self) -> memoryview:
        """The body's next slab, for the store (``store.write`` iterates the connection)."""
        while not self._ready:
            if not self._unread:
                raise StopAsyncIteration
            if self._lost is not None:
                raise BadRequest(f"request body ended early: {self._lost}")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._ready.popleft()
        self._unread -= len(chunk)
        self._node.counters.bytes_received += len(chunk)
        if self._paused and self._state == _BODY and len(self._ready) < QUEUED_SLABS:
            self._resume()
        return chunk

    def _skip(self, n: int) -> None:
        """Discard the next ``n`` body bytes (a refused or failed PUT), then go on."""
        take = min(self._hi - self._lo, n)
        self._lo += take
        self._drain_left = n - take
        if self._drain_left:
            self._state = _DRAIN
            self._resume()
        else:
            self._done()

    # ------------------------------------------------------------ GET

    def _get(self, req: FrontRequest) -> None:
        try:
            read = open_read(self._node, req.piece_id, req.order, req.range)
        except SkymeshError as e:
            self._refuse("GET", req.piece_id, e)
            self._done()
            return
        except Exception as e:
            self._fail("GET", e)
            self._done()
            return
        if read.status == 416:
            self._count("GET", 416)
            body = _encode(unsatisfiable_body(read))
            self._respond(416, [_JSON, (b"Content-Range", read.content_range.encode())], body)
            self._done()
            return
        self._count("GET", read.status)
        fields = _OCTETS
        if read.status == 206:
            fields = [*_OCTETS, (b"Content-Range", read.content_range.encode())]
        count = read.stop - read.start
        self._respond(read.status, fields, b"", count)
        sent = 0
        transport = self._transport
        if count and transport is not None:
            sent = sendfile_now(transport, read.file.fileno(), read.start, count)
        if sent == count or transport is None:
            read.file.close()
            if sent == count:
                self._node.counters.bytes_sent += count
            self._done()
            return
        self._state = _BUSY
        self.task = self._loop.create_task(self._send_rest(read, read.start + sent, count - sent))

    async def _send_rest(self, read: PieceRead, start: int, count: int) -> None:
        """What the socket did not take at once, by the loop's ``sendfile``."""
        f: IO[Any] = read.file
        try:
            with f:
                if self._transport is None or self._transport.is_closing():
                    raise ConnectionResetError("connection lost")
                await self._loop.sendfile(self._transport, f, start, count)
            self._node.counters.bytes_sent += read.stop - read.start
        except ConnectionError as e:
            log.debug("reader of a piece went away: %s", e)
            return
        except Exception as e:
            log.error("error sending a piece", exc_info=e)
            self.close()
            return
        finally:
            self.task = None
        self._done()
        self._process()
