"""Bucket operations: list, create (with a canned ACL), head, delete, location."""

from __future__ import annotations

from aiohttp import web

from skymesh.gateway.s3.app import XML, S3Request
from skymesh.gateway.s3.handlers.acl import PRIVATE, canned_acl
from skymesh.gateway.s3.router import validate_bucket_name
from skymesh.gateway.s3.xml import (
    MAX_CREATE_BUCKET_BODY,
    list_buckets_xml,
    location_xml,
    parse_create_bucket,
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
    body = await req.read_small_body(MAX_CREATE_BUCKET_BODY)
    region = parse_create_bucket(body) if body else None
    acl = canned_acl(req.http.headers, bucket=True) or PRIVATE
    await req.client.create_bucket(req.bucket, region or "", acl)
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
    """Buckets are never versioned: the empty configuration AWS gives a never-versioned bucket.

    Tools ask before deleting (rclone's purge logs an error on 501), so answering
    "never enabled" lets them take the unversioned path they would take on AWS.
    """
    await req.client.get_bucket(req.bucket)  # NoSuchBucket, as for any bucket operation
    return web.Response(body=versioning_xml(), content_type=XML)
