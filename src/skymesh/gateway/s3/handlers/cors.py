"""CORS: the bucket's rules (Put/Get/DeleteBucketCors) and the preflight ``OPTIONS``.

The rules are stored by the coordinator as bucket configuration; matching is the
pure ``gateway/s3/cors.py``. Preflights carry no credentials (browsers send them
so), so the bucket's owner is found through the gateway's
:class:`~skymesh.gateway.s3.public.BucketDirectory`, whose short cache also serves
the CORS headers added to real responses (``app.py``).
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from skymesh.errors import SkymeshError
from skymesh.gateway.s3 import cors
from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.gateway.s3.handlers.small_body import read_small_body
from skymesh.gateway.s3.request import XML, S3Context, S3Request
from skymesh.gateway.s3.router import Endpoint
from skymesh.gateway.s3.xml import MAX_CORS_BODY, cors_xml, parse_cors


async def get_bucket_cors(req: S3Request) -> web.StreamResponse:
    config = await req.client.metainfo.bucket_config(req.bucket)
    if config.cors is None:
        raise s3_error("NoSuchCORSConfiguration", BucketName=req.bucket)
    return web.Response(body=cors_xml(config.cors), content_type=XML)


async def put_bucket_cors(req: S3Request) -> web.StreamResponse:
    body = await read_small_body(req, MAX_CORS_BODY)
    rules = parse_cors(body)
    cors.validate_rules(rules)
    await req.client.metainfo.put_bucket_cors(req.bucket, rules)
    if req.ctx.directory is not None:
        req.ctx.directory.forget(req.bucket)
    return web.Response(status=200)


async def delete_bucket_cors(req: S3Request) -> web.StreamResponse:
    await req.client.metainfo.put_bucket_cors(req.bucket, None)
    if req.ctx.directory is not None:
        req.ctx.directory.forget(req.bucket)
    return web.Response(status=204)


async def preflight(ctx: S3Context, request: web.Request, endpoint: Endpoint) -> web.Response:
    """Answer a browser's ``OPTIONS`` from the bucket's rules: 200 with the CORS headers,
    or 403 ``CORSResponse``."""
    origin = request.headers.get("Origin")
    if not origin:
        raise S3Error(
            "BadRequest", "Insufficient information. Origin request header needed.", status=400
        )
    method = request.headers.get("Access-Control-Request-Method")
    if not method or method not in cors.METHODS:
        raise S3Error(
            "BadRequest",
            f"Invalid Access-Control-Request-Method: {(method or 'null')[:32]}",
            status=400,
        )
    if not endpoint.bucket or ctx.directory is None:
        raise cors.cors_error("CORS is not enabled for this bucket.")
    owned = await ctx.directory.lookup(endpoint.bucket)
    if owned is None or not owned.config.cors:
        raise cors.cors_error("CORS is not enabled for this bucket.")
    headers = cors.preflight_headers(
        owned.config.cors,
        origin,
        method,
        cors.parse_header_list(request.headers.get("Access-Control-Request-Headers")),
    )
    return web.Response(status=200, headers=headers)


async def response_headers(ctx: S3Context, request: web.Request, bucket: str) -> dict[str, str]:
    """CORS headers for a real request with an ``Origin`` header (none on any failure:
    CORS only ever adds permissions a browser checks, so leaving them out is safe)."""
    origin = request.headers.get("Origin")
    if not origin or ctx.directory is None:
        return {}
    try:
        owned = await ctx.directory.lookup(bucket)
    except (SkymeshError, aiohttp.ClientError, TimeoutError):
        # the request itself will report coordinator trouble, if it matters
        return {}
    if owned is None or not owned.config.cors:
        return {}
    return cors.response_headers(owned.config.cors, origin, request.method)
