"""Replace a committed object's sealed metadata (tags, ACL), only on the version the caller read.

The gateway decrypts the metadata, changes it and seals it again; between its read
and this write the object may have been overwritten, and the newer version's
metadata must win. So the update names the version it was derived from and
fails with ``NoSuchVersion`` if that version is gone (in a versioned bucket an
overwritten version stays, and the change applies to it, as S3 orders the two).
"""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.db.schema import objects
from skymesh.coordinator.metainfo.checks import (
    check_blob,
    check_key,
    metadata_limit,
    parts_in_etag,
    tag_digests_column,
)
from skymesh.coordinator.metainfo.common import load_object
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.errors import BadRequest, NotFound
from skymesh.wire.metainfo import ObjectInfo, UpdateObjectMetadataRequest


async def update_metadata(
    m: Metainfo, project_id: str, req: UpdateObjectMetadataRequest
) -> ObjectInfo:
    check_key(req.key)
    digests = tag_digests_column(req.tag_digests)
    if not req.version_id:
        raise BadRequest("version_id names the version the metadata was derived from")

    def txn(conn: sa.Connection) -> ObjectInfo:
        info = load_object(conn, project_id, req.bucket, req.key, req.version_id)
        # a multipart object's metadata lists its parts (checks.metadata_limit)
        limit = metadata_limit(parts_in_etag(info.etag))
        check_blob("encrypted metadata", req.encrypted_metadata, limit)
        done = conn.execute(
            objects.update()
            .where(
                objects.c.bucket == req.bucket,
                objects.c.key == req.key,
                objects.c.stream_id == info.version_id,
            )
            .values(encrypted_metadata=req.encrypted_metadata, tag_digests=digests)
        )
        if done.rowcount != 1:  # pragma: no cover - the writer holds the lock since the load
            raise NotFound(f"object {req.key!r} changed", code="NoSuchVersion")
        return load_object(conn, project_id, req.bucket, req.key, info.version_id)

    return await m.db.write(txn)
