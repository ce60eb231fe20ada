"""What is known of a committed object: size, etag, encrypted key and metadata."""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.metainfo.checks import check_key
from skymesh.coordinator.metainfo.common import load_object
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.wire.metainfo import ObjectInfo, ObjectRequest


async def head_object(m: Metainfo, project_id: str, req: ObjectRequest) -> ObjectInfo:
    check_key(req.key)

    def txn(conn: sa.Connection) -> ObjectInfo:
        return load_object(
            conn, project_id, req.bucket, req.key, req.version_id, markers=req.delete_markers
        )

    return await m.db.read(txn)
