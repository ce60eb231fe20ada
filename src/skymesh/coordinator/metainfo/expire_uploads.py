"""Forget pending uploads past their expiry; their pieces go to garbage."""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.db.schema import pending_streams
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.segments import drop_pending

BATCH = 100
EXPIRE_UPLOADS_INTERVAL = 600.0  # seconds between runs (or the upload TTL, if shorter)


async def expire_uploads(m: Metainfo, batch: int = BATCH) -> int:
    """Drop every expired pending stream, ``batch`` per transaction. Returns how many."""
    dropped = 0
    while True:
        now = m.clock()

        def txn(conn: sa.Connection, now: float = now) -> int:
            ids = list(
                conn.execute(
                    sa.select(pending_streams.c.stream_id)
                    .where(pending_streams.c.expires_at < now)
                    .order_by(pending_streams.c.expires_at)
                    .limit(batch)
                ).scalars()
            )
            drop_pending(conn, now, ids)
            return len(ids)

        count = await m.db.write(txn)
        dropped += count
        if count < batch:
            return dropped
