"""Multipart uploads: parts stream straight to nodes; completion is one atomic commit."""

from __future__ import annotations

from urllib.parse import quote

import msgspec
from aiohttp import web

from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.handlers.body import PutBody
from skymesh.gateway.s3.handlers.checksums import composite, multipart_headers
from skymesh.gateway.s3.handlers.encryption import check_request as check_sse
from skymesh.gateway.s3.handlers.encryption import customer_key, response_headers
from skymesh.gateway.s3.handlers.lifecycle import abort_headers
from skymesh.gateway.s3.handlers.listing import encoding_type
from skymesh.gateway.s3.handlers.object_lock import write_lock
from skymesh.gateway.s3.handlers.objects import (
    body_checksum_headers,
    meta_from_headers,
    version_headers,
    write_conditions,
)
from skymesh.gateway.s3.handlers.small_body import read_small_body
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.router import validate_key
from skymesh.gateway.s3.xml import (
    MAX_COMPLETE_BODY,
    complete_multipart_xml,
    initiate_multipart_xml,
    list_multipart_uploads_xml,
    list_parts_xml,
    parse_complete_parts,
)
from skymesh.wire.metainfo import CompletePart, ListPartsRequest, ListUploadsRequest, PartInfo

MAX_PART_SIZE = 5 * 1024**3


def upload_id_of(req: S3Request) -> str:
    upload_id = req.endpoint.upload_id
    if not upload_id:
        raise s3_error("InvalidArgument", "uploadId is required", ArgumentName="uploadId")
    return upload_id


async def create_multipart_upload(req: S3Request) -> web.StreamResponse:
    validate_key(req.key)
    customer = customer_key(req)
    check_sse(req.http.headers)
    checksum = multipart_headers(req.http.headers)
    # the lock rides sealed with the upload until completion hands it to the coordinator
    meta = msgspec.structs.replace(meta_from_headers(req.http.headers), lock=await write_lock(req))
    info = await req.client.multipart.create(req.bucket, req.key, meta, customer)
    body = initiate_multipart_xml(req.bucket, req.key, info.upload_id)
    resp = web.Response(body=body, content_type=XML)
    resp.headers.update(response_headers(customer))
    resp.headers.update(checksum)
    resp.headers.update(await abort_headers(req, req.key, info.created_at))
    return resp


async def upload_part(req: S3Request) -> web.StreamResponse:
    part_number = req.endpoint.part_number
    if part_number is None:
        raise s3_error("InvalidArgument", "partNumber is required", ArgumentName="partNumber")
    customer = customer_key(req)
    body = PutBody(req, MAX_PART_SIZE, "a part may be at most 5 GiB")
    part = await req.client.multipart.upload_part(
        req.bucket,
        req.key,
        upload_id_of(req),
        part_number,
        body.chunks(),
        size=body.size,
        hashers=body.hashers,
        before_commit=body.verify,
        customer_key=customer,
    )
    resp = web.Response(status=200)
    resp.headers["ETag"] = f'"{part.etag}"'
    resp.headers.update(body_checksum_headers(body))
    resp.headers.update(response_headers(customer))
    return resp


async def complete_multipart_upload(req: S3Request) -> web.StreamResponse:
    """Join the parts. When every part was uploaded with one flexible checksum, the
    object gets S3's composite (``base64(checksum of part checksums)-N``), answered
    here and by GET/HEAD with checksum mode; a part checksum the client lists must
    match the one the part was uploaded with (``InvalidPart``)."""
    parts = parse_complete_parts(await read_small_body(req, MAX_COMPLETE_BODY))
    if not parts:
        raise s3_error("MalformedXML", "CompleteMultipartUpload needs at least one part")
    if_match, if_none_match = write_conditions(req)
    customer = customer_key(req)  # optional here, as on S3: only echoed
    combined: list[tuple[str, str]] = []

    def composite_checksum(listed: list[PartInfo]) -> dict[str, str]:
        found = composite([p.checksum for p in listed]) if len(listed) == len(parts) else None
        if found is None:
            return {}
        combined.append(found)
        return {found[0]: found[1]}

    info = await req.client.multipart.complete(
        req.bucket,
        req.key,
        upload_id_of(req),
        [
            CompletePart(
                part_number=n,
                etag=etag.strip('"'),
                checksum=f"{checksum[0]}:{checksum[1]}" if checksum else "",
            )
            for n, etag, checksum in parts
        ],
        if_match=if_match,
        if_none_match=if_none_match,
        composite=composite_checksum,
    )
    location = f"{req.http.scheme}://{req.http.host}/{req.bucket}/{quote(req.key, safe='/')}"
    body = complete_multipart_xml(
        location, req.bucket, req.key, f'"{info.etag}"', combined[0] if combined else None
    )
    resp = web.Response(body=body, content_type=XML)
    resp.headers.update(version_headers(info))
    resp.headers.update(response_headers(customer))
    return resp


def _split_checksum(stored: str) -> tuple[str, str] | None:
    """A part's stored ``"<algorithm>:<base64>"`` as (algorithm, value)."""
    alg, _, value = stored.partition(":")
    return (alg, value) if value else None


async def abort_multipart_upload(req: S3Request) -> web.StreamResponse:
    await req.client.multipart.abort(req.bucket, req.key, upload_id_of(req))
    return web.Response(status=204)


async def list_parts(req: S3Request) -> web.StreamResponse:
    upload_id = upload_id_of(req)
    marker = req.int_query("part-number-marker", 0)
    limit = min(1000, req.int_query("max-parts", 1000))
    page = await req.client.metainfo.list_parts(
        ListPartsRequest(
            bucket=req.bucket,
            key=req.key,
            upload_id=upload_id,
            part_number_marker=marker,
            limit=limit,
        )
    )
    body = list_parts_xml(
        bucket=req.bucket,
        key=req.key,
        upload_id=upload_id,
        parts=[(p.part_number, p.uploaded_at, f'"{p.etag}"', p.size) for p in page.parts],
        checksums=[_split_checksum(p.checksum) for p in page.parts],
        part_number_marker=marker,
        next_part_number_marker=page.parts[-1].part_number if page.parts else marker,
        max_parts=limit,
        is_truncated=page.truncated,
    )
    return web.Response(body=body, content_type=XML)


async def list_multipart_uploads(req: S3Request) -> web.StreamResponse:
    """One page of live uploads; with a delimiter, keys roll up into CommonPrefixes."""
    limit = min(1000, req.int_query("max-uploads", 1000))
    enc = encoding_type(req)
    prefix = req.query("prefix", "") or ""
    delimiter = req.query("delimiter", "") or ""
    key_marker = req.query("key-marker", "") or ""
    upload_id_marker = req.query("upload-id-marker", "") or ""
    page = await req.client.metainfo.list_uploads(
        ListUploadsRequest(
            bucket=req.bucket,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            upload_id_marker=upload_id_marker,
            limit=limit,
        )
    )
    body = list_multipart_uploads_xml(
        bucket=req.bucket,
        uploads=[(u.key, u.upload_id, u.created_at) for u in page.uploads],
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        upload_id_marker=upload_id_marker,
        next_key_marker=page.next_key_marker if page.truncated else None,
        next_upload_id_marker=page.next_upload_id_marker
        if page.truncated and page.next_upload_id_marker
        else None,
        max_uploads=limit,
        is_truncated=page.truncated,
        common_prefixes=page.prefixes,
        encoding_type=enc,
    )
    return web.Response(body=body, content_type=XML)
