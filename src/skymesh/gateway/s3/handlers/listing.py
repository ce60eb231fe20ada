"""ListObjects (v1), ListObjectsV2 and ListObjectVersions: one page from the coordinator's indexed scan."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.xml import (
    VersionItem,
    list_objects_v1_xml,
    list_objects_v2_xml,
    list_versions_xml,
)
from skymesh.wire.metainfo import (
    ListObjectsRequest,
    ListObjectsResponse,
    ListVersionsRequest,
    ListVersionsResponse,
)

MAX_KEYS = 1000


def max_keys(req: S3Request) -> int:
    return min(req.int_query("max-keys", MAX_KEYS), MAX_KEYS)


def encode_token(start_after: str) -> str:
    return base64.urlsafe_b64encode(start_after.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise s3_error(
            "InvalidArgument",
            "the continuation token is not valid",
            ArgumentName="continuation-token",
        ) from e


def encoding_type(req: S3Request) -> str | None:
    value = req.query("encoding-type")
    if value is not None and value != "url":
        raise s3_error("InvalidArgument", "encoding-type must be url", ArgumentName="encoding-type")
    return value


def _owner(req: S3Request) -> tuple[str, str] | None:
    """The Owner shown in listings: only to the owner, since it is the project id, and
    anonymous or other projects' readers of a public bucket must not learn it."""
    return (req.credential.project_id, req.credential.project_id) if req.caller_owns else None


async def _page(req: S3Request, start_after: str, limit: int) -> ListObjectsResponse:
    if limit == 0:
        # S3 answers an empty, untruncated page for max-keys=0 (after checking the bucket)
        await req.client.get_bucket(req.bucket)
        return ListObjectsResponse(entries=[], prefixes=[], truncated=False)
    return await req.client.list_objects(
        ListObjectsRequest(
            bucket=req.bucket,
            prefix=req.query("prefix", "") or "",
            delimiter=req.query("delimiter", "") or "",
            start_after=start_after,
            limit=limit,
        )
    )


async def list_objects_v2(req: S3Request) -> web.StreamResponse:
    limit = max_keys(req)
    enc = encoding_type(req)
    token = req.query("continuation-token")
    start_after = req.query("start-after", "") or ""
    resume = decode_token(token) if token else ""
    page = await _page(req, max(start_after, resume), limit)
    body = list_objects_v2_xml(
        bucket=req.bucket,
        prefix=req.query("prefix", "") or "",
        delimiter=req.query("delimiter", "") or "",
        max_keys=limit,
        entries=[(e.key, e.created_at, e.etag, e.size) for e in page.entries],
        common_prefixes=page.prefixes,
        is_truncated=page.truncated,
        continuation_token=token,
        next_continuation_token=encode_token(page.next_start_after) if page.truncated else None,
        start_after=start_after or None,
        encoding_type=enc,
        owner=_owner(req) if req.query("fetch-owner") == "true" else None,
    )
    return web.Response(body=body, content_type=XML)


async def list_objects_v1(req: S3Request) -> web.StreamResponse:
    limit = max_keys(req)
    enc = encoding_type(req)
    marker = req.query("marker", "") or ""
    delimiter = req.query("delimiter", "") or ""
    page = await _page(req, marker, limit)
    body = list_objects_v1_xml(
        bucket=req.bucket,
        prefix=req.query("prefix", "") or "",
        delimiter=delimiter,
        max_keys=limit,
        entries=[(e.key, e.created_at, e.etag, e.size) for e in page.entries],
        common_prefixes=page.prefixes,
        is_truncated=page.truncated,
        marker=marker,
        next_marker=page.next_start_after if page.truncated and delimiter else None,
        encoding_type=enc,
        owner=_owner(req),
    )
    return web.Response(body=body, content_type=XML)


async def list_object_versions(req: S3Request) -> web.StreamResponse:
    """ListObjectVersions: one page of the coordinator's walk over (key, version)."""
    limit = max_keys(req)
    enc = encoding_type(req)
    prefix = req.query("prefix", "") or ""
    delimiter = req.query("delimiter", "") or ""
    key_marker = req.query("key-marker", "") or ""
    version_marker = req.query("version-id-marker", "") or ""
    if version_marker and not key_marker:
        raise s3_error(
            "InvalidArgument",
            "A version-id marker cannot be specified without a key marker.",
            ArgumentName="version-id-marker",
            ArgumentValue=version_marker,
        )
    if limit == 0:
        await req.client.get_bucket(req.bucket)
        page = ListVersionsResponse(entries=[], prefixes=[], truncated=False)
    else:
        page = await req.client.list_versions(
            ListVersionsRequest(
                bucket=req.bucket,
                prefix=prefix,
                delimiter=delimiter,
                key_marker=key_marker,
                version_id_marker=version_marker,
                limit=limit,
            )
        )
    body = list_versions_xml(
        bucket=req.bucket,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=limit,
        is_truncated=page.truncated,
        items=[
            VersionItem(
                key=e.key,
                version_id=e.version_id,
                is_latest=e.is_latest,
                last_modified=e.created_at,
                delete_marker=e.delete_marker,
                etag=e.etag,
                size=e.size,
            )
            for e in page.entries
        ],
        common_prefixes=page.prefixes,
        key_marker=key_marker,
        version_id_marker=version_marker,
        next_key_marker=page.next_key_marker if page.truncated else None,
        next_version_id_marker=page.next_version_id_marker
        if page.truncated and page.next_version_id_marker
        else None,
        encoding_type=enc,
        owner=_owner(req),
    )
    return web.Response(body=body, content_type=XML)
