"""The S3 front door: route, authenticate, dispatch to one handler per operation, map errors.

Every request is parsed into an :class:`Endpoint` once (``router.route``), its
SigV4 signature checked (``sigv4.verify``), and then handed to the handler for
that operation. Errors of any kind leave here as S3 XML with the right code and
status; nothing else in the gateway formats an error.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from aiohttp import web

from skymesh.client.client import Client
from skymesh.config import Credential, GatewayConfig
from skymesh.errors import SkymeshError
from skymesh.gateway.s3.errors import S3Error, from_skymesh_error, s3_error
from skymesh.gateway.s3.public import BucketDirectory
from skymesh.gateway.s3.router import Endpoint, Op, route
from skymesh.gateway.s3.sigv4 import AuthResult, SigV4Request, verify
from skymesh.gateway.s3.xml import error_xml

log = logging.getLogger(__name__)

XML = "application/xml"


@dataclass
class S3Context:
    config: GatewayConfig
    credentials: dict[str, Credential]
    clients: dict[str, Client]
    base_hosts: list[str] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    # S3 slice B: bucket owners and configuration for unsigned requests (set by make_app)
    directory: BucketDirectory | None = None

    def lookup_secret(self, access_key: str) -> str | None:
        cred = self.credentials.get(access_key)
        return cred.secret_access_key if cred else None


@dataclass
class S3Request:
    """One authenticated S3 request on its way to a handler."""

    http: web.Request
    endpoint: Endpoint
    auth: AuthResult
    credential: Credential
    client: Client
    ctx: S3Context
    request_id: str

    @property
    def bucket(self) -> str:
        if not self.endpoint.bucket:
            raise s3_error("InvalidRequest", "this operation needs a bucket")
        return self.endpoint.bucket

    @property
    def key(self) -> str:
        if not self.endpoint.key:
            raise s3_error("InvalidRequest", "this operation needs an object key")
        return self.endpoint.key

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.http.query.get(name, default)

    async def read_small_body(self, cap: int) -> bytes:
        """The whole body of a control request (XML), refusing more than ``cap`` bytes."""
        length = self.http.content_length
        if length is not None and length > cap:
            raise s3_error("MaxMessageLengthExceeded", f"the body may be at most {cap} bytes")
        data = bytearray()
        while chunk := await self.http.content.read(64 * 1024):
            data += chunk
            if len(data) > cap:
                raise s3_error("MaxMessageLengthExceeded", f"the body may be at most {cap} bytes")
        return bytes(data)


Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]

#: S3 slice B: the CORS headers a request earned, added just before its answer's headers go
CORS_KEY = web.RequestKey("skymesh_cors_headers", dict[str, str])


async def _add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = request.get(CORS_KEY)
    if headers:
        response.headers.update(headers)


def _handlers() -> dict[str, Handler]:
    from skymesh.gateway.s3.handlers import (  # S3 slice B
        acl,
        bucket,
        copy,
        cors,
        listing,
        multipart,
        objects,
        tagging,
    )

    return {
        "ListBuckets": bucket.list_buckets,
        "CreateBucket": bucket.create_bucket,
        "HeadBucket": bucket.head_bucket,
        "DeleteBucket": bucket.delete_bucket,
        "GetBucketLocation": bucket.get_bucket_location,
        "GetBucketVersioning": bucket.get_bucket_versioning,
        "PutBucketVersioning": bucket.put_bucket_versioning,  # S3 versioning
        "ListObjectVersions": listing.list_object_versions,  # S3 versioning
        "ListObjects": listing.list_objects_v1,
        "ListObjectsV2": listing.list_objects_v2,
        "PutObject": objects.put_object,
        "GetObject": objects.get_object,
        "HeadObject": objects.head_object,
        "DeleteObject": objects.delete_object,
        "DeleteObjects": objects.delete_objects,
        "CreateMultipartUpload": multipart.create_multipart_upload,
        "UploadPart": multipart.upload_part,
        "CompleteMultipartUpload": multipart.complete_multipart_upload,
        "AbortMultipartUpload": multipart.abort_multipart_upload,
        "ListParts": multipart.list_parts,
        "ListMultipartUploads": multipart.list_multipart_uploads,
        # S3 slice B: ACLs, tagging, CORS
        "GetBucketAcl": acl.get_bucket_acl,
        "PutBucketAcl": acl.put_bucket_acl,
        "GetObjectAcl": acl.get_object_acl,
        "PutObjectAcl": acl.put_object_acl,
        "GetObjectTagging": tagging.get_object_tagging,
        "PutObjectTagging": tagging.put_object_tagging,
        "DeleteObjectTagging": tagging.delete_object_tagging,
        "GetBucketTagging": tagging.get_bucket_tagging,
        "PutBucketTagging": tagging.put_bucket_tagging,
        "DeleteBucketTagging": tagging.delete_bucket_tagging,
        "GetBucketCors": cors.get_bucket_cors,
        "PutBucketCors": cors.put_bucket_cors,
        "DeleteBucketCors": cors.delete_bucket_cors,
        # server-side copies (S3 compatibility, slice A)
        "CopyObject": copy.copy_object,
        "UploadPartCopy": copy.upload_part_copy,
    }


def error_response(err: S3Error, resource: str, request_id: str, head: bool) -> web.Response:
    body = b"" if head else error_xml(err, resource, request_id)
    resp = web.Response(body=body, status=err.status, content_type=XML)
    resp.headers.update(err.headers)  # S3 versioning: x-amz-delete-marker; also Allow on 405
    resp.headers["x-amz-request-id"] = request_id
    return resp


# S3 slice B: what an unsigned request may do (public-read decides per bucket/object)
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
    handlers = _handlers()
    from skymesh.gateway.s3.handlers import cors as cors_handlers  # S3 slice B

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
        try:
            endpoint = route(
                request.method,
                raw_path,
                request.query,
                request.host,
                ctx.base_hosts,
                request.headers,
            )
            # S3 slice B: CORS preflight (never signed) and CORS headers on real answers
            if endpoint.name == Op.Options:
                preflight = await cors_handlers.preflight(ctx, request, endpoint)
                preflight.headers["x-amz-request-id"] = request_id
                return preflight
            if endpoint.bucket and "Origin" in request.headers:
                request[CORS_KEY] = await cors_handlers.response_headers(
                    ctx, request, endpoint.bucket
                )
            auth = verify(
                SigV4Request(
                    method=request.method,
                    path=raw_path,
                    query=request.rel_url.raw_query_string,
                    headers=list(request.headers.items()),
                    now=datetime.now(UTC),
                ),
                ctx.lookup_secret,
                max_skew=ctx.config.max_clock_skew,
            )
            handler = handlers.get(endpoint.name)
            if auth.access_key is None:
                credential, client = await _anonymous(ctx, endpoint)  # S3 slice B
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
            )
            resp = await _run_handler(ctx, handler, req)  # S3 slice B
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
    app.router.add_route("*", "/{tail:.*}", dispatch)
    app.on_response_prepare.append(_add_cors_headers)  # S3 slice B
    return app
