"""Network distance without netem: a TCP proxy that holds every chunk for half a round trip.

This machine's kernel has no netem qdisc (``tc qdisc ... netem``: "Specified qdisc
kind is unknown"; see /work/shared/PITFALLS.md), so `skymesh up --distance` puts one
of these between a gateway and each node it may route to. The proxy listens on a
loopback port and forwards to its target; each chunk read from either side is
written to the other at ``arrival + rtt / 2``, so a request and its answer cross one
round trip, as they would between two data centres. A new connection pays one more
round trip before its first byte reaches the target (the TCP handshake a real link
costs), so a cold connection costs 2 RTT and a kept-alive one 1 RTT.

Streams stay streams: each direction has its own reader and writer joined by a
bounded queue, so order is kept, memory is bounded (a slow reader stalls its
sender, as TCP's window would), bodies are never buffered whole, and connections
never wait for each other. An end of stream is passed on (also after the delay) as
a half-close, so either side may finish sending and still read; the proxy closes a
connection when both directions have ended, or at once when either side fails.
Bandwidth is not limited: only latency is simulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
QUEUE_CHUNKS = 64  # in flight per direction: at most 4 MiB held per connection and way


class DelayProxy:
    """Forward ``host:port`` (0: any free port) to ``target_host:target_port`` with ``rtt`` s."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        rtt: float,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        handshake: bool = True,
    ) -> None:
        if rtt < 0:
            raise ValueError(f"rtt must be >= 0, got {rtt}")
        self.target_host = target_host
        self.target_port = target_port
        self.rtt = rtt
        self.host = host
        self.port = port
        self.handshake = handshake
        self.connections = 0  # accepted so far
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        """The proxy's base URL, for HTTP clients."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> DelayProxy:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> DelayProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        upstream_w: asyncio.StreamWriter | None = None
        try:
            try:
                upstream_r, upstream_w = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
            except OSError as e:
                # a refused connection is news that takes a round trip to arrive
                log.debug("delay proxy: %s:%s refused: %s", self.target_host, self.target_port, e)
                await asyncio.sleep(max(0.0, accepted + self.rtt - loop.time()))
                return
            one_way = self.rtt / 2
            first = accepted + (self.rtt if self.handshake else 0.0)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_pipe(client_r, upstream_w, one_way, first))
                tg.create_task(_pipe(upstream_r, client_w, one_way, accepted))
        except* (OSError, EOFError) as group:
            log.debug("delay proxy: connection ended: %s", group.exceptions[0])
        finally:
            for w in (client_w, upstream_w):
                if w is not None:
                    w.close()
            for w in (client_w, upstream_w):
                if w is not None:
                    with contextlib.suppress(OSError, asyncio.CancelledError):
                        await w.wait_closed()
            self._tasks.discard(task)


async def _pipe(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float, not_before: float
) -> None:
    """Copy ``src`` to ``dst``, each chunk (and the end) ``delay`` s after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

    async def read() -> None:
        while True:
            chunk = await src.read(CHUNK)
            await queue.put((max(loop.time(), not_before) + delay, chunk))
            if not chunk:  # end of stream: passed on like data, in order
                return

    async def write() -> None:
        while True:
            due, chunk = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                if dst.can_write_eof():
                    dst.write_eof()
                return
            dst.write(chunk)
            await dst.drain()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(read())
        tg.create_task(write())
