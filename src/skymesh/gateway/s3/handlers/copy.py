"""CopyObject and UploadPartCopy: server-side copies within one project.

The gateway holds every bucket key of its project, so a copy is a read of the
source's plaintext streamed straight into a new upload: the bytes are
re-encrypted under a fresh data key for the destination (keys are bound to an
object's name, so ciphertext cannot simply be relinked), and memory stays
bounded by one segment however large the object. Nodes never see plaintext;
the coordinator sees a download and an upload.

A large copy takes a while, longer than SDKs wait for a response's first byte.
So, as S3 does, a copy still running after :data:`KEEPALIVE_AFTER` seconds gets
its ``200`` headers and the XML declaration at once, then a space every
:data:`KEEPALIVE_INTERVAL` seconds, then its result, or an ``<Error>`` document
(SDKs look for one in a 200 answer to exactly these operations).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from urllib.parse import unquote

import msgspec
from aiohttp import web

from skymesh.client.client import ObjectHandle, s3_version_id
from skymesh.client.objectmeta import ObjectMeta
from skymesh.gateway.s3.errors import from_skymesh_error, s3_error
from skymesh.gateway.s3.handlers.checksums import ALGORITHMS, HEADER_PREFIX, Checksum
from skymesh.gateway.s3.handlers.encryption import (
    COPY_SOURCE_CUSTOMER,
    customer_key,
    response_headers,
)
from skymesh.gateway.s3.handlers.encryption import check_request as check_sse
from skymesh.gateway.s3.handlers.multipart import upload_id_of
from skymesh.gateway.s3.handlers.object_lock import write_lock
from skymesh.gateway.s3.handlers.objects import (
    meta_from_headers,
    read_conditions,
    version_headers,
    write_conditions,
)
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.router import validate_key
from skymesh.gateway.s3.xml import copy_object_result_xml, copy_part_result_xml, error_xml
from skymesh.wire.metainfo import ObjectInfo

log = logging.getLogger(__name__)

KEEPALIVE_AFTER = 10.0  # seconds before a slow copy answers 200 and starts sending spaces
KEEPALIVE_INTERVAL = 5.0
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_COPY_SIZE = 5 * 1024**3  # S3's limit for one CopyObject; larger objects copy by parts
COPY_SOURCE = "x-amz-copy-source"
_COPY_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")
_SELF_COPY = (
    "This copy request is illegal because it is trying to copy an object to itself without"
    " changing the object's metadata, storage class, website redirect location or"
    " encryption attributes."
)


@dataclass(frozen=True)
class CopySource:
    bucket: str
    key: str
    version_id: str


def parse_copy_source(value: str) -> CopySource:
    """``[/]bucket/key[?versionId=v]`` with the key URL-encoded, as SDKs send it."""
    path, _, query = value.partition("?")
    version_id = ""
    if query:
        name, _, version = query.partition("=")
        if name != "versionId" or not version:
            raise s3_error("InvalidArgument", "x-amz-copy-source takes only ?versionId=")
        version_id = unquote(version)
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        raise s3_error(
            "InvalidArgument",
            "x-amz-copy-source must be bucket/key (URL-encoded)",
            ArgumentName=COPY_SOURCE,
            ArgumentValue=value,
        )
    return CopySource(bucket, key, version_id)


async def open_source(req: S3Request, start_hint: int = 0) -> ObjectHandle:
    """The copy source, opened with its customer key (``x-amz-copy-source-server-side-
    encryption-customer-*``, for an SSE-C source) and checked against the
    ``x-amz-copy-source-if-*`` headers."""
    src = parse_copy_source(req.http.headers[COPY_SOURCE])
    if req.access is not None:
        await req.access.check_source(src.bucket, src.key, src.version_id)
    handle = await req.client.open_object(
        src.bucket,
        src.key,
        src.version_id,
        start_hint,
        customer_key=customer_key(req, COPY_SOURCE_CUSTOMER),
    )
    read_conditions(
        req.http.headers, handle.info.etag, handle.info.created_at, prefix="x-amz-copy-source-"
    )
    return handle


def source_version_headers(info: ObjectInfo) -> dict[str, str]:
    """``x-amz-copy-source-version-id``, for sources in buckets that have had versioning."""
    if not info.versioning:
        return {}
    return {"x-amz-copy-source-version-id": s3_version_id(info)}


def _copy_checksum(req: S3Request, source: ObjectMeta) -> Checksum | None:
    """Keep the source's checksum algorithm (or take the one the request names)."""
    wanted = req.http.headers.get("x-amz-checksum-algorithm", "").strip().lower()
    if wanted:
        if wanted not in ALGORITHMS:
            raise s3_error("InvalidRequest", f"unknown checksum algorithm {wanted!r}")
        return Checksum(wanted)
    for alg in source.checksums:
        if alg in ALGORITHMS:
            return Checksum(alg)
    return None


async def answer_when_done(
    req: S3Request, work: Awaitable[tuple[bytes, dict[str, str]]]
) -> web.StreamResponse:
    """Run ``work`` (answering an XML body and headers); keep the client waiting politely.

    Errors before :data:`KEEPALIVE_AFTER` leave as ordinary S3 errors; later ones
    become an ``<Error>`` body in the 200 answer. A client that goes away cancels
    the copy: nothing is committed.
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=KEEPALIVE_AFTER)
        if done:
            body, headers = task.result()
            resp = web.Response(body=body, content_type=XML)
            resp.headers.update(headers)
            return resp
        stream = web.StreamResponse(status=200)
        stream.content_type = XML
        await stream.prepare(req.http)
        await stream.write(_XML_DECLARATION)
        while True:
            done, _ = await asyncio.wait({task}, timeout=KEEPALIVE_INTERVAL)
            if done:
                break
            await stream.write(b" ")
        try:
            body, _headers = task.result()
        except Exception as e:  # the answer has begun: the error goes in its body
            err = from_skymesh_error(e)
            if err.status >= 500:
                log.warning("copy to %s/%s failed: %s", req.bucket, req.key, e)
            body = error_xml(err, req.http.path, req.request_id)
        await stream.write(body.split(b"?>", 1)[1] if body.startswith(b"<?xml") else body)
        await stream.write_eof()
        return stream
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def copy_meta(req: S3Request, source: ObjectMeta, directive: str) -> ObjectMeta:
    """The copy's metadata, as S3 builds it.

    Content type, user metadata and stored headers come from the source (COPY)
    or the request (REPLACE); tags follow ``x-amz-tagging-directive`` the same
    way; the ACL always comes from the request (a copy starts private). Checksums
    and part sizes are the new object's own.
    """
    requested = meta_from_headers(req.http.headers)
    meta = requested
    if directive == "COPY":
        meta = msgspec.structs.replace(
            requested,
            content_type=source.content_type,
            user=source.user,
            headers=source.headers,
        )
    tagging = req.http.headers.get("x-amz-tagging-directive", "COPY").strip().upper()
    if tagging not in ("COPY", "REPLACE"):
        raise s3_error(
            "InvalidArgument",
            "x-amz-tagging-directive must be COPY or REPLACE",
            ArgumentName="x-amz-tagging-directive",
            ArgumentValue=tagging,
        )
    if tagging == "COPY":
        meta = msgspec.structs.replace(meta, tags=source.tags)
    return msgspec.structs.replace(meta, checksums={}, parts=[])


async def copy_object(req: S3Request) -> web.StreamResponse:
    validate_key(req.key)
    customer = customer_key(req)  # the destination's (SSE-C), if any
    check_sse(req.http.headers)
    directive = req.http.headers.get("x-amz-metadata-directive", "COPY").strip().upper()
    if directive not in ("COPY", "REPLACE"):
        raise s3_error(
            "InvalidArgument",
            "x-amz-metadata-directive must be COPY or REPLACE",
            ArgumentName="x-amz-metadata-directive",
            ArgumentValue=directive,
        )
    src = parse_copy_source(req.http.headers[COPY_SOURCE])
    # copying an older version onto its own key restores it (S3 allows that without REPLACE)
    # so does a copy that changes its encryption (SSE-C on, off or another key)
    if (
        (src.bucket, src.key) == (req.bucket, req.key)
        and directive != "REPLACE"
        and not src.version_id
        and customer is None
        and customer_key(req, COPY_SOURCE_CUSTOMER) is None
    ):
        raise s3_error("InvalidRequest", _SELF_COPY)
    handle = await open_source(req)
    if handle.info.size > MAX_COPY_SIZE:
        raise s3_error(
            "InvalidRequest",
            "The specified copy source is larger than the maximum allowable size for a copy"
            f" source: {MAX_COPY_SIZE}; copy it with UploadPartCopy",
        )
    meta = copy_meta(req, handle.meta, directive)
    checksum = _copy_checksum(req, handle.meta)

    if_match, if_none_match = write_conditions(req)
    # a copy never takes the source's lock: its own headers, else the bucket's default
    lock = await write_lock(req)

    def record_checksum(_md5: str, _size: int) -> dict[str, str]:
        return {checksum.algorithm: checksum.b64()} if checksum is not None else {}

    async def work() -> tuple[bytes, dict[str, str]]:
        stored = await req.client.put_object(
            req.bucket,
            req.key,
            handle.read(),
            size=handle.info.size,
            meta=meta,
            hashers=[checksum] if checksum is not None else [],
            before_commit=record_checksum,
            if_match=if_match,
            if_none_match=if_none_match,
            customer_key=customer,
            lock=lock,
        )
        headers = {
            **source_version_headers(handle.info),
            **version_headers(stored.info),
            **response_headers(customer),
        }
        if checksum is not None:
            headers[HEADER_PREFIX + checksum.algorithm] = checksum.b64()
        return copy_object_result_xml(stored.info.etag, stored.info.created_at), headers

    return await answer_when_done(req, work())


def parse_copy_range(value: str | None, size: int) -> tuple[int, int]:
    """[start, end) of ``x-amz-copy-source-range`` (``bytes=first-last``, both required)."""
    if value is None:
        return 0, size
    match = _COPY_RANGE.match(value.strip())
    if match is None:
        raise s3_error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where"
            " first and last are the zero-based offsets of the first and last bytes to copy",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=value,
        )
    first, last = int(match.group(1)), int(match.group(2))
    if first > last or last >= size:
        raise s3_error(
            "InvalidRange",
            f"the range {first}-{last} does not lie within the source's {size} bytes",
            ActualObjectSize=size,
        )
    return first, last + 1


async def upload_part_copy(req: S3Request) -> web.StreamResponse:
    part_number = req.endpoint.part_number
    if part_number is None:
        raise s3_error("InvalidArgument", "partNumber is required", ArgumentName="partNumber")
    upload_id = upload_id_of(req)
    customer = customer_key(req)  # the upload's (SSE-C), if any
    range_header = req.http.headers.get("x-amz-copy-source-range")
    m = _COPY_RANGE.match(range_header.strip()) if range_header else None
    handle = await open_source(req, int(m.group(1)) if m else 0)
    start, end = parse_copy_range(range_header, handle.info.size)
    if end - start > MAX_COPY_SIZE:
        raise s3_error("EntityTooLarge", "a part may be at most 5 GiB")

    async def work() -> tuple[bytes, dict[str, str]]:
        part = await req.client.multipart.upload_part(
            req.bucket,
            req.key,
            upload_id,
            part_number,
            handle.read(start, end),
            size=end - start,
            customer_key=customer,
        )
        headers = {**source_version_headers(handle.info), **response_headers(customer)}
        return copy_part_result_xml(part.etag, time.time()), headers

    return await answer_when_done(req, work())
