"""The delay proxy against real loopback servers: the delay it adds, bytes, concurrency, ends."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from skymesh.network.delay import DelayProxy

# upper bounds are loose: the machine is shared and the event loop can lag
EARLY = 0.005  # s
SLACK = 0.15

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while chunk := await r.read(65536):
            w.write(chunk)
            await w.drain()
    finally:
        w.close()


async def _serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server, port = await _serve(_echo)
    async with server:
        yield port


async def _exchange(r: asyncio.StreamReader, w: asyncio.StreamWriter, data: bytes) -> float:
    started = time.perf_counter()
    w.write(data)
    await w.drain()
    assert await r.readexactly(len(data)) == data
    return time.perf_counter() - started


async def test_a_round_trip_costs_the_rtt_and_a_new_connection_one_more(echo_port: int) -> None:
    rtt = 0.1
    async with DelayProxy("127.0.0.1", echo_port, rtt) as proxy:
        r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
        cold = await _exchange(r, w, b"ping")
        warm = [await _exchange(r, w, b"ping %d" % i) for i in range(3)]
        w.close()
        await w.wait_closed()
    assert 2 * rtt <= cold < 2 * rtt + SLACK
    for t in warm:
        assert rtt <= t < rtt + SLACK


async def test_without_handshake_the_first_exchange_costs_one_rtt(echo_port: int) -> None:
    rtt = 0.08
    async with DelayProxy("127.0.0.1", echo_port, rtt, handshake=False) as proxy:
        r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
        t = await _exchange(r, w, b"x")
        w.close()
    assert rtt <= t < rtt + SLACK


async def test_bytes_arrive_intact_and_in_order_both_ways(echo_port: int) -> None:
    data = os.urandom(6 * 1024 * 1024 + 123)  # more than the queue holds: backpressure too
    async with DelayProxy("127.0.0.1", echo_port, 0.02) as proxy:
        r, w = await asyncio.open_connection("127.0.0.1", proxy.port)

        async def send() -> None:
            for i in range(0, len(data), 100_000):
                w.write(data[i : i + 100_000])
                await w.drain()
            w.write_eof()

        sender = asyncio.create_task(send())
        got = await r.read(-1)  # until the echo server's end, passed back through the proxy
        await sender
        w.close()
    assert len(got) == len(data)
    assert got == data


async def test_concurrent_connections_are_not_serialised(echo_port: int) -> None:
    rtt = 0.2
    async with DelayProxy("127.0.0.1", echo_port, rtt) as proxy:

        async def one(i: int) -> float:
            r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
            try:
                return await _exchange(r, w, b"conn %d" % i)
            finally:
                w.close()

        started = time.perf_counter()
        times = await asyncio.gather(*(one(i) for i in range(20)))
        elapsed = time.perf_counter() - started
        assert proxy.connections == 20
    # asyncio may run a timer up to its clock resolution early: a few ms of leeway
    assert min(times) >= 2 * rtt - EARLY
    # serialised, 20 cold exchanges would take 20 x 2 RTT = 8 s
    assert elapsed < 2 * rtt + 3 * SLACK


async def test_a_half_close_is_passed_on_after_the_delay_and_the_answer_still_flows() -> None:
    rtt = 0.1
    saw_eof_after: list[float] = []
    started = 0.0

    async def count_then_answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        body = await r.read(-1)  # until the client's half-close
        saw_eof_after.append(time.perf_counter() - started)
        w.write(b"got %d bytes" % len(body))
        await w.drain()
        w.close()

    server, port = await _serve(count_then_answer)
    async with server, DelayProxy("127.0.0.1", port, rtt, handshake=False) as proxy:
        r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
        started = time.perf_counter()
        w.write(b"a" * 1000)
        w.write_eof()  # done sending; still reading
        answer = await r.read(-1)
        elapsed = time.perf_counter() - started
        w.close()
    assert answer == b"got 1000 bytes"
    assert saw_eof_after[0] >= rtt / 2 - EARLY
    assert rtt <= elapsed < rtt + SLACK


async def test_a_refused_target_closes_the_connection_after_a_round_trip() -> None:
    server, port = await _serve(_echo)
    server.close()
    await server.wait_closed()  # nothing listens on `port` now
    rtt = 0.1
    async with DelayProxy("127.0.0.1", port, rtt) as proxy:
        r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
        started = time.perf_counter()
        w.write(b"hello")
        assert await r.read(-1) == b""
        elapsed = time.perf_counter() - started
        w.close()
    assert rtt * 0.9 <= elapsed < rtt + SLACK


async def test_close_drops_open_connections(echo_port: int) -> None:
    proxy = await DelayProxy("127.0.0.1", echo_port, 0.01).start()
    r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
    await _exchange(r, w, b"x")
    await asyncio.wait_for(proxy.close(), 5)
    assert await asyncio.wait_for(r.read(-1), 5) == b""
    w.close()


def test_a_negative_rtt_is_refused() -> None:
    with pytest.raises(ValueError, match="rtt"):
        DelayProxy("127.0.0.1", 1, -0.1)
