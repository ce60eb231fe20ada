"""JSON-over-HTTP plumbing shared by every role: one place that maps errors to the wire.

Servers raise :class:`~skymesh.errors.SkymeshError`; :func:`error_middleware`
turns it into the error's HTTP status and an :class:`ErrorBody`. Clients call
:meth:`RpcClient.call`, which turns an error answer back into the same exception
class by its code, so an error keeps its meaning across a hop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import msgspec
from aiohttp import web

from skymesh import errors
from skymesh.failover import Endpoints, may_retry, never_sent
from skymesh.wire.base import ErrorBody
from skymesh.wire.routes import Route

T = TypeVar("T")
Req = TypeVar("Req")
log = logging.getLogger(__name__)

JSON = "application/json"
MSGPACK = "application/msgpack"
MAX_RPC_BODY = 64 * 1024 * 1024
# How much of a body aiohttp buffers before it stops reading the socket (its default
# is 64 KiB, resumed at half that). Piece bodies are megabytes: at 64 KiB each
# piece would move in dozens of pause/resume rounds, each a syscall and a loop turn.
# Servers (``AppRunner(read_bufsize=...)``) and client sessions set it.
STREAM_BUFSIZE = 1024 * 1024

_json_encoder = msgspec.json.Encoder()

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class RedirectRefused(aiohttp.ClientResponseError):
    """A peer answered with a redirect, which is never followed."""


async def refuse_redirects(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """A client session middleware: a redirect answer fails the request, unfollowed.

    No skymesh role redirects, and aiohttp would follow one (for any method) to
    wherever it points: a node could turn the coordinator's or a gateway's request
    into one to an internal URL. Being a ``ClientError``, the refusal reads as the
    peer being unusable wherever the caller handles an unreachable one.
    """
    response = await handler(request)
    if response.status in REDIRECT_STATUSES:
        location = response.headers.get("Location", "")[:200]
        response.release()
        raise RedirectRefused(
            response.request_info,
            (),
            status=response.status,
            message=f"answered with a redirect to {location!r}, not followed",
        )
    return response


#: ``aiohttp.ClientSession(middlewares=NO_REDIRECTS)``: every session that reaches nodes.
NO_REDIRECTS = (refuse_redirects,)


def _error_classes() -> dict[str, type[errors.SkymeshError]]:
    out: dict[str, type[errors.SkymeshError]] = {}
    stack: list[type[errors.SkymeshError]] = [errors.SkymeshError]
    while stack:
        cls = stack.pop()
        out.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return out


def error_from_body(status: int, body: ErrorBody) -> errors.SkymeshError:
    """The exception an error answer stands for (by code, else by HTTP status)."""
    cls = _error_classes().get(body.code)
    if cls is None:
        by_status = {
            400: errors.BadRequest,
            401: errors.Unauthorized,
            403: errors.Forbidden,
            404: errors.NotFound,
            409: errors.Conflict,
            412: errors.PreconditionFailed,
            413: errors.TooLarge,
            503: errors.Unavailable,
            507: errors.InsufficientStorage,
        }
        cls = by_status.get(status, errors.SkymeshError)
    return cls(body.message, code=body.code, status=status)


# ---------------------------------------------------------------- server side


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_json_encoder.encode(value), status=status, content_type=JSON)


def error_response(err: errors.SkymeshError) -> web.Response:
    return json_response(ErrorBody(code=err.code, message=err.message), status=err.status)


async def read_json(request: web.Request, kind: type[T], limit: int | None = None) -> T:
    """Decode the request body as ``kind``; a malformed body is a ``BadRequest``.

    ``limit`` (default: the request's ``client_max_size``) caps the body: one declared
    longer is refused before a byte of it is read (aiohttp itself would read up to its
    limit first, for a caller that may not even be authenticated); one without a
    declared length stops at the limit. msgspec raises RecursionError for values
    nested past Python's recursion limit (an unknown field is skipped by recursing
    into it): such a body is malformed, not a crash.
    """
    limit = limit or request.client_max_size
    if limit and request.content_length is not None and request.content_length > limit:
        raise _too_large(request.content_length, limit)
    if limit and limit < request.client_max_size:
        data = bytearray()
        while chunk := await request.content.read(64 * 1024):
            data += chunk
            if len(data) > limit:
                raise _too_large(len(data), limit)
        raw = bytes(data)
    else:
        raw = await request.read()
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
        raise errors.BadRequest(f"malformed {getattr(kind, '__name__', 'request')}: {e}") from e


def _too_large(size: int, limit: int) -> errors.TooLarge:
    return errors.TooLarge(
        f"a body of {size} bytes or more; at most {limit} are read", code="RequestEntityTooLarge"
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.SkymeshError as e:
        if e.status >= 500:
            log.warning("%s %s -> %s %s", request.method, request.path, e.code, e)
        return error_response(e)
    except web.HTTPException as e:
        if e.status >= 400:
            code = e.reason.replace(" ", "")
            return json_response(ErrorBody(code=code, message=e.reason), status=e.status)
        raise


# ---------------------------------------------------------------- client side


class RpcClient:
    """Calls a server's JSON RPCs over a pooled aiohttp session.

    ``base_url`` is one URL, several (a list, or one string separated by commas), or
    an :class:`~skymesh.failover.Endpoints` shared with other clients: with several,
    calls are spread over them and an attempt that fails goes on to the next when
    :func:`~skymesh.failover.may_retry` allows (see :mod:`skymesh.failover`).
    """

    def __init__(
        self,
        base_url: str | Sequence[str] | Endpoints,
        session: aiohttp.ClientSession,
        headers: dict[str, str] | None = None,
    ):
        self.endpoints = base_url if isinstance(base_url, Endpoints) else Endpoints(base_url)
        self.session = session
        self.headers = headers or {}

    @property
    def base_url(self) -> str:
        """The first URL (for messages; calls may go to any of ``endpoints``)."""
        return self.endpoints.first

    async def send(
        self,
        route: Route[Req, T],
        body: Req,
        *,
        params: dict[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> T:
        """Call a declared route: its method, its path (``params`` fill ``{name}``), its types.

        With several URLs, a route declared ``idempotent`` may be sent again to another
        after a timeout, a dropped connection or a 502/503/504; any route after a
        connection that never opened."""
        path = route.url_path(params)
        if query:
            path += "?" + urlencode(query)
        raw = _json_encoder.encode(body) if body is not None else b""
        return await self.request(
            route.method, path, route.response, body=raw, idempotent=route.idempotent
        )

    async def call(self, path: str, request: Any, response_type: type[T]) -> T:
        """``POST path`` with a JSON body: for node routes, which are not in ``wire.routes``."""
        body = _json_encoder.encode(request) if request is not None else b""
        return await self.request("POST", path, response_type, body=body)

    async def request(
        self,
        method: str,
        path: str,
        response_type: type[T],
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = False,
    ) -> T:
        """``method path`` with ``body`` (JSON unless ``headers`` say otherwise).

        ``idempotent``: the call is safe to repeat on another URL after it may have
        reached the first (else only when it certainly did not)."""
        headers = {"Content-Type": JSON, **self.headers, **(headers or {})}
        endpoints = self.endpoints
        # per attempt: a hung replica costs this much before the next is asked
        timeout = endpoints.timeout or self.session.timeout
        plan = endpoints.plan()
        for i, base in enumerate(plan):
            last = i == len(plan) - 1
            try:
                async with self.session.request(
                    method, base + path, data=body, headers=headers, timeout=timeout
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                endpoints.failed(base)
                if not last and may_retry(idempotent=idempotent, err=e):
                    log.info(
                        "%s %s on %s failed (%s: %s); trying %s",
                        method,
                        path,
                        base,
                        type(e).__name__,
                        e,
                        plan[i + 1],
                    )
                    continue
                outcome = "" if never_sent(e) or idempotent else "; it may have been done"
                raise errors.Unavailable(f"{base} unreachable: {_reason(e)}{outcome}") from e
            endpoints.succeeded(base)  # it answered: reachable, whatever it said
            if status >= 400:
                try:
                    err = msgspec.json.decode(raw, type=ErrorBody)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    err = ErrorBody(
                        code="", message=raw[:200].decode(errors="replace") or str(status)
                    )
                if not last and may_retry(idempotent=idempotent, status=status):
                    log.info(
                        "%s %s on %s answered %d; trying %s",
                        method,
                        path,
                        base,
                        status,
                        plan[i + 1],
                    )
                    continue
                raise error_from_body(status, err)
            try:
                return msgspec.json.decode(raw, type=response_type)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise errors.SkymeshError(f"bad answer from {base}{path}: {e}") from e
        raise AssertionError("unreachable: a plan has at least one URL")


def _reason(e: BaseException) -> str:
    """Why a call failed, never empty: a timeout (a peer gone silent, as behind a cut
    link) has no message of its own, and "unreachable: " alone tells an operator nothing."""
    if str(e):
        return str(e)
    return "no answer in time" if isinstance(e, TimeoutError) else type(e).__name__
