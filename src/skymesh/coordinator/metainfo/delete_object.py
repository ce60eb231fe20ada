"""Delete an object; its pieces go to garbage. A missing key is not an error."""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.db.schema import objects
from skymesh.coordinator.metainfo.checks import check_key
from skymesh.coordinator.metainfo.common import current_stream, require_bucket
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.segments import discard_segments
from skymesh.wire.messages import DeleteObjectResponse, ObjectRequest


async def delete_object(m: Metainfo, project_id: str, req: ObjectRequest) -> DeleteObjectResponse:
    check_key(req.key)
    now = m.clock()

    def txn(conn: sa.Connection) -> DeleteObjectResponse:
        require_bucket(conn, project_id, req.bucket)
        stream_id = current_stream(conn, req.bucket, req.key)
        if stream_id is None or (req.version_id and req.version_id != stream_id):
            return DeleteObjectResponse(deleted=False)
        discard_segments(conn, now, stream_id)
        conn.execute(
            objects.delete().where(objects.c.bucket == req.bucket, objects.c.key == req.key)
        )
        return DeleteObjectResponse(deleted=True, version_id=stream_id)

    return await m.db.write(txn)
