"""The coordinator's HTTP edge: mounts routes of ``wire.routes``, checking their caller first.

Each subsystem gives an operation per route: ``(call, body) -> answer``. The table
checks who is calling (``Route.caller``) before the body is read, decodes the body as
the route's request type, and encodes the answer; errors leave through
:func:`skymesh.rpc.error_middleware`. Nothing is mounted that ``wire.routes`` does not
declare, so the route list there is the whole API.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from skymesh.coordinator.auth import Auth
from skymesh.errors import BadRequest, Forbidden, Unauthorized, Unavailable
from skymesh.rpc import MAX_RPC_BODY, Handler, error_middleware, json_response, read_json
from skymesh.wire.base import Empty
from skymesh.wire.batch import BatchOrder
from skymesh.wire.routes import NODE_BODY_LIMIT, Caller, Route

#: NODE bodies (joins, heartbeats, drains) read at once; past it, 503 until one ends.
NODE_BODIES_AT_ONCE = 64

Req = TypeVar("Req")
Resp = TypeVar("Resp")


@dataclass(frozen=True)
class Call:
    """Who called, as the route's caller check found it."""

    request: web.Request
    project_id: str = ""  # the calling project (PROJECT, PROJECT_OR_ADMIN, BATCH_ORDER)
    admin: bool = False
    order: BatchOrder | None = None  # BATCH_ORDER: the verified order


#: ``(call, body) -> answer``; an answer of None is sent as ``{}``.
Operation = Callable[[Call, Any], Awaitable[Any]]
#: Checks a batch order header and returns the order (raises ``Forbidden`` otherwise).
OrderCheck = Callable[[web.Request], Awaitable[BatchOrder]]
#: Told of each answered request: ``(method, route path, status, seconds)``.
Observe = Callable[[str, str, int, float], None]

#: How a route answering ``bytes`` sends them: Prometheus's text format (``GET /metrics``).
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RouteTable:
    """The coordinator's aiohttp application, filled one declared route at a time."""

    def __init__(self, auth: Auth, order_check: OrderCheck, observe: Observe | None = None) -> None:
        self.auth = auth
        self.order_check = order_check
        self.observe = observe
        middlewares = [error_middleware] if observe is None else [self._count, error_middleware]
        self.app = web.Application(middlewares=middlewares, client_max_size=MAX_RPC_BODY)
        self.mounted: list[tuple[str, str]] = []  # (method, path), in mount order
        self.pages: list[str] = []  # prefixes of static pages (add_pages)
        self._node_bodies = asyncio.Semaphore(NODE_BODIES_AT_ONCE)

    def add(self, route: Route[Req, Resp], op: Callable[[Call, Req], Awaitable[Resp]]) -> None:
        """Serve ``route`` with ``op``."""
        self._mount(route.method, route.path, route, op)

    def add_scoped(self, prefix: str, route: Route[Req, Resp], op: Operation) -> None:
        """Serve ``route`` again under ``prefix``, for callers holding a batch order."""
        self._mount(route.method, prefix + route.path, route, op, Caller.BATCH_ORDER)

    def _mount(
        self,
        method: str,
        path: str,
        route: Route[Any, Any],
        op: Operation,
        caller: Caller | None = None,
    ) -> None:
        who = caller or route.caller
        check = self._checker(who)
        kind = route.request if route.has_body else None
        node_body = who is Caller.NODE

        async def handle(request: web.Request) -> web.Response:
            call = await check(request)
            body: Any = None
            if kind is not None and node_body:
                body = await self._read_node_body(request, kind)
            elif kind is not None:
                body = await read_json(request, kind)
            result = await op(call, body)
            if isinstance(result, bytes):
                return web.Response(body=result, headers={"Content-Type": TEXT_CONTENT_TYPE})
            return json_response(Empty() if result is None else result)

        self.app.router.add_route(method, path, handle)
        self.mounted.append((method, path))

    def add_pages(self, prefix: str, serve: Handler) -> None:
        """Serve static pages (the web console) at ``prefix<name>``, and ``prefix`` without
        its slash as a redirect to it. No caller check: a page holds no data, and every
        call it makes carries its own credentials to a declared route."""
        self.app.router.add_get(prefix + "{name:[^/]*}", serve)
        bare = prefix.rstrip("/")

        async def redirect(_request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(prefix)

        self.app.router.add_get(bare, redirect)
        self.pages.append(prefix)

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Tell ``observe`` of each request, by its route's declared path (not the path
        asked, whose ids would make a label per object)."""
        assert self.observe is not None
        started = time.perf_counter()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as e:
            status = e.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            self.observe(request.method, route, status, time.perf_counter() - started)

    async def _read_node_body(self, request: web.Request, kind: type[Req]) -> Req:
        """A NODE route's body: anyone may send one, so it is small and few are read at once."""
        if self._node_bodies.locked():
            raise Unavailable("too many node requests at once; try again shortly")
        async with self._node_bodies:
            return await read_json(request, kind, NODE_BODY_LIMIT)

    def _checker(self, caller: Caller) -> Callable[[web.Request], Awaitable[Call]]:
        auth = self.auth

        async def anyone(request: web.Request) -> Call:
            return Call(request)

        async def admin(request: web.Request) -> Call:
            auth.require_admin(request)
            return Call(request, admin=True)

        async def project(request: web.Request) -> Call:
            return Call(request, project_id=await auth.project_of(request))

        async def project_or_admin(request: web.Request) -> Call:
            try:
                auth.require_admin(request)
                return Call(request, admin=True)
            except (Unauthorized, Forbidden):
                pass
            try:
                return Call(request, project_id=await auth.project_of(request))
            except Unauthorized as e:
                raise Unauthorized(
                    f"neither the admin token nor a project's API key ({e.message})"
                ) from e

        async def batch_order(request: web.Request) -> Call:
            order = await self.order_check(request)
            return Call(request, project_id=order.project_id, order=order)

        checks: dict[Caller, Callable[[web.Request], Awaitable[Call]]] = {
            Caller.ANYONE: anyone,
            Caller.NODE: anyone,  # the body's signature is the operation's to check
            Caller.ADMIN: admin,
            Caller.PROJECT: project,
            Caller.PROJECT_OR_ADMIN: project_or_admin,
            Caller.BATCH_ORDER: batch_order,
        }
        return checks[caller]


def seconds_param(request: web.Request, name: str, default: float) -> float:
    """Query parameter ``name`` as unix seconds (``default`` when absent); BadRequest else."""
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be unix seconds, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise BadRequest(f"{name} must be finite unix seconds >= 0")
    return value
