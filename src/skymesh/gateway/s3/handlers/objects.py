"""Object operations: put, get (with Range, partNumber and conditions), head, delete, delete many."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from aiohttp import web

from skymesh.client.client import DeleteMarkerError, StoredObject, s3_version_id
from skymesh.client.customerkey import CustomerKey
from skymesh.client.objectmeta import ObjectMeta
from skymesh.errors import SkymeshError
from skymesh.gateway.s3 import actions
from skymesh.gateway.s3.errors import S3Error, from_skymesh_error, s3_error
from skymesh.gateway.s3.handlers.acl import object_acl
from skymesh.gateway.s3.handlers.body import PutBody
from skymesh.gateway.s3.handlers.checksums import HEADER_PREFIX
from skymesh.gateway.s3.handlers.checksums import response_headers as checksum_headers
from skymesh.gateway.s3.handlers.encryption import check_request as check_sse
from skymesh.gateway.s3.handlers.encryption import customer_key, response_headers
from skymesh.gateway.s3.handlers.lifecycle import expiration_headers
from skymesh.gateway.s3.handlers.object_lock import bypass_governance, lock_headers, write_lock
from skymesh.gateway.s3.handlers.small_body import read_small_body
from skymesh.gateway.s3.handlers.tagging import tags_from_header
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.router import Op, validate_key
from skymesh.gateway.s3.xml import (
    MAX_DELETE_BODY,
    delete_result_xml,
    http_date,
    parse_delete_objects,
    parse_http_date,
    quote_etag,
)
from skymesh.wire.metainfo import DeleteObjectResponse, ObjectInfo

log = logging.getLogger(__name__)

STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)
MAX_PUT_SIZE = 5 * 1024**3  # S3's limit for one PUT; larger objects go by multipart
MAX_USER_METADATA = 2048  # bytes of x-amz-meta-* names and values, as S3 allows

# ASCII digits only: re's \d also takes other scripts' digits, which int() reads
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
_PAST_ANY_END = 2**62  # more than any object's size, and still an int64 on the wire


def _bound(digits: str) -> int:
    """A Range bound, at most :data:`_PAST_ANY_END`: int() refuses more than 4300
    digits, and a bound past every object needs no more precision."""
    digits = digits.lstrip("0") or "0"
    return min(int(digits), _PAST_ANY_END) if len(digits) <= 19 else _PAST_ANY_END


def _without_aws_chunked(value: str) -> str:
    """A Content-Encoding without its ``aws-chunked`` coding (``gzip, aws-chunked``: ``gzip``)."""
    codings = [c.strip() for c in value.split(",")]
    if not any(c.lower() == "aws-chunked" for c in codings):
        return value
    return ", ".join(c for c in codings if c and c.lower() != "aws-chunked")


def meta_from_headers(headers: Mapping[str, str]) -> ObjectMeta:
    user: dict[str, str] = {}
    stored: dict[str, str] = {}
    size = 0
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith("x-amz-meta-"):
            key = lower[len("x-amz-meta-") :]
            user[key] = value
            size += len(key.encode()) + len(value.encode())
        elif lower == "content-encoding":
            # aws-chunked is how this request's body was framed, not the object's
            # encoding: S3 strips it and stores what is left, if anything
            coding = _without_aws_chunked(value)
            if coding:
                stored[lower] = coding
        elif lower in STORED_HEADERS:
            stored[lower] = value
    if size > MAX_USER_METADATA:
        raise s3_error(
            "MetadataTooLarge",
            f"user metadata is {size} bytes; the limit is {MAX_USER_METADATA}: store large"
            " values in the object itself",
        )
    return ObjectMeta(
        content_type=headers.get("Content-Type", "binary/octet-stream"),
        user=user,
        headers=stored,
        # x-amz-acl and x-amz-tagging are sealed with the object
        acl=object_acl(headers),
        tags=tags_from_header(headers.get("x-amz-tagging")),
    )


def object_headers(obj: StoredObject, customer: CustomerKey | None = None) -> dict[str, str]:
    """Headers of GET/HEAD; ``customer``: the key the object was read with (SSE-C)."""
    info, meta = obj.info, obj.meta
    headers = {
        "ETag": f'"{info.etag}"',
        "Last-Modified": http_date(info.created_at),
        "Content-Type": meta.content_type,
        "Accept-Ranges": "bytes",
        # every object is encrypted (handlers/encryption.py)
        **response_headers(customer),
    }
    for name, value in meta.headers.items():
        headers[name.title()] = value
    for name, value in meta.user.items():
        headers[f"x-amz-meta-{name}"] = value
    if meta.tags:
        headers["x-amz-tagging-count"] = str(len(meta.tags))
    headers.update(lock_headers(info))
    return headers


def version_headers(info: ObjectInfo | DeleteObjectResponse) -> dict[str, str]:
    """``x-amz-version-id``, which S3 sends only for buckets that have had versioning."""
    return {"x-amz-version-id": s3_version_id(info)} if info.versioning else {}


def delete_marker_error(e: DeleteMarkerError) -> S3Error:
    """NoSuchKey (latest) or MethodNotAllowed (by id), saying it is a delete marker."""
    headers = {"x-amz-delete-marker": "true", **version_headers(e.info)}
    if e.status == 405:
        headers["Last-Modified"] = http_date(e.info.created_at)
        headers["Allow"] = "DELETE"
    return S3Error(e.code, headers=headers)


def version_query(req: S3Request) -> str:
    return req.query("versionId", "") or ""


def write_conditions(req: S3Request) -> tuple[str, str]:
    """(If-Match, If-None-Match) of a write, for the coordinator to check at commit."""
    h = req.http.headers
    return h.get("If-Match", "").strip(), h.get("If-None-Match", "").strip()


def body_checksum_headers(body: PutBody) -> dict[str, str]:
    """The checksum a write computed, echoed as S3 does (SDKs compare it)."""
    c = body.checksum
    return {HEADER_PREFIX + c.algorithm: c.b64()} if c is not None else {}


async def put_object(req: S3Request) -> web.StreamResponse:
    validate_key(req.key)
    customer = customer_key(req)
    check_sse(req.http.headers)
    meta = meta_from_headers(req.http.headers)
    if_match, if_none_match = write_conditions(req)
    lock = await write_lock(req, needs_integrity=True)
    body = PutBody(
        req,
        MAX_PUT_SIZE,
        f"a single PUT may be at most {MAX_PUT_SIZE} bytes; use a multipart upload",
    )
    stored = await req.client.put_object(
        req.bucket,
        req.key,
        body.chunks(),
        size=body.size,
        meta=meta,
        hashers=body.hashers,
        before_commit=body.verify,
        if_match=if_match,
        if_none_match=if_none_match,
        customer_key=customer,
        lock=lock,
    )
    resp = web.Response(status=200)
    resp.headers["ETag"] = f'"{stored.info.etag}"'
    resp.headers.update(body_checksum_headers(body))
    resp.headers.update(version_headers(stored.info))
    resp.headers.update(await expiration_headers(req, stored))
    resp.headers.update(response_headers(customer))
    return resp


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {e.strip().removeprefix("W/").strip('"') for e in header.split(",")}
    return "*" in wanted or etag.strip('"') in wanted


def read_conditions(
    headers: Mapping[str, str], etag: str, last_modified: float, prefix: str = ""
) -> bool:
    """S3's conditional read rules; False means "answer 304 Not Modified".

    Raises PreconditionFailed (412). Precedence as S3 documents it: a true
    If-Match overrides a false If-Unmodified-Since, and a false If-None-Match
    overrides a true If-Modified-Since. Dates compare at whole seconds, the
    precision of Last-Modified. ``prefix`` is ``x-amz-copy-source-`` for copies,
    where every failure is 412.
    """
    modified = int(last_modified)
    if_match = headers.get(prefix + "If-Match")
    if if_match is not None:
        if not _etag_matches(if_match, etag):
            raise s3_error("PreconditionFailed", Condition=prefix + "If-Match")
    else:
        raw = headers.get(prefix + "If-Unmodified-Since")
        since = parse_http_date(raw) if raw else None
        if since is not None and modified > since:
            raise s3_error("PreconditionFailed", Condition=prefix + "If-Unmodified-Since")
    if_none_match = headers.get(prefix + "If-None-Match")
    if if_none_match is not None:
        if _etag_matches(if_none_match, etag):
            if prefix:
                raise s3_error("PreconditionFailed", Condition=prefix + "If-None-Match")
            return False
    else:
        raw = headers.get(prefix + "If-Modified-Since")
        since = parse_http_date(raw) if raw else None
        if since is not None and modified <= since:
            if prefix:
                raise s3_error("PreconditionFailed", Condition=prefix + "If-Modified-Since")
            return False
    return True


def not_modified(obj: StoredObject) -> web.Response:
    resp = web.Response(status=304)
    resp.headers["ETag"] = quote_etag(obj.info.etag)
    resp.headers["Last-Modified"] = http_date(obj.info.created_at)
    return resp


def part_range(req: S3Request, obj: StoredObject) -> tuple[int, int, int] | None:
    """(start, end, part count) of ``?partNumber=N``; None when not asked.

    A simple object is one part. Asking for a part that does not exist is
    InvalidPartNumber (416), as S3 answers.
    """
    n = req.endpoint.part_number
    if n is None:
        return None
    if "Range" in req.http.headers:
        raise s3_error("InvalidRequest", "Cannot specify both Range header and partNumber query")
    sizes = obj.meta.parts or [obj.info.size]
    if n > len(sizes) or sizes[n - 1] < 0:
        raise s3_error(
            "InvalidPartNumber",
            f"the object has {len(sizes)} part(s); part {n} does not exist",
            PartNumberRequested=n,
            ActualPartCount=len(sizes),
        )
    start = sum(sizes[: n - 1])
    return start, start + sizes[n - 1], len(sizes)


def _wants_checksums(req: S3Request) -> bool:
    return req.http.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The [start, end) a Range header asks for; None means the whole object.

    Malformed or multi-range headers are ignored (the whole object is sent), as S3
    does; a syntactically valid range that misses the object is InvalidRange.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        n = _bound(last)
        if n == 0 or size == 0:
            raise s3_error(
                "InvalidRange", "the requested range is not satisfiable", ActualObjectSize=size
            )
        return max(0, size - n), size
    start = _bound(first)
    end = size if not last else min(size, _bound(last) + 1)
    if last and _bound(last) < start:
        return None
    if start >= size:
        raise s3_error(
            "InvalidRange", "the requested range is not satisfiable", ActualObjectSize=size
        )
    return start, end


async def get_object(req: S3Request) -> web.StreamResponse:
    refuse_anonymous_overrides(req)
    customer = customer_key(req)
    range_header = req.http.headers.get("Range")
    hint = 0
    end_hint: int | None = None  # where a plain "bytes=a-b" range stops: orders up to there
    m = _RANGE.match(range_header.strip()) if range_header else None
    if m and m.group(1):
        hint = _bound(m.group(1))
        if m.group(2) and req.query("partNumber") is None:
            end_hint = _bound(m.group(2)) + 1
    try:
        handle = await req.client.open_object(
            req.bucket, req.key, version_query(req), hint, end_hint, customer
        )
    except DeleteMarkerError as e:
        raise delete_marker_error(e) from e
    size = handle.info.size
    if not read_conditions(req.http.headers, handle.info.etag, handle.info.created_at):
        return not_modified(handle.object)
    part = part_range(req, handle.object)
    rng = parse_range(range_header, size) if part is None else part[:2]
    start, end = rng if rng is not None else (0, size)
    partial = rng is not None and (part is None or len(handle.meta.parts) > 0)
    resp = web.StreamResponse(status=206 if partial else 200)
    resp.headers.update(object_headers(handle.object, customer))
    resp.headers.update(version_headers(handle.info))
    resp.headers.update(await expiration_headers(req, handle.object))
    _apply_response_overrides(req, resp)
    if partial:
        resp.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if part is not None and handle.meta.parts:
        resp.headers["x-amz-mp-parts-count"] = str(part[2])
    if _wants_checksums(req) and rng is None:
        resp.headers.update(checksum_headers(handle.meta.checksums))
    resp.content_length = end - start
    # views of the reader's buffer: each is written and dropped before the next is
    # asked for, so the reader decodes the next part into the same buffer (one the
    # transport still holds, unsent, is never written: the reader takes a new one)
    body = handle.views(start, end)
    try:
        chunk = await anext(body, None)
    except SkymeshError as e:
        raise from_skymesh_error(e) from e
    await resp.prepare(req.http)
    sent = 0
    try:
        while chunk is not None:
            await resp.write(chunk)
            sent += len(chunk)
            del chunk
            chunk = await anext(body, None)
    except SkymeshError as e:
        # headers are gone: all we can do is cut the connection so the client sees a short body
        log.error("GET %s/%s failed after %d bytes: %s", req.bucket, req.key, sent, e)
        if req.http.transport is not None:
            req.http.transport.close()
        return resp
    await resp.write_eof()
    return resp


#: GetObject's ``response-*`` query parameters and the headers they override
RESPONSE_OVERRIDES = (
    ("response-content-type", "Content-Type"),
    ("response-content-language", "Content-Language"),
    ("response-expires", "Expires"),
    ("response-cache-control", "Cache-Control"),
    ("response-content-disposition", "Content-Disposition"),
    ("response-content-encoding", "Content-Encoding"),
)


def refuse_anonymous_overrides(req: S3Request) -> None:
    """S3 lets only signed requests choose the answer's headers: otherwise anyone could
    serve a public object as ``text/html`` from the bucket's origin, or as an attachment
    of any name."""
    if req.auth.anonymous and any(req.query(p) is not None for p, _ in RESPONSE_OVERRIDES):
        raise s3_error(
            "InvalidRequest",
            "Request specific response headers cannot be used for anonymous GET requests.",
        )


def _apply_response_overrides(req: S3Request, resp: web.StreamResponse) -> None:
    for param, header in RESPONSE_OVERRIDES:
        value = req.query(param)
        if value is not None:
            resp.headers[header] = value


async def head_object(req: S3Request) -> web.StreamResponse:
    refuse_anonymous_overrides(req)
    customer = customer_key(req)
    try:
        obj = await req.client.head_object(req.bucket, req.key, version_query(req))
    except DeleteMarkerError as e:
        raise delete_marker_error(e) from e
    req.client.check_customer_key(obj, customer)
    if not read_conditions(req.http.headers, obj.info.etag, obj.info.created_at):
        return not_modified(obj)
    part = part_range(req, obj)
    resp = web.Response(status=200)
    resp.headers.update(object_headers(obj, customer))
    resp.headers.update(version_headers(obj.info))
    resp.headers.update(await expiration_headers(req, obj))
    resp.headers["Content-Length"] = str(obj.info.size)
    if part is not None and obj.meta.parts:
        start, end, count = part
        resp.set_status(206)
        resp.headers["Content-Length"] = str(end - start)
        resp.headers["Content-Range"] = f"bytes {start}-{end - 1}/{obj.info.size}"
        resp.headers["x-amz-mp-parts-count"] = str(count)
    if _wants_checksums(req) and part is None:
        resp.headers.update(checksum_headers(obj.meta.checksums))
    return resp


async def delete_object(req: S3Request) -> web.StreamResponse:
    """Without versionId a versioned bucket gets a delete marker; with one, that version goes."""
    result = await req.client.delete_version(
        req.bucket, req.key, version_query(req), bypass_governance=bypass_governance(req)
    )
    resp = web.Response(status=204)
    if result.deleted:
        resp.headers.update(version_headers(result))
        if result.delete_marker:
            resp.headers["x-amz-delete-marker"] = "true"
    return resp


async def delete_objects(req: S3Request) -> web.StreamResponse:
    body = await read_small_body(req, MAX_DELETE_BODY)
    quiet, keys = parse_delete_objects(body)
    if len(keys) > 1000:
        raise s3_error("MalformedXML", "at most 1000 keys per DeleteObjects request")
    deleted: list[tuple[str, str | None, str | None]] = []
    failed: list[tuple[str, str, str]] = []
    if req.access is not None:  # the bucket policy decides key by key, as in S3
        allowed: list[tuple[str, str | None]] = []
        for k, v in keys:
            action = actions.action_for(Op.DeleteObject, v) or "s3:DeleteObject"
            if req.access.allows(action, actions.object_arn(req.bucket, k)):
                allowed.append((k, v))
            else:
                failed.append((k, "AccessDenied", "Access Denied"))
        keys = allowed
    # one coordinator transaction for the lot; a bucket that is missing or another
    # project's fails the whole request (raised here), as in S3
    results = (
        await req.client.delete_objects(
            req.bucket, [(k, v or "") for k, v in keys], bypass_governance=bypass_governance(req)
        )
        if keys
        else []
    )
    for r in results:
        if r.outcome is None:
            err = from_skymesh_error(SkymeshError(r.error_message, code=r.error_code))
            failed.append((r.key, err.code, err.message))
            continue
        o = r.outcome
        marker = s3_version_id(o) if o.delete_marker and o.versioning else None
        deleted.append((r.key, r.version_id or None, marker))
    return web.Response(body=delete_result_xml(deleted, failed, quiet), content_type=XML)
