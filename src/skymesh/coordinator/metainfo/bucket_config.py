"""Bucket ACL, tags, CORS and lifecycle rules: what S3 calls bucket subresources.

The gateway checks them against S3's rules (and answers S3's error codes); the
coordinator only stores them, capped so that no caller can bloat a bucket row.
They are kept in plain text, like bucket names: they are configuration that the
gateway must read before it knows which project's keys to use (anonymous reads,
CORS preflights), not object content.
"""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from skymesh.coordinator.db.schema import buckets
from skymesh.coordinator.metainfo.common import require_bucket
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.errors import BadRequest
from skymesh.wire.metainfo import (
    BucketConfig,
    BucketRequest,
    CorsRule,
    LifecycleRule,
    PutBucketAclRequest,
    PutBucketCorsRequest,
    PutBucketLifecycleRequest,
    PutBucketTaggingRequest,
    PutBucketVersioningRequest,
    Tag,
)

ACLS = ("private", "public-read")
MAX_BUCKET_TAGS = 50
MAX_TAG_CHARS = 256  # generous: the gateway enforces S3's 128 (key) / 256 (value) UTF-16 units
MAX_CORS_RULES = 100
MAX_CORS_JSON = 64 * 1024  # S3 caps a CORS configuration at 64 KB
MAX_LIFECYCLE_RULES = 1000  # S3's limit
MAX_LIFECYCLE_JSON = 512 * 1024  # 1000 rules with prefixes and tags fit

_SELECT = sa.select(
    buckets.c.acl, buckets.c.tags, buckets.c.cors, buckets.c.versioning, buckets.c.lifecycle
).where(buckets.c.name == sa.bindparam("name"))


def check_acl(acl: str) -> None:
    if acl not in ACLS:
        raise BadRequest(f"ACL must be one of {', '.join(ACLS)}", code="InvalidArgument")


def _encode_tags(tags: list[Tag] | None) -> str | None:
    if tags is None:
        return None
    if len(tags) > MAX_BUCKET_TAGS:
        raise BadRequest(f"at most {MAX_BUCKET_TAGS} bucket tags", code="InvalidTag")
    if len({t.key for t in tags}) != len(tags):
        raise BadRequest("tag keys must be unique", code="InvalidTag")
    for t in tags:
        if not t.key or len(t.key) > MAX_TAG_CHARS or len(t.value) > MAX_TAG_CHARS:
            raise BadRequest(
                f"tag keys are 1-{MAX_TAG_CHARS} characters, values at most {MAX_TAG_CHARS}",
                code="InvalidTag",
            )
    return msgspec.json.encode(tags).decode()


def _encode_cors(rules: list[CorsRule] | None) -> str | None:
    if rules is None:
        return None
    if not 1 <= len(rules) <= MAX_CORS_RULES:
        raise BadRequest(f"a CORS configuration has 1-{MAX_CORS_RULES} rules", code="MalformedXML")
    text = msgspec.json.encode(rules).decode()
    if len(text) > MAX_CORS_JSON:
        raise BadRequest(
            f"the CORS configuration is over {MAX_CORS_JSON} bytes", code="MaxMessageLengthExceeded"
        )
    return text


def _encode_lifecycle(rules: list[LifecycleRule] | None) -> str | None:
    if rules is None:
        return None
    if not 1 <= len(rules) <= MAX_LIFECYCLE_RULES:
        raise BadRequest(
            f"a lifecycle configuration has 1-{MAX_LIFECYCLE_RULES} rules", code="MalformedXML"
        )
    if len({r.id for r in rules}) != len(rules):
        raise BadRequest("lifecycle rule ids must be unique", code="InvalidArgument")
    text = msgspec.json.encode(rules).decode()
    if len(text) > MAX_LIFECYCLE_JSON:
        raise BadRequest(
            f"the lifecycle configuration is over {MAX_LIFECYCLE_JSON} bytes",
            code="MaxMessageLengthExceeded",
        )
    return text


def decode_lifecycle(text: str | None) -> list[LifecycleRule] | None:
    """A ``buckets.lifecycle`` value as rules (None: never set)."""
    return None if text is None else msgspec.json.decode(text, type=list[LifecycleRule])


def _config(name: str, row: Any) -> BucketConfig:
    return BucketConfig(
        name=name,
        acl=row.acl,
        tags=None if row.tags is None else msgspec.json.decode(row.tags, type=list[Tag]),
        cors=None if row.cors is None else msgspec.json.decode(row.cors, type=list[CorsRule]),
        versioning=row.versioning,
        lifecycle=decode_lifecycle(row.lifecycle),
    )


def _read(conn: sa.Connection, project_id: str, name: str) -> BucketConfig:
    require_bucket(conn, project_id, name)
    return _config(name, conn.execute(_SELECT, {"name": name}).one())


async def get_config(m: Metainfo, project_id: str, req: BucketRequest) -> BucketConfig:
    config = await m.db.read(lambda conn: _read(conn, project_id, req.name))
    return msgspec.structs.replace(config, lifecycle_day=m.config.lifecycle_day_seconds)


async def _update(m: Metainfo, project_id: str, name: str, **values: str | None) -> BucketConfig:
    def txn(conn: sa.Connection) -> BucketConfig:
        require_bucket(conn, project_id, name)
        conn.execute(buckets.update().where(buckets.c.name == name).values(**values))
        return _read(conn, project_id, name)

    return await m.db.write(txn)


async def put_acl(m: Metainfo, project_id: str, req: PutBucketAclRequest) -> BucketConfig:
    check_acl(req.acl)
    return await _update(m, project_id, req.name, acl=req.acl)


async def put_tagging(m: Metainfo, project_id: str, req: PutBucketTaggingRequest) -> BucketConfig:
    return await _update(m, project_id, req.name, tags=_encode_tags(req.tags))


async def put_cors(m: Metainfo, project_id: str, req: PutBucketCorsRequest) -> BucketConfig:
    return await _update(m, project_id, req.name, cors=_encode_cors(req.rules))


async def put_lifecycle(
    m: Metainfo, project_id: str, req: PutBucketLifecycleRequest
) -> BucketConfig:
    return await _update(m, project_id, req.name, lifecycle=_encode_lifecycle(req.rules))


# ---------------------------------------------------------------- versioning

VERSIONING_STATES = ("Enabled", "Suspended")


async def put_versioning(
    m: Metainfo, project_id: str, req: PutBucketVersioningRequest
) -> BucketConfig:
    """Enable or suspend versioning; as in S3 a bucket never goes back to unversioned."""
    if req.status not in VERSIONING_STATES:
        raise BadRequest(
            f"versioning status must be one of {', '.join(VERSIONING_STATES)}",
            code="MalformedXML",
        )
    return await _update(m, project_id, req.name, versioning=req.status)
