"""Commit a simple upload: the object becomes visible, atomically.

One transaction stores the trailing segments, checks the stream's segments are
exactly 0..n-1 of part 0 summing to the object's size, numbers them with running
offsets, puts the new version on top of (bucket, key) (replacing the null version,
whose pieces go to garbage, unless the bucket is versioning-Enabled) and drops
the pending stream. Until it commits
the old version stays readable and the new one invisible; if any check fails,
nothing changes. A commit sent again after it succeeded (its answer lost with a
coordinator) is answered with the version it made.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.schema import pending_streams
from skymesh.coordinator.metainfo.checks import (
    MAX_ENCRYPTED_METADATA,
    SIMPLE,
    check_blob,
    check_etag,
    check_key,
    check_size,
    tag_digests_column,
)
from skymesh.coordinator.metainfo.commit_segment import store_segments, verify_segments
from skymesh.coordinator.metainfo.common import (
    committed_before,
    install_object,
    load_pending,
    object_info,
    require_bucket_for_write,
)
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.segments import order_segments
from skymesh.errors import BadRequest
from skymesh.wire.metainfo import CommitObjectRequest, ObjectInfo


async def commit_object(m: Metainfo, project_id: str, req: CommitObjectRequest) -> ObjectInfo:
    check_key(req.key)
    check_size(req.size)
    check_etag(req.etag)
    check_blob("encrypted metadata", req.encrypted_metadata, MAX_ENCRYPTED_METADATA)
    digests = tag_digests_column(req.tag_digests)
    verified = await verify_segments(m, req.segments, SIMPLE, req.stream_id)
    now = m.clock()

    def txn(conn: sa.Connection) -> tuple[Any, str]:
        bucket = require_bucket_for_write(conn, project_id, req.bucket)
        versioning = str(bucket.versioning)
        done = committed_before(conn, req.bucket, req.key, req.stream_id, req.etag)
        if done is not None:  # committed already: a retry after a lost answer
            return done, versioning
        stream = load_pending(
            conn, project_id, req.stream_id, now, kind=SIMPLE, bucket=req.bucket, key=req.key
        )
        store_segments(conn, now, stream.stream_id, verified)
        order = order_segments(conn, stream.stream_id, single_part=True)
        stored = sum(size for _, _, size in order)
        if stored != req.size:
            raise BadRequest(
                f"segments hold {stored} bytes; the object is said to be {req.size}",
                code="IncompleteBody",
            )
        values = {
            "stream_id": stream.stream_id,
            "size": req.size,
            "etag": req.etag,
            "created_at": now,
            "encrypted_key": stream.encrypted_key,
            "encrypted_metadata": req.encrypted_metadata,
            "segment_count": len(order),
            "tag_digests": digests,
        }
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
        conn.execute(
            pending_streams.delete().where(pending_streams.c.stream_id == stream.stream_id)
        )
        return row, versioning

    return object_info(req.bucket, req.key, *await m.db.write(txn))
