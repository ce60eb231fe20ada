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

from skymesh import __version__
from skymesh.errors import SkymeshError
from skymesh.gateway import console
from skymesh.gateway.s3 import console_api
from skymesh.gateway.s3.access import ANONYMOUS_OPS, Grant, anonymous, authorize
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
    object_lock,
    objects,
    policy,
    post_object,
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
    Op.GetObjectLockConfiguration: object_lock.get_object_lock_configuration,
    Op.PutObjectLockConfiguration: object_lock.put_object_lock_configuration,
    Op.GetObjectRetention: object_lock.get_object_retention,
    Op.PutObjectRetention: object_lock.put_object_retention,
    Op.GetObjectLegalHold: object_lock.get_object_legal_hold,
    Op.PutObjectLegalHold: object_lock.put_object_legal_hold,
    Op.GetBucketPolicy: policy.get_bucket_policy,
    Op.PutBucketPolicy: policy.put_bucket_policy,
    Op.DeleteBucketPolicy: policy.delete_bucket_policy,
    Op.GetBucketPolicyStatus: policy.get_bucket_policy_status,
    Op.GetPublicAccessBlock: policy.get_public_access_block,
    Op.PutPublicAccessBlock: policy.put_public_access_block,
    Op.DeletePublicAccessBlock: policy.delete_public_access_block,
    Op.GetBucketOwnershipControls: policy.get_bucket_ownership_controls,
    Op.PutBucketOwnershipControls: policy.put_bucket_ownership_controls,
    Op.DeleteBucketOwnershipControls: policy.delete_bucket_ownership_controls,
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


async def _run_handler(
    ctx: S3Context, handler: Handler, req: S3Request, grant: Grant
) -> web.StreamResponse:
    """Run ``handler``; a signed read refused because the bucket is another project's
    is retried as a public read, since S3's public-read grants every caller, signed or not."""
    try:
        return await handler(req)
    except SkymeshError as e:
        refused = grant.refusal(e)
        if refused is not e:
            raise refused from None
        if (
            not grant.acl_fallback
            or req.endpoint.name not in ANONYMOUS_OPS
            or e.code != "AccessDenied"
        ):
            raise
        try:
            public = await anonymous(ctx.directory, req.endpoint)
        except S3Error:
            raise e from None
        if public.credential.project_id == req.credential.project_id:
            raise
        return await handler(replace(req, credential=public.credential, client=public.client))


async def _signed(
    ctx: S3Context,
    request: web.Request,
    endpoint: Endpoint,
    raw_path: str,
    raw_query: str,
    params: dict[str, list[str]],
    request_id: str,
) -> web.StreamResponse:
    """Authenticate a request by its header or query signature and run its handler."""
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
    caller = None if auth.access_key is None else ctx.credentials[auth.access_key]
    grant = await authorize(ctx.directory, ctx.clients, request, endpoint, params, caller)
    if handler is None:
        raise s3_error("NotImplemented", f"{endpoint.name} is not implemented by skymesh yet")
    req = S3Request(
        http=request,
        endpoint=endpoint,
        auth=auth,
        credential=grant.credential,
        client=grant.client,
        ctx=ctx,
        request_id=request_id,
        params=params,
        access=grant.access,
    )
    return await _run_handler(ctx, handler, req, grant)


def _observe(
    ctx: S3Context,
    request: web.Request,
    operation: str,
    resp: web.StreamResponse,
    started: float,
) -> None:
    """Count one answered request: a streamed answer was sent whole by now, another's body
    is about to be. Bytes out are the answer's Content-Length (a stream cut short counts
    whole); HEAD sends no body."""
    if ctx.metrics is None:
        return
    if request.method == "HEAD":
        sent = 0
    elif resp.content_length is not None:
        sent = resp.content_length
    else:  # streamed without a length: what went out, its header bytes included
        sent = resp.body_length if resp.prepared else 0
    ctx.metrics.s3_request(
        operation,
        resp.status,
        time.perf_counter() - started,
        request.content.total_bytes,
        sent,
    )


def make_app(ctx: S3Context) -> web.Application:
    if ctx.directory is None:
        ctx.directory = BucketDirectory(ctx.credentials, ctx.clients)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "requests": ctx.requests, "version": __version__})

    async def dispatch(request: web.Request) -> web.StreamResponse:
        if (
            request.path == "/healthz"
            and request.method == "GET"
            and "Authorization" not in request.headers
        ):
            return await healthz(request)
        if console.claims(request, ctx.base_hosts):
            return console.serve(request)
        request_id = secrets.token_hex(8).upper()
        ctx.requests += 1
        started = time.perf_counter()
        raw_path = request.raw_path.split("?", 1)[0]
        raw_query = request.rel_url.raw_query_string
        operation = "Unknown"  # until routed: a request the router refused
        resp: web.StreamResponse
        try:
            if console_api.claims(request, ctx.base_hosts):  # the console's keys and usage
                operation = "ConsoleApi"
                resp = await console_api.serve(ctx, request, raw_path, raw_query)
            else:
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
                operation = endpoint.name.value
                # CORS preflight (never signed) and CORS headers on real answers
                if endpoint.name == Op.Options:
                    preflight = await cors.preflight(ctx, request, endpoint)
                    preflight.headers["x-amz-request-id"] = request_id
                    _observe(ctx, request, operation, preflight, started)
                    return preflight
                if endpoint.bucket and "Origin" in request.headers:
                    request[CORS_KEY] = await cors.response_headers(ctx, request, endpoint.bucket)
                # a browser form carries its own authorization: a signed policy in the body
                if endpoint.name == Op.PostObject:
                    resp = await post_object.post_object(ctx, request, endpoint)
                else:
                    resp = await _signed(
                        ctx, request, endpoint, raw_path, raw_query, params, request_id
                    )
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
        _observe(ctx, request, operation, resp, started)
        return resp

    app = web.Application(client_max_size=1024**4)
    # every path, newlines included: keys may hold any character (``.`` stops at "\n")
    app.router.add_route("*", "/{tail:[\\s\\S]*}", dispatch)
    app.on_response_prepare.append(_add_cors_headers)
    return app
