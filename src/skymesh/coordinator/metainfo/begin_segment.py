"""Placement for one more segment of a pending stream (a simple upload or a part)."""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.metainfo.checks import MAX_EXCLUDED_NODES, check_position
from skymesh.coordinator.metainfo.common import PendingStream, load_pending
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.overlay.residency import bucket_placement
from skymesh.errors import BadRequest
from skymesh.wire.metainfo import BeginSegmentRequest, Placement


async def begin_segment(m: Metainfo, project_id: str, req: BeginSegmentRequest) -> Placement:
    if not 0 < req.plain_size <= m.config.max_segment_size:
        raise BadRequest(
            f"segment size must be 1..{m.config.max_segment_size}", code="InvalidArgument"
        )
    if len(req.exclude_nodes) > MAX_EXCLUDED_NODES:
        raise BadRequest("too many excluded nodes", code="InvalidArgument")
    now = m.clock()

    def txn(conn: sa.Connection) -> tuple[PendingStream, tuple[str, str | None]]:
        stream = load_pending(conn, project_id, req.stream_id, now)
        return stream, bucket_placement(conn, stream.bucket)

    stream, where = await m.db.read(txn)
    check_position(req.position.part, req.position.index, stream.kind)
    return await m.place(
        req.plain_size,
        exclude=req.exclude_nodes,
        stream_id=req.stream_id,
        bucket=where,  # pieces stay inside its location constraint
        part=req.position.part,
        index=req.position.index,
    )
