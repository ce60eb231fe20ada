"""The failover RPC client's retry rules, against real small aiohttp servers.

A call goes on to the next coordinator when its connection never opened; after a
request may have arrived (a dropped connection, a timeout, a 503) only when its
route is declared idempotent. What cannot be retried reaches the caller as
``Unavailable`` (503), never as an error that blames the request.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from skymesh import errors
from skymesh.failover import Endpoints, parse_urls
from skymesh.rpc import RpcClient, json_response
from skymesh.wire.base import Empty
from skymesh.wire.routes import Caller, Route

SAFE = Route("POST", "/call", Empty, Empty, Caller.ANYONE, idempotent=True)
ONCE = Route("POST", "/call", Empty, Empty, Caller.ANYONE, idempotent=False)

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def answer(_request: web.Request) -> web.StreamResponse:
    return json_response(Empty())


async def drop(request: web.Request) -> web.StreamResponse:
    """Read the request, then reset the connection unanswered (a coordinator killed
    after it may have done the work)."""
    await request.read()
    assert request.transport is not None
    request.transport.abort()
    await asyncio.sleep(1)
    raise AssertionError("the connection was dropped")


async def unavailable(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=503, text="overloaded")


async def hang(_request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(30)
    return json_response(Empty())


class Server:
    """One aiohttp server on loopback that behaves as told and counts its calls."""

    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.calls = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        return await self.behaviour(request)


@asynccontextmanager
async def servers(*behaviours: Behaviour) -> AsyncIterator[list[Server]]:
    runners, out = [], []
    try:
        for b in behaviours:
            server = Server(b)
            app = web.Application()
            app.router.add_post("/call", server.handle)
            runner = web.AppRunner(app, handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            out.append(server)
        yield out
    finally:
        for r in runners:
            await r.cleanup()


def closed_port() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def client(urls: list[str], session: aiohttp.ClientSession, timeout: float = 5.0) -> RpcClient:
    # start=0: the first URL listed is asked first
    limits = aiohttp.ClientTimeout(total=timeout, sock_connect=1.0)
    return RpcClient(Endpoints(urls, timeout=limits, start=0), session)


async def test_a_refused_connection_goes_to_the_next_url_even_for_a_route_not_to_repeat() -> None:
    dead = closed_port()
    async with servers(answer) as (live,), aiohttp.ClientSession() as session:
        rpc = client([dead, live.url], session)
        assert await rpc.send(ONCE, Empty()) == Empty()
        assert live.calls == 1
        assert rpc.endpoints.is_down(dead)
        # the next calls start at the healthy URL: the dead one is tried last
        assert rpc.endpoints.plan() == [live.url, dead]
        assert rpc.endpoints.answered[live.url] == 1


async def test_a_route_not_to_repeat_is_not_sent_again_after_it_was_sent() -> None:
    async with servers(drop, answer) as (lost, other), aiohttp.ClientSession() as session:
        rpc = client([lost.url, other.url], session)
        with pytest.raises(errors.Unavailable, match="may have been done"):
            await rpc.send(ONCE, Empty())
        assert (lost.calls, other.calls) == (1, 0)


async def test_an_idempotent_route_is_sent_again_after_a_dropped_connection() -> None:
    async with servers(drop, answer) as (lost, other), aiohttp.ClientSession() as session:
        rpc = client([lost.url, other.url], session)
        assert await rpc.send(SAFE, Empty()) == Empty()
        assert (lost.calls, other.calls) == (1, 1)


async def test_503_is_retried_elsewhere_only_for_an_idempotent_route() -> None:
    async with servers(unavailable, answer) as (busy, other), aiohttp.ClientSession() as session:
        with pytest.raises(errors.Unavailable):
            await client([busy.url, other.url], session).send(ONCE, Empty())
        assert other.calls == 0
        assert await client([busy.url, other.url], session).send(SAFE, Empty()) == Empty()
        assert (busy.calls, other.calls) == (2, 1)


async def test_a_hung_server_costs_one_attempt_timeout() -> None:
    async with servers(hang, answer) as (hung, other), aiohttp.ClientSession() as session:
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert (
            await client([hung.url, other.url], session, timeout=0.3).send(SAFE, Empty()) == Empty()
        )
        with pytest.raises(errors.Unavailable):
            await client([hung.url, other.url], session, timeout=0.3).send(ONCE, Empty())
        assert loop.time() - began < 3
        assert other.calls == 1


async def test_every_url_down_is_unavailable() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(errors.Unavailable):
            await client([closed_port(), closed_port()], session).send(SAFE, Empty())


def test_calls_are_spread_over_healthy_urls() -> None:
    endpoints = Endpoints(["http://a", "http://b/", "http://c"], start=0)
    assert [endpoints.plan()[0] for _ in range(4)] == [
        "http://a",
        "http://b",
        "http://c",
        "http://a",
    ]
    assert parse_urls("http://a, http://b http://a") == ["http://a", "http://b"]


def test_sticky_endpoints_stay_on_the_url_that_answered_until_it_fails() -> None:
    """A node's calls: a join's identity check and its join reach one coordinator."""
    endpoints = Endpoints(["http://a", "http://b", "http://c"], start=1, sticky=True)
    assert [endpoints.plan()[0] for _ in range(3)] == ["http://b"] * 3
    endpoints.failed("http://b")
    plan = endpoints.plan()
    assert plan[0] == "http://c" and plan[-1] == "http://b"
    endpoints.succeeded("http://c")
    assert [endpoints.plan()[0] for _ in range(2)] == ["http://c"] * 2
