"""The tenant web console on the S3 port, at ``/_console/``.

On the S3 port every path names a bucket and key, so the console lives under a path that
cannot be a bucket: bucket names hold no ``_`` (``checks.py``: ``[a-z0-9.-]``). On a
virtual-hosted bucket's host (``<bucket>.<suffix>``) the same path is an object key of
that bucket and is left to S3, as is every signed request (an S3 client's). The page then
speaks S3 to this gateway, signed in the browser (``skymesh.console``; docs/operations.md
"Web console"), and the console's own JSON API for keys and usage, signed the same way
(``s3/console_api.py``, under ``/_console/api/``).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from skymesh import console

PREFIX = console.TENANT_PATH
API_PREFIX = PREFIX + "api/"  # the console's JSON API (``s3/console_api.py``), always signed


def claims(request: web.Request, base_hosts: Sequence[str]) -> bool:
    """Whether ``request`` asks for a console page rather than S3: an unsigned GET or HEAD
    (a browser's); a signed one is an S3 client's, answered as S3 answers it."""
    if request.method not in ("GET", "HEAD") or "Authorization" in request.headers:
        return False
    if any(k.lower() in ("x-amz-signature", "signature") for k in request.query):
        return False
    path = request.path
    if (path != PREFIX[:-1] and not path.startswith(PREFIX)) or path.startswith(API_PREFIX):
        return False
    return not virtual_hosted(request, base_hosts)


def virtual_hosted(request: web.Request, base_hosts: Sequence[str]) -> bool:
    """Whether ``request`` names a bucket by its host (``<bucket>.<suffix>``)."""
    host = request.host.rsplit(":", 1)[0].lower()
    return any(host.endswith("." + suffix.lower()) for suffix in base_hosts)


def serve(request: web.Request) -> web.Response:
    """The page or asset a claimed request names; the bare prefix redirects to the page."""
    if request.path == PREFIX[:-1]:
        raise web.HTTPFound(PREFIX)
    return console.response("tenant", request.path[len(PREFIX) :])
