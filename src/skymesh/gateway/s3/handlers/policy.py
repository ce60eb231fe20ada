"""Bucket policies, Public Access Block and ownership controls (the handlers).

The policy language lives in ``gateway/s3/policy.py`` and is enforced for every
request by ``gateway/s3/access.py``; these handlers store and answer the
configuration. The coordinator only stores it (capped in size), in the bucket's
row. Every change is forgotten from this gateway's directory at once, so the next
request here sees it; other gateways see it within ``public.CACHE_TTL``.
"""

from __future__ import annotations

from aiohttp import web

from skymesh.gateway.s3 import policy as language
from skymesh.gateway.s3.access import ENFORCED
from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.handlers.small_body import read_small_body
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.xml import (
    MAX_ACCESS_CONFIG_BODY,
    ownership_controls_xml,
    parse_ownership_controls,
    parse_public_access_block,
    policy_status_xml,
    public_access_block_xml,
)
from skymesh.wire.metainfo import PublicAccessBlock

OWNERSHIPS = ("ObjectWriter", "BucketOwnerPreferred", ENFORCED)


def _forget(req: S3Request) -> None:
    if req.ctx.directory is not None:
        req.ctx.directory.forget(req.bucket)


# ---------------------------------------------------------------- policy


async def get_bucket_policy(req: S3Request) -> web.StreamResponse:
    config = await req.client.metainfo.bucket_config(req.bucket)
    if config.policy is None:
        raise s3_error("NoSuchBucketPolicy", BucketName=req.bucket)
    return web.Response(body=config.policy.encode(), content_type="application/json")


async def put_bucket_policy(req: S3Request) -> web.StreamResponse:
    body = await read_small_body(req, 2 * language.MAX_POLICY_BYTES)
    parsed = language.parse(body, req.bucket)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise s3_error("MalformedPolicy", "This policy contains invalid Json") from None
    config = await req.client.metainfo.bucket_config(req.bucket)
    pab = config.public_access_block
    if pab is not None and pab.block_public_policy and language.is_public(parsed):
        raise s3_error("AccessDenied", "Access Denied: Block Public Access blocks public policies")
    await req.client.metainfo.put_bucket_policy(req.bucket, text)
    _forget(req)
    return web.Response(status=204)


async def delete_bucket_policy(req: S3Request) -> web.StreamResponse:
    await req.client.metainfo.put_bucket_policy(req.bucket, None)
    _forget(req)
    return web.Response(status=204)


async def get_bucket_policy_status(req: S3Request) -> web.StreamResponse:
    config = await req.client.metainfo.bucket_config(req.bucket)
    if config.policy is None:
        raise s3_error("NoSuchBucketPolicy", BucketName=req.bucket)
    public = language.is_public(language.parse_cached(config.policy, req.bucket))
    return web.Response(body=policy_status_xml(public), content_type=XML)


# ---------------------------------------------------------------- Public Access Block


async def get_public_access_block(req: S3Request) -> web.StreamResponse:
    config = await req.client.metainfo.bucket_config(req.bucket)
    pab = config.public_access_block
    if pab is None:
        raise s3_error("NoSuchPublicAccessBlockConfiguration", BucketName=req.bucket)
    flags = (
        pab.block_public_acls,
        pab.ignore_public_acls,
        pab.block_public_policy,
        pab.restrict_public_buckets,
    )
    return web.Response(body=public_access_block_xml(flags), content_type=XML)


async def put_public_access_block(req: S3Request) -> web.StreamResponse:
    body = await read_small_body(req, MAX_ACCESS_CONFIG_BODY)
    acls, ignore, block_policy, restrict = parse_public_access_block(body)
    pab = PublicAccessBlock(
        block_public_acls=acls,
        ignore_public_acls=ignore,
        block_public_policy=block_policy,
        restrict_public_buckets=restrict,
    )
    await req.client.metainfo.put_public_access_block(req.bucket, pab)
    _forget(req)
    return web.Response(status=200)


async def delete_public_access_block(req: S3Request) -> web.StreamResponse:
    await req.client.metainfo.put_public_access_block(req.bucket, None)
    _forget(req)
    return web.Response(status=204)


# ---------------------------------------------------------------- ownership controls


async def get_bucket_ownership_controls(req: S3Request) -> web.StreamResponse:
    config = await req.client.metainfo.bucket_config(req.bucket)
    if config.ownership is None:
        raise s3_error("OwnershipControlsNotFoundError", BucketName=req.bucket)
    return web.Response(body=ownership_controls_xml(config.ownership), content_type=XML)


async def put_bucket_ownership_controls(req: S3Request) -> web.StreamResponse:
    body = await read_small_body(req, MAX_ACCESS_CONFIG_BODY)
    ownership = parse_ownership_controls(body)
    if ownership not in OWNERSHIPS:
        raise s3_error(
            "MalformedXML",
            f"ObjectOwnership must be one of {', '.join(OWNERSHIPS)}",
        )
    if ownership == ENFORCED:
        config = await req.client.metainfo.bucket_config(req.bucket)
        if config.acl != "private":
            raise s3_error("InvalidBucketAclWithObjectOwnership")
    await req.client.metainfo.put_bucket_ownership(req.bucket, ownership)
    _forget(req)
    return web.Response(status=200)


async def delete_bucket_ownership_controls(req: S3Request) -> web.StreamResponse:
    await req.client.metainfo.put_bucket_ownership(req.bucket, None)
    _forget(req)
    return web.Response(status=204)
