"""Bucket lifecycle: Put/Get/DeleteBucketLifecycleConfiguration, and ``x-amz-expiration``.

The rules are checked here (``gateway/s3/lifecycle.py``) and stored by the
coordinator as bucket configuration; its ``lifecycle-rules`` loop applies them.
A rule's Tag filter travels with the keyed digests of its tags
(``skymesh.lifecycle_rules.tag_digest``), which is all the coordinator matches:
object tags stay sealed in their object's metadata.

``x-amz-expiration`` (GetObject, HeadObject, PutObject) and CreateMultipartUpload's
``x-amz-abort-date`` / ``x-amz-abort-rule-id`` are worked out here from the bucket's
configuration that authorization already read (``req.access.config``, from the
gateway's :class:`~skymesh.gateway.s3.public.BucketDirectory`, kept ``CACHE_TTL``
seconds), with the same pure matching the coordinator uses: no coordinator call of
their own.
"""

from __future__ import annotations

import logging

import aiohttp
import msgspec
from aiohttp import web

from skymesh.client.client import StoredObject
from skymesh.errors import SkymeshError
from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.handlers.small_body import read_small_body
from skymesh.gateway.s3.lifecycle import MAX_LIFECYCLE_BODY, lifecycle_xml, parse_lifecycle
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.xml import http_date
from skymesh.lifecycle_rules import (
    expiration_header,
    object_expiration,
    tag_digest,
    tag_digests,
    upload_abort,
)
from skymesh.wire.metainfo import BucketConfig, LifecycleRule

log = logging.getLogger(__name__)

EXPIRATION_HEADER = "x-amz-expiration"


async def get_bucket_lifecycle(req: S3Request) -> web.StreamResponse:
    config = await req.client.metainfo.bucket_config(req.bucket)
    if config.lifecycle is None:
        raise s3_error("NoSuchLifecycleConfiguration", BucketName=req.bucket)
    return web.Response(body=lifecycle_xml(config.lifecycle), content_type=XML)


async def put_bucket_lifecycle(req: S3Request) -> web.StreamResponse:
    body = await read_small_body(req, MAX_LIFECYCLE_BODY)
    rules = parse_lifecycle(body)
    if any(rule.tags for rule in rules):
        secret = req.client.keys.tag_secret(req.bucket)
        rules = [
            msgspec.structs.replace(
                rule, tag_digests=[tag_digest(secret, t.key, t.value) for t in rule.tags]
            )
            for rule in rules
        ]
    await req.client.metainfo.put_bucket_lifecycle(req.bucket, rules)
    _forget(req)
    return web.Response(status=200)


async def delete_bucket_lifecycle(req: S3Request) -> web.StreamResponse:
    await req.client.metainfo.put_bucket_lifecycle(req.bucket, None)
    _forget(req)
    return web.Response(status=204)


def _forget(req: S3Request) -> None:
    """This gateway's next x-amz-expiration reads the new rules (others' within the cache TTL)."""
    if req.ctx.directory is not None:
        req.ctx.directory.forget(req.bucket)


async def _config(req: S3Request) -> BucketConfig | None:
    """The bucket's configuration as authorization read it; a request that was not
    decided on the bucket's configuration (an anonymous or ACL-granted read) looks it up
    in the same directory, where that decision left it. None when no project of this
    gateway owns the bucket or it cannot be read now."""
    if req.access is not None:
        return req.access.config
    if req.ctx.directory is None:
        return None
    try:
        owned = await req.ctx.directory.lookup(req.bucket)
    except (SkymeshError, aiohttp.ClientError, TimeoutError):
        return None
    return owned.config if owned is not None else None


async def _rules(req: S3Request, abort: bool = False) -> tuple[list[LifecycleRule], float] | None:
    """The bucket's enabled rules with an Expiration (``abort``: an
    AbortIncompleteMultipartUpload), and the day length; None when none (or the bucket's
    configuration cannot be read now: the headers are advisory)."""
    config = await _config(req)
    if config is None or not config.lifecycle:
        return None
    day = config.lifecycle_day
    rules = [
        r
        for r in config.lifecycle
        if r.enabled
        and (
            r.abort_days is not None
            if abort
            else (r.expiration_days is not None or r.expiration_date is not None)
        )
    ]
    return (rules, day) if rules else None


async def expiration_headers(req: S3Request, obj: StoredObject) -> dict[str, str]:
    """``x-amz-expiration`` for the current version ``obj`` when an enabled rule expires it."""
    if not obj.info.is_latest or obj.info.delete_marker:
        return {}
    found = await _rules(req)
    if found is None:
        return {}
    rules, day = found
    digests: list[str] = []
    if obj.meta.tags and any(r.tag_digests for r in rules):
        try:
            digests = tag_digests(req.client.keys.tag_secret(req.bucket), obj.meta.tags)
        except SkymeshError:
            return {}  # a client without the bucket key cannot tell; the header is advisory
    expiry = object_expiration(
        rules, obj.info.key, obj.info.size, obj.info.created_at, digests, day
    )
    if expiry is None:
        return {}
    return {EXPIRATION_HEADER: expiration_header(*expiry)}


async def abort_headers(req: S3Request, key: str, initiated_at: float) -> dict[str, str]:
    """``x-amz-abort-date`` and ``x-amz-abort-rule-id`` for a new multipart upload that an
    enabled AbortIncompleteMultipartUpload rule will abort."""
    found = await _rules(req, abort=True)
    if found is None:
        return {}
    abort = upload_abort(found[0], key, initiated_at, found[1])
    if abort is None:
        return {}
    return {"x-amz-abort-date": http_date(abort[0]), "x-amz-abort-rule-id": abort[1]}
