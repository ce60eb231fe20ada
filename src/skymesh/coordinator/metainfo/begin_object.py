"""Begin a simple upload: a pending stream, and where its first segment goes."""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.db.schema import pending_streams
from skymesh.coordinator.metainfo.checks import MAX_ENCRYPTED_KEY, SIMPLE, check_blob, check_key
from skymesh.coordinator.metainfo.common import new_stream_id, require_bucket
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.overlay.residency import bucket_placement
from skymesh.errors import BadRequest
from skymesh.wire.metainfo import BeginObjectRequest, BeginObjectResponse

_INSERT_PENDING = pending_streams.insert()


async def begin_object(
    m: Metainfo, project_id: str, req: BeginObjectRequest
) -> BeginObjectResponse:
    check_key(req.key)
    check_blob("encrypted key", req.encrypted_key, MAX_ENCRYPTED_KEY)
    if not 0 < req.first_segment_size <= m.config.max_segment_size:
        raise BadRequest(
            f"first segment size must be 1..{m.config.max_segment_size}", code="InvalidArgument"
        )

    def check(conn: sa.Connection) -> tuple[str, str | None]:
        require_bucket(conn, project_id, req.bucket)
        return bucket_placement(conn, req.bucket)

    # The bucket first, so a missing or foreign bucket is the error even when placement would fail.
    where = await m.db.read(check)
    now = m.clock()
    stream_id = new_stream_id(now)  # first: the placement's root piece id is bound to it
    placement = await m.place(req.first_segment_size, stream_id=stream_id, bucket=where)

    def txn(conn: sa.Connection) -> None:
        require_bucket(conn, project_id, req.bucket)
        conn.execute(
            _INSERT_PENDING,
            {
                "stream_id": stream_id,
                "project_id": project_id,
                "bucket": req.bucket,
                "key": req.key,
                "kind": SIMPLE,
                "encrypted_key": req.encrypted_key,
                "encrypted_metadata": b"",
                "created_at": now,
                "expires_at": now + m.config.pending_upload_ttl,
            },
        )

    await m.db.write(txn)
    return BeginObjectResponse(stream_id=stream_id, placement=placement)
