"""The web consoles' files and the aiohttp handler that serves them.

Two consoles ship as hand-written HTML, CSS and JavaScript inside the package (no build
step, nothing fetched from a CDN): the administrator's, served by the coordinator at
``/console/``, and a tenant's, served by the gateway at ``/_console/``. Each page talks to
the role that served it through that role's own API only: the coordinator's admin JSON
routes with the admin token, the gateway's S3 API signed with SigV4 in the browser, and
for the project's keys and usage the gateway's small console API under
``/_console/api/``, signed the same way (``skymesh.gateway.s3.console_api``;
``docs/operations.md`` "Web console").

A console is a folder of ``static/``; a name not found there is looked up in
``static/common/`` (the stylesheet and the chart drawing both consoles share).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Literal

from aiohttp import web

Console = Literal["admin", "tenant"]

#: Where a gateway serves the tenant console on its S3 port (``skymesh.gateway.console``);
#: the coordinator's console path is declared with its routes (``wire.routes.CONSOLE_PATH``).
TENANT_PATH = "/_console/"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

#: Same-origin only: the pages load nothing from elsewhere, run no inline script, and
#: talk only to the role that served them; never framed (the admin page holds a token).
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self';"
        " script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def asset(console: Console, name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of ``name`` in ``console`` ("" is its index page); None
    for anything that is not one of the shipped files (no paths, no dotfiles)."""
    name = name or "index.html"
    if "/" in name or "\\" in name or name.startswith(".") or "." not in name:
        return None
    kind = _TYPES.get(name[name.rindex(".") :])
    if kind is None:
        return None
    static = resources.files(__package__).joinpath("static")
    for folder in (console, "common"):
        path = static.joinpath(folder, name)
        if path.is_file():
            return path.read_bytes(), kind
    return None


def response(console: Console, name: str) -> web.Response:
    """The answer to ``GET <console prefix><name>``: the file, or a plain 404 (aiohttp
    leaves the body out of an answer to HEAD)."""
    found = asset(console, name)
    if found is None:
        return web.Response(status=404, text="no such console page\n", headers=HEADERS)
    body, kind = found
    resp = web.Response(body=body, headers=HEADERS)
    resp.content_type, _, charset = kind.partition("; charset=")
    if charset:
        resp.charset = charset
    return resp


def handler(console: Console) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler for a route whose ``{name}`` part names the file."""

    async def serve(request: web.Request) -> web.StreamResponse:
        return response(console, request.match_info.get("name", ""))

    return serve
