"""A whole small (or empty) object in one transaction: no pending stream, no pieces."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.metainfo.checks import (
    MAX_ENCRYPTED_KEY,
    MAX_ENCRYPTED_METADATA,
    check_blob,
    check_etag,
    check_key,
    check_size,
    tag_digests_column,
)
from skymesh.coordinator.metainfo.common import (
    install_object,
    new_stream_id,
    object_info,
    require_bucket_for_write,
)
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.segments import (
    VerifiedSegment,
    insert_segments,
    segment_row,
    verify_segment,
)
from skymesh.errors import BadRequest
from skymesh.wire.metainfo import ObjectInfo, PutInlineRequest


async def put_inline(m: Metainfo, project_id: str, req: PutInlineRequest) -> ObjectInfo:
    check_key(req.key)
    check_size(req.size)
    check_etag(req.etag)
    check_blob("encrypted key", req.encrypted_key, MAX_ENCRYPTED_KEY)
    check_blob("encrypted metadata", req.encrypted_metadata, MAX_ENCRYPTED_METADATA)
    verified: list[VerifiedSegment] = []
    if req.segment is None:
        if req.size != 0:
            raise BadRequest("an object without a segment must be empty")
    else:
        seg = req.segment
        if seg.inline_data is None:
            raise BadRequest("put-inline takes an inline segment; upload pieces with begin")
        if (seg.position.part, seg.position.index) != (0, 0):
            raise BadRequest("an inline object's segment is at part 0, index 0")
        if seg.plain_size != req.size:
            raise BadRequest(f"segment holds {seg.plain_size} bytes; the object {req.size}")
        verified.append(
            verify_segment(
                seg,
                {},
                max_segment_size=m.config.max_segment_size,
                inline_threshold=m.config.inline_threshold,
            )
        )
    now = m.clock()
    stream_id = new_stream_id(now)
    values = {
        "stream_id": stream_id,
        "size": req.size,
        "etag": req.etag,
        "created_at": now,
        "encrypted_key": req.encrypted_key,
        "encrypted_metadata": req.encrypted_metadata,
        "segment_count": len(verified),
        "tag_digests": tag_digests_column(req.tag_digests),
    }
    rows = [segment_row(stream_id, v, now, number=0) for v in verified]

    def txn(conn: sa.Connection) -> tuple[dict[str, Any], str]:
        bucket = require_bucket_for_write(conn, project_id, req.bucket)
        versioning = str(bucket.versioning)
        row = install_object(
            conn,
            now,
            req.bucket,
            req.key,
            values,
            versioning=versioning,
            if_match=req.if_match,
            if_none_match=req.if_none_match,
            lock=req.lock,
            bucket_row=bucket,
        )
        insert_segments(conn, rows, verified)
        return row, versioning

    return object_info(req.bucket, req.key, *await m.db.write(txn))
