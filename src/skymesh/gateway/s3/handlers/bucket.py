"""Bucket operations: list, create (with a canned ACL or Object Lock), head, delete,
location, versioning."""

from __future__ import annotations

from aiohttp import web

from skymesh.errors import Conflict
from skymesh.gateway.s3.handlers.acl import PRIVATE, canned_acl
from skymesh.gateway.s3.handlers.small_body import read_small_body
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.router import validate_bucket_name
from skymesh.gateway.s3.xml import (
    MAX_CREATE_BUCKET_BODY,
    MAX_VERSIONING_BODY,
    list_buckets_xml,
    location_xml,
    parse_create_bucket,
    parse_versioning,
    versioning_xml,
)


def _forget(req: S3Request) -> None:
    """Owners and ACLs of unsigned requests are cached: drop what this request changed."""
    if req.ctx.directory is not None:
        req.ctx.directory.forget(req.bucket)


async def list_buckets(req: S3Request) -> web.StreamResponse:
    buckets = await req.client.list_buckets()
    body = list_buckets_xml(
        req.credential.project_id,
        req.credential.project_id,
        [(b.name, b.created_at) for b in buckets],
    )
    return web.Response(body=body, content_type=XML)


async def create_bucket(req: S3Request) -> web.StreamResponse:
    validate_bucket_name(req.bucket)
    body = await read_small_body(req, MAX_CREATE_BUCKET_BODY)
    region = parse_create_bucket(body) if body else None
    # The gateway's own S3 region (what clients are configured with, and what the AWS
    # CLI sends as the constraint) and AWS's default stand for the whole network;
    # anything else is a residency the coordinator checks (docs/operations.md).
    if region in ("us-east-1", req.ctx.config.s3_region):
        region = None
    acl = canned_acl(req.http.headers, bucket=True) or PRIVATE
    lock_header = req.http.headers.get("x-amz-bucket-object-lock-enabled", "").strip().lower()
    object_lock = lock_header == "true"
    try:
        await req.client.create_bucket(req.bucket, region or "", acl, object_lock=object_lock)
    except Conflict as e:
        # S3's North Virginia region, for legacy compatibility, answers 200 to
        # re-creating a bucket you own and resets its ACL; every other region
        # answers BucketAlreadyOwnedByYou.
        if (
            e.code != "BucketAlreadyOwnedByYou"
            or req.ctx.config.s3_region != "us-east-1"
            or region
            or (await req.client.get_bucket(req.bucket)).region
        ):
            raise
        await req.client.metainfo.put_bucket_acl(req.bucket, acl)
    _forget(req)
    resp = web.Response(status=200)
    resp.headers["Location"] = f"/{req.bucket}"
    return resp


async def head_bucket(req: S3Request) -> web.StreamResponse:
    info = await req.client.get_bucket(req.bucket)
    resp = web.Response(status=200)
    resp.headers["x-amz-bucket-region"] = info.region or req.ctx.config.s3_region
    return resp


async def delete_bucket(req: S3Request) -> web.StreamResponse:
    await req.client.delete_bucket(req.bucket)
    _forget(req)
    return web.Response(status=204)


async def get_bucket_location(req: S3Request) -> web.StreamResponse:
    info = await req.client.get_bucket(req.bucket)
    return web.Response(body=location_xml(info.region or ""), content_type=XML)


async def get_bucket_versioning(req: S3Request) -> web.StreamResponse:
    """Enabled or Suspended; a never-versioned bucket answers the empty configuration.

    Tools ask before deleting (rclone's purge), so "never enabled" must look exactly
    as on AWS for them to take the unversioned path.
    """
    config = await req.client.metainfo.bucket_config(req.bucket)
    return web.Response(body=versioning_xml(config.versioning or None), content_type=XML)


async def put_bucket_versioning(req: S3Request) -> web.StreamResponse:
    status = parse_versioning(await read_small_body(req, MAX_VERSIONING_BODY))
    await req.client.put_bucket_versioning(req.bucket, status)
    return web.Response(status=200)
