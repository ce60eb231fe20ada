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
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from skymesh.client.client import Client
from skymesh.config import Credential, GatewayConfig
from skymesh.errors import SkymeshError
from skymesh.gateway.s3.errors import S3Error, from_skymesh_error, s3_error
from skymesh.gateway.s3.router import Endpoint, route
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


def _handlers() -> dict[str, Handler]:
    from skymesh.gateway.s3.handlers import bucket, listing, multipart, objects

    return {
        "ListBuckets": bucket.list_buckets,
        "CreateBucket": bucket.create_bucket,
        "HeadBucket": bucket.head_bucket,
        "DeleteBucket": bucket.delete_bucket,
        "GetBucketLocation": bucket.get_bucket_location,
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
    }


def error_response(err: S3Error, resource: str, request_id: str, head: bool) -> web.Response:
    body = b"" if head else error_xml(err, resource, request_id)
    resp = web.Response(body=body, status=err.status, content_type=XML)
    resp.headers["x-amz-request-id"] = request_id
    return resp


def make_app(ctx: S3Context) -> web.Application:
    handlers = _handlers()

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
            if auth.access_key is None:
                raise s3_error("AccessDenied", "anonymous access is not allowed; sign your request")
            handler = handlers.get(endpoint.name)
            if handler is None:
                raise s3_error(
                    "NotImplemented", f"{endpoint.name} is not implemented by skymesh yet"
                )
            req = S3Request(
                http=request,
                endpoint=endpoint,
                auth=auth,
                credential=ctx.credentials[auth.access_key],
                client=ctx.clients[auth.access_key],
                ctx=ctx,
                request_id=request_id,
            )
            resp = await handler(req)
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
    return app
