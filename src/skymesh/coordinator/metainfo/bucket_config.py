"""Bucket ACL, tags, CORS rules, lifecycle rules, policy, Public Access Block and
ownership controls: what S3 calls bucket subresources.


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
from skymesh.coordinator.metainfo.common import ENABLED, require_bucket
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.lock_rules import check_default_retention
from skymesh.errors import BadRequest, Conflict
from skymesh.wire.metainfo import (
    BucketConfig,
    BucketRequest,
    CorsRule,
    LifecycleRule,
    PublicAccessBlock,
    PutBucketAclRequest,
    PutBucketCorsRequest,
    PutBucketLifecycleRequest,
    PutBucketOwnershipRequest,
    PutBucketPolicyRequest,
    PutBucketTaggingRequest,
    PutBucketVersioningRequest,
    PutObjectLockConfigRequest,
    PutPublicAccessBlockRequest,
    Tag,
)

ACLS = ("private", "public-read")
MAX_BUCKET_TAGS = 50
MAX_TAG_CHARS = 256  # generous: the gateway enforces S3's 128 (key) / 256 (value) UTF-16 units
MAX_CORS_RULES = 100
MAX_CORS_JSON = 64 * 1024  # S3 caps a CORS configuration at 64 KB
MAX_LIFECYCLE_RULES = 1000  # S3's limit
MAX_LIFECYCLE_JSON = 512 * 1024  # 1000 rules with prefixes and tags fit
MAX_POLICY_CHARS = 20 * 1024  # S3 caps a bucket policy at 20 KB
OWNERSHIPS = ("ObjectWriter", "BucketOwnerPreferred", "BucketOwnerEnforced")

_SELECT = sa.select(
    buckets.c.acl,
    buckets.c.tags,
    buckets.c.cors,
    buckets.c.versioning,
    buckets.c.object_lock,
    buckets.c.lock_mode,
    buckets.c.lock_days,
    buckets.c.lock_years,
    buckets.c.policy,
    buckets.c.public_access_block,
    buckets.c.ownership,
    buckets.c.lifecycle,
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
        object_lock=bool(row.object_lock),
        lock_mode=row.lock_mode,
        lock_days=row.lock_days,
        lock_years=row.lock_years,
        policy=row.policy,
        public_access_block=None
        if row.public_access_block is None
        else msgspec.json.decode(row.public_access_block, type=PublicAccessBlock),
        ownership=row.ownership,
        lifecycle=decode_lifecycle(row.lifecycle),
    )


def _read(conn: sa.Connection, project_id: str, name: str) -> BucketConfig:
    require_bucket(conn, project_id, name)
    return _config(name, conn.execute(_SELECT, {"name": name}).one())


async def get_config(m: Metainfo, project_id: str, req: BucketRequest) -> BucketConfig:
    config = await m.db.read(lambda conn: _read(conn, project_id, req.name))
    return msgspec.structs.replace(config, lifecycle_day=m.config.lifecycle_day_seconds)


async def _update(m: Metainfo, project_id: str, name: str, **values: Any) -> BucketConfig:
    def txn(conn: sa.Connection) -> BucketConfig:
        versioning = require_bucket(conn, project_id, name)
        if "versioning" in values or "object_lock" in values:
            _check_lock_and_versioning(conn, name, versioning, values)
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


async def put_policy(m: Metainfo, project_id: str, req: PutBucketPolicyRequest) -> BucketConfig:
    if req.policy is not None and not 0 < len(req.policy) <= MAX_POLICY_CHARS:
        raise BadRequest(
            f"a bucket policy has 1-{MAX_POLICY_CHARS} characters", code="PolicyTooLarge"
        )
    return await _update(m, project_id, req.name, policy=req.policy)


async def put_public_access_block(
    m: Metainfo, project_id: str, req: PutPublicAccessBlockRequest
) -> BucketConfig:
    text = None if req.config is None else msgspec.json.encode(req.config).decode()
    return await _update(m, project_id, req.name, public_access_block=text)


async def put_ownership(
    m: Metainfo, project_id: str, req: PutBucketOwnershipRequest
) -> BucketConfig:
    if req.ownership is not None and req.ownership not in OWNERSHIPS:
        raise BadRequest(
            f"object ownership must be one of {', '.join(OWNERSHIPS)}", code="MalformedXML"
        )
    return await _update(m, project_id, req.name, ownership=req.ownership)


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


# ---------------------------------------------------------------- object lock


def _check_lock_and_versioning(
    conn: sa.Connection, name: str, versioning: str, values: dict[str, Any]
) -> None:
    """S3: Object Lock needs versioning Enabled, and holds it there for good."""
    locked = bool(conn.execute(_SELECT, {"name": name}).one().object_lock)
    if locked and values.get("versioning", ENABLED) != ENABLED:
        raise Conflict(
            "An Object Lock configuration is present on this bucket,"
            " so the versioning state cannot be changed.",
            code="InvalidBucketState",
        )
    if values.get("object_lock") and not locked and versioning != ENABLED:
        raise Conflict(
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
            code="InvalidBucketState",
        )


async def put_object_lock_config(
    m: Metainfo, project_id: str, req: PutObjectLockConfigRequest
) -> BucketConfig:
    """Enable Object Lock (for good; the bucket's versioning must be Enabled) and set
    or clear its default retention."""
    check_default_retention(req.mode, req.days, req.years)
    return await _update(
        m,
        project_id,
        req.name,
        object_lock=True,
        lock_mode=req.mode,
        lock_days=req.days,
        lock_years=req.years,
    )
