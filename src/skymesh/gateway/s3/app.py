"""The S3 front door: route, authenticate, dispatch to one handler per operation, map errors.

Every request is parsed into an :class:`Endpoint` once (``router.route``), its
signature checked (``sigv2.authenticate``: SigV4, or SigV2 when
``GatewayConfig.sigv2`` allows it), and then handed to the handler for
that operation. Errors of any kind leave here as S3 XML with the right code and
status; nothing else in the gateway formats an error.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

from aiohttp import web

from skymesh.client.client import Client
from skymesh.config import Credential
from skymesh.errors import SkymeshError
from skymesh.gateway.s3.errors import S3Error, from_skymesh_error, s3_error
from skymesh.gateway.s3.handlers import (
    acl,
    attributes,
    bucket,
    copy,
    cors,
    encryption,
    lifecycle,
    listing,
    multipart,
    objects,
    tagging,
)
from skymesh.gateway.s3.public import BucketDirectory
from skymesh.gateway.s3.request import XML, Handler, S3Context, S3Request
from skymesh.gateway.s3.router import Endpoint, Op, route
from skymesh.gateway.s3.sigv2 import authenticate
from skymesh.gateway.s3.sigv4 import SigV4Request, parse_query
from skymesh.gateway.s3.xml import error_xml

log = logging.getLogger(__name__)

#: The handler of each operation skymesh implements; any other answers NotImplemented.
#: OPTIONS (a CORS preflight, never signed) is answered before authentication instead.
HANDLERS: Mapping[Op, Handler] = {
    Op.ListBuckets: bucket.list_buckets,
    Op.CreateBucket: bucket.create_bucket,
    Op.HeadBucket: bucket.head_bucket,
    Op.DeleteBucket: bucket.delete_bucket,
    Op.GetBucketLocation: bucket.get_bucket_location,
    Op.GetBucketVersioning: bucket.get_bucket_versioning,
    Op.PutBucketVersioning: bucket.put_bucket_versioning,
    Op.ListObjectVersions: listing.list_object_versions,
    Op.ListObjects: listing.list_objects_v1,
    Op.ListObjectsV2: listing.list_objects_v2,
    Op.PutObject: objects.put_object,
    Op.GetObject: objects.get_object,
    Op.HeadObject: objects.head_object,
    Op.GetObjectAttributes: attributes.get_object_attributes,
    Op.DeleteObject: objects.delete_object,
    Op.DeleteObjects: objects.delete_objects,
    Op.CopyObject: copy.copy_object,
    Op.CreateMultipartUpload: multipart.create_multipart_upload,
    Op.UploadPart: multipart.upload_part,
    Op.UploadPartCopy: copy.upload_part_copy,
    Op.CompleteMultipartUpload: multipart.complete_multipart_upload,
    Op.AbortMultipartUpload: multipart.abort_multipart_upload,
    Op.ListParts: multipart.list_parts,
    Op.ListMultipartUploads: multipart.list_multipart_uploads,
    Op.GetBucketAcl: acl.get_bucket_acl,
    Op.PutBucketAcl: acl.put_bucket_acl,
    Op.GetObjectAcl: acl.get_object_acl,
    Op.PutObjectAcl: acl.put_object_acl,
    Op.GetObjectTagging: tagging.get_object_tagging,
    Op.PutObjectTagging: tagging.put_object_tagging,
    Op.DeleteObjectTagging: tagging.delete_object_tagging,
    Op.GetBucketTagging: tagging.get_bucket_tagging,
    Op.PutBucketTagging: tagging.put_bucket_tagging,
    Op.DeleteBucketTagging: tagging.delete_bucket_tagging,
    Op.GetBucketCors: cors.get_bucket_cors,
    Op.PutBucketCors: cors.put_bucket_cors,
    Op.DeleteBucketCors: cors.delete_bucket_cors,
    Op.GetBucketLifecycleConfiguration: lifecycle.get_bucket_lifecycle,
    Op.PutBucketLifecycleConfiguration: lifecycle.put_bucket_lifecycle,
    Op.DeleteBucketLifecycle: lifecycle.delete_bucket_lifecycle,
    Op.GetBucketEncryption: encryption.get_bucket_encryption,
    Op.PutBucketEncryption: encryption.put_bucket_encryption,
    Op.DeleteBucketEncryption: encryption.delete_bucket_encryption,
}

#: The CORS headers a request earned, added just before its answer's headers go
CORS_KEY = web.RequestKey("skymesh_cors_headers", dict[str, str])


async def _add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = request.get(CORS_KEY)
    if headers:
        response.headers.update(headers)


def error_response(err: S3Error, resource: str, request_id: str, head: bool) -> web.Response:
    body = b"" if head else error_xml(err, resource, request_id)
    resp = web.Response(body=body, status=err.status, content_type=XML)
    resp.headers.update(err.headers)  # x-amz-delete-marker; Allow on 405
    resp.headers["x-amz-request-id"] = request_id
    return resp


# What an unsigned request may do (public-read decides per bucket/object)
ANONYMOUS_OPS = frozenset(
    {Op.GetObject, Op.HeadObject, Op.ListObjects, Op.ListObjectsV2, Op.HeadBucket}
)


async def _anonymous(ctx: S3Context, endpoint: Endpoint) -> tuple[Credential, Client]:
    """The owner's credential and public-read client for an unsigned read, or AccessDenied."""
    if endpoint.name not in ANONYMOUS_OPS or not endpoint.bucket or ctx.directory is None:
        raise s3_error("AccessDenied", "anonymous access is not allowed; sign your request")
    owned = await ctx.directory.lookup(endpoint.bucket)
    if owned is None:
        raise s3_error("AccessDenied", "anonymous access is not allowed; sign your request")
    return owned.credential, ctx.directory.public_client(owned.credential)


async def _run_handler(ctx: S3Context, handler: Handler, req: S3Request) -> web.StreamResponse:
    """Run ``handler``; a signed read refused because the bucket is another project's
    is retried as a public read, since S3's public-read grants every caller, signed or not."""
    try:
        return await handler(req)
    except SkymeshError as e:
        if (
            req.auth.access_key is None
            or req.endpoint.name not in ANONYMOUS_OPS
            or e.code != "AccessDenied"
        ):
            raise
        try:
            credential, client = await _anonymous(ctx, req.endpoint)
        except S3Error:
            raise e from None
        if credential.project_id == req.credential.project_id:
            raise
        return await handler(replace(req, credential=credential, client=client))


def make_app(ctx: S3Context) -> web.Application:
    if ctx.directory is None:
        ctx.directory = BucketDirectory(ctx.credentials, ctx.clients)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "requests": ctx.requests})

    async def dispatch(request: web.Request) -> web.StreamResponse:
        if (
            request.path == "/healthz"
            and request.method == "GET"
            and "Authorization" not in request.headers
        ):
            return await healthz(request)
        request_id = secrets.token_hex(8).upper()
        ctx.requests += 1
        started = time.perf_counter()
        raw_path = request.raw_path.split("?", 1)[0]
        raw_query = request.rel_url.raw_query_string
        try:
            # the query as the signature reads it, for the router and the handlers alike
            params: dict[str, list[str]] = {}
            for name, value in parse_query(raw_query):
                params.setdefault(name, []).append(value)
            endpoint = route(
                request.method,
                raw_path,
                params,
                request.host,
                ctx.base_hosts,
                request.headers,
            )
            # CORS preflight (never signed) and CORS headers on real answers
            if endpoint.name == Op.Options:
                preflight = await cors.preflight(ctx, request, endpoint)
                preflight.headers["x-amz-request-id"] = request_id
                return preflight
            if endpoint.bucket and "Origin" in request.headers:
                request[CORS_KEY] = await cors.response_headers(ctx, request, endpoint.bucket)
            auth = authenticate(
                SigV4Request(
                    method=request.method,
                    path=raw_path,
                    query=raw_query,
                    headers=list(request.headers.items()),
                    now=datetime.now(UTC),
                ),
                ctx.lookup_secret,
                max_skew=ctx.config.max_clock_skew,
                sigv2=ctx.config.sigv2,
                host_bucket=endpoint.bucket if endpoint.virtual_host else None,
            )
            handler = HANDLERS.get(endpoint.name)
            if auth.access_key is None:
                credential, client = await _anonymous(ctx, endpoint)
            else:
                credential = ctx.credentials[auth.access_key]
                client = ctx.clients[auth.access_key]
            if handler is None:
                raise s3_error(
                    "NotImplemented", f"{endpoint.name} is not implemented by skymesh yet"
                )
            req = S3Request(
                http=request,
                endpoint=endpoint,
                auth=auth,
                credential=credential,
                client=client,
                ctx=ctx,
                request_id=request_id,
                params=params,
            )
            resp = await _run_handler(ctx, handler, req)
        except S3Error as e:
            ctx.errors += 1
            resp = error_response(e, request.path, request_id, request.method == "HEAD")
        except SkymeshError as e:
            ctx.errors += 1
            err = from_skymesh_error(e)
            if err.status >= 500:
                log.warning("%s %s failed: %s", request.method, request.path, e)
            resp = error_response(err, request.path, request_id, request.method == "HEAD")
        except (ConnectionResetError, web.HTTPException):
            raise
        except Exception as e:
            ctx.errors += 1
            log.exception("%s %s crashed", request.method, request.path)
            resp = error_response(
                from_skymesh_error(e), request.path, request_id, request.method == "HEAD"
            )
        if not resp.prepared:
            resp.headers["x-amz-request-id"] = request_id
            resp.headers.setdefault("Server", "skymesh")
        log.debug(
            "%s %s -> %s in %.1f ms",
            request.method,
            request.path,
            resp.status,
            (time.perf_counter() - started) * 1000,
        )
        return resp

    app = web.Application(client_max_size=1024**4)
    # every path, newlines included: keys may hold any character (``.`` stops at "\n")
    app.router.add_route("*", "/{tail:[\\s\\S]*}", dispatch)
    app.on_response_prepare.append(_add_cors_headers)
    return app
