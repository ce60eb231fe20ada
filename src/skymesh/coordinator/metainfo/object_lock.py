"""S3 PutObjectRetention and PutObjectLegalHold: change one version's Object Lock.

The rules are :mod:`lock_rules`' (a retention in force is never shortened or
weakened in COMPLIANCE, and in GOVERNANCE only with the bypass), checked in the
same transaction that writes, against the coordinator's clock.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.schema import objects
from skymesh.coordinator.metainfo.checks import check_key
from skymesh.coordinator.metainfo.common import bucket_lock, load_object
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.lock_rules import (
    check_retention_change,
    missing_lock_configuration,
)
from skymesh.wire.metainfo import ObjectInfo, PutObjectLockRequest


async def put_object_lock(m: Metainfo, project_id: str, req: PutObjectLockRequest) -> ObjectInfo:
    check_key(req.key)
    now = m.clock()

    def txn(conn: sa.Connection) -> ObjectInfo:
        info = load_object(conn, project_id, req.bucket, req.key, req.version_id)
        if not bucket_lock(conn, req.bucket).object_lock:
            raise missing_lock_configuration()
        values: dict[str, Any] = {}
        if req.retention is not None:
            new = req.retention
            check_retention_change(
                info.lock_mode,
                info.retain_until,
                new.mode,
                new.retain_until,
                now,
                bypass_governance=req.bypass_governance,
            )
            values.update(lock_mode=new.mode, retain_until=new.retain_until if new.mode else 0.0)
        if req.legal_hold is not None:
            values["legal_hold"] = req.legal_hold
        if values:
            conn.execute(
                objects.update()
                .where(
                    objects.c.bucket == req.bucket,
                    objects.c.key == req.key,
                    objects.c.stream_id == info.version_id,
                )
                .values(**values)
            )
        return load_object(conn, project_id, req.bucket, req.key, info.version_id)

    return await m.db.write(txn)
