"""Abort a simple upload: its pending stream goes, and its pieces are due for deletion at once.

A client whose upload fails after ``objects/begin`` (the body broke off, a checksum
or length did not match, nodes failed) calls this instead of leaving the stream to
expire after ``pending_upload_ttl``. No reader can hold pieces of a stream that was
never committed, so they are queued as garbage already past ``gc_grace``: the
collector's next run deletes them from their nodes.
"""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.metainfo.checks import SIMPLE
from skymesh.coordinator.metainfo.common import load_pending
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.segments import drop_pending
from skymesh.wire.metainfo import AbortObjectRequest


async def abort_object(m: Metainfo, project_id: str, req: AbortObjectRequest) -> None:
    """Drop the caller's pending simple stream ``req.stream_id`` for (bucket, key);
    any other stream (another project's, committed, expired, multipart) is
    ``NoSuchUpload``."""
    now = m.clock()

    def txn(conn: sa.Connection) -> None:
        load_pending(
            conn, project_id, req.stream_id, now, kind=SIMPLE, bucket=req.bucket, key=req.key
        )
        drop_pending(conn, now, [req.stream_id], queued_at=now - m.config.gc_grace)

    await m.db.write(txn)
