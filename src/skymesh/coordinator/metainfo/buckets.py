"""Buckets: create, get, list, delete. Names are global, as in S3."""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.db.schema import buckets, objects, pending_streams
from skymesh.coordinator.metainfo.bucket_config import check_acl
from skymesh.coordinator.metainfo.checks import check_bucket_name
from skymesh.coordinator.metainfo.common import ENABLED, require_bucket
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.segments import drop_pending
from skymesh.coordinator.overlay.residency import check_constraint
from skymesh.errors import BadRequest, Conflict
from skymesh.wire.metainfo import BucketInfo, BucketList, BucketRequest, CreateBucketRequest

MAX_REGION = 64

_OWNER = sa.select(buckets.c.project_id).where(buckets.c.name == sa.bindparam("name"))


async def create_bucket(m: Metainfo, project_id: str, req: CreateBucketRequest) -> BucketInfo:
    check_bucket_name(req.name)
    if len(req.region) > MAX_REGION:
        raise BadRequest("region name too long", code="InvalidArgument")
    check_acl(req.acl)
    # The location constraint must cover a region with nodes (or be empty).
    regions = {n.region for n in await m.registry.all_nodes()}
    check_constraint(req.region, regions, m.config.jurisdictions)
    now = m.clock()

    def txn(conn: sa.Connection) -> None:
        owner = conn.execute(_OWNER, {"name": req.name}).scalar_one_or_none()
        if owner == project_id:
            raise Conflict(f"you already own bucket {req.name!r}", code="BucketAlreadyOwnedByYou")
        if owner is not None:
            raise Conflict(f"bucket name {req.name!r} is taken", code="BucketAlreadyExists")
        conn.execute(
            buckets.insert().values(
                name=req.name,
                project_id=project_id,
                region=req.region,
                created_at=now,
                acl=req.acl,
                # S3: a bucket made with Object Lock is versioning-Enabled for good
                **({"object_lock": True, "versioning": ENABLED} if req.object_lock else {}),
            )
        )

    await m.db.write(txn)
    return BucketInfo(name=req.name, created_at=now, region=req.region)


async def get_bucket(m: Metainfo, project_id: str, req: BucketRequest) -> BucketInfo:
    def txn(conn: sa.Connection) -> BucketInfo:
        require_bucket(conn, project_id, req.name)
        row = conn.execute(
            sa.select(buckets.c.created_at, buckets.c.region).where(buckets.c.name == req.name)
        ).one()
        return BucketInfo(name=req.name, created_at=row.created_at, region=row.region)

    return await m.db.read(txn)


async def list_buckets(m: Metainfo, project_id: str, _req: object) -> BucketList:
    def txn(conn: sa.Connection) -> BucketList:
        rows = conn.execute(
            sa.select(buckets.c.name, buckets.c.created_at, buckets.c.region)
            .where(buckets.c.project_id == project_id)
            .order_by(buckets.c.name)
        ).all()
        return BucketList(
            buckets=[
                BucketInfo(name=r.name, created_at=r.created_at, region=r.region) for r in rows
            ]
        )

    return await m.db.read(txn)


async def delete_bucket(m: Metainfo, project_id: str, req: BucketRequest) -> None:
    """Delete an empty bucket; its pending uploads go with it (their pieces to garbage).

    Any version, locked ones included, makes the bucket not empty: a bucket holding
    versions under S3 Object Lock cannot be deleted until they are.
    """
    now = m.clock()

    def txn(conn: sa.Connection) -> None:
        require_bucket(conn, project_id, req.name)
        has_objects = conn.execute(
            sa.select(objects.c.key).where(objects.c.bucket == req.name).limit(1)
        ).first()
        if has_objects is not None:
            raise Conflict(f"bucket {req.name!r} is not empty", code="BucketNotEmpty")
        pending = list(
            conn.execute(
                sa.select(pending_streams.c.stream_id).where(pending_streams.c.bucket == req.name)
            ).scalars()
        )
        drop_pending(conn, now, pending)
        conn.execute(buckets.delete().where(buckets.c.name == req.name))

    await m.db.write(txn)
