"""Object operations: put, get (with Range), head, delete, delete many."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from aiohttp import web

from skymesh.client.client import StoredObject
from skymesh.client.objectmeta import ObjectMeta
from skymesh.errors import SkymeshError
from skymesh.gateway.s3.app import XML, S3Request
from skymesh.gateway.s3.errors import from_skymesh_error, s3_error
from skymesh.gateway.s3.handlers.body import PutBody
from skymesh.gateway.s3.router import validate_key
from skymesh.gateway.s3.xml import (
    MAX_DELETE_BODY,
    delete_result_xml,
    http_date,
    parse_delete_objects,
)

log = logging.getLogger(__name__)

STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)
MAX_USER_METADATA = 2048  # bytes of x-amz-meta-* names and values, as S3 allows

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


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
        elif lower in STORED_HEADERS:
            stored[lower] = value
    if size > MAX_USER_METADATA:
        raise s3_error(
            "MetadataTooLarge", f"user metadata is {size} bytes; the limit is {MAX_USER_METADATA}"
        )
    return ObjectMeta(
        content_type=headers.get("Content-Type", "binary/octet-stream"),
        user=user,
        headers=stored,
    )


def object_headers(obj: StoredObject) -> dict[str, str]:
    info, meta = obj.info, obj.meta
    headers = {
        "ETag": f'"{info.etag}"',
        "Last-Modified": http_date(info.created_at),
        "Content-Type": meta.content_type,
        "Accept-Ranges": "bytes",
    }
    for name, value in meta.headers.items():
        headers[name.title()] = value
    for name, value in meta.user.items():
        headers[f"x-amz-meta-{name}"] = value
    return headers


async def put_object(req: S3Request) -> web.StreamResponse:
    validate_key(req.key)
    meta = meta_from_headers(req.http.headers)
    body = PutBody(req)
    stored = await req.client.put_object(
        req.bucket,
        req.key,
        body.chunks(),
        size=body.size,
        meta=meta,
        hashers=body.hashers,
        before_commit=body.verify,
    )
    resp = web.Response(status=200)
    resp.headers["ETag"] = f'"{stored.info.etag}"'
    return resp


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
        n = int(last)
        if n == 0 or size == 0:
            raise s3_error(
                "InvalidRange", "the requested range is not satisfiable", ActualObjectSize=size
            )
        return max(0, size - n), size
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if last and int(last) < start:
        return None
    if start >= size:
        raise s3_error(
            "InvalidRange", "the requested range is not satisfiable", ActualObjectSize=size
        )
    return start, end


async def get_object(req: S3Request) -> web.StreamResponse:
    range_header = req.http.headers.get("Range")
    hint = 0
    m = _RANGE.match(range_header.strip()) if range_header else None
    if m and m.group(1):
        hint = int(m.group(1))
    handle = await req.client.open_object(
        req.bucket, req.key, req.query("versionId", "") or "", hint
    )
    size = handle.info.size
    rng = parse_range(range_header, size)
    start, end = rng if rng is not None else (0, size)
    resp = web.StreamResponse(status=206 if rng is not None else 200)
    resp.headers.update(object_headers(handle.object))
    _apply_response_overrides(req, resp)
    if rng is not None:
        resp.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    resp.content_length = end - start
    body = handle.read(start, end)
    try:
        first = await anext(body, None)
    except SkymeshError as e:
        raise from_skymesh_error(e) from e
    await resp.prepare(req.http)
    sent = 0
    try:
        if first is not None:
            await resp.write(first)
            sent += len(first)
        async for chunk in body:
            await resp.write(chunk)
            sent += len(chunk)
    except SkymeshError as e:
        # headers are gone: all we can do is cut the connection so the client sees a short body
        log.error("GET %s/%s failed after %d bytes: %s", req.bucket, req.key, sent, e)
        if req.http.transport is not None:
            req.http.transport.close()
        return resp
    await resp.write_eof()
    return resp


def _apply_response_overrides(req: S3Request, resp: web.StreamResponse) -> None:
    for param, header in (
        ("response-content-type", "Content-Type"),
        ("response-content-language", "Content-Language"),
        ("response-expires", "Expires"),
        ("response-cache-control", "Cache-Control"),
        ("response-content-disposition", "Content-Disposition"),
        ("response-content-encoding", "Content-Encoding"),
    ):
        value = req.query(param)
        if value is not None:
            resp.headers[header] = value


async def head_object(req: S3Request) -> web.StreamResponse:
    obj = await req.client.head_object(req.bucket, req.key, req.query("versionId", "") or "")
    resp = web.Response(status=200)
    resp.headers.update(object_headers(obj))
    resp.headers["Content-Length"] = str(obj.info.size)
    return resp


async def delete_object(req: S3Request) -> web.StreamResponse:
    await req.client.delete_object(req.bucket, req.key, req.query("versionId", "") or "")
    return web.Response(status=204)


async def delete_objects(req: S3Request) -> web.StreamResponse:
    body = await req.read_small_body(MAX_DELETE_BODY)
    quiet, keys = parse_delete_objects(body)
    if len(keys) > 1000:
        raise s3_error("MalformedXML", "at most 1000 keys per DeleteObjects request")
    deleted: list[tuple[str, str]] = []
    failed: list[tuple[str, str, str]] = []
    bucket = req.bucket
    for key, version_id in keys:
        try:
            await req.client.delete_object(bucket, key, version_id or "")
            deleted.append((key, version_id or ""))
        except SkymeshError as e:
            err = from_skymesh_error(e)
            if err.code == "NoSuchBucket":
                raise err from e
            failed.append((key, err.code, err.message))
    return web.Response(body=delete_result_xml(deleted, failed, quiet), content_type=XML)
