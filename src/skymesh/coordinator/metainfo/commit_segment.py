"""Record one stored segment of a pending simple upload; it stays invisible until commit.

A segment committed again at the same position replaces the earlier one, whose
pieces go to garbage; the same segment (same root piece id) committed again, as a
retry after a lost answer, changes nothing. (A multipart upload commits a part's segments together,
with the part: see ``multipart.commit_part``.)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from skymesh.coordinator.metainfo.checks import SIMPLE, check_position
from skymesh.coordinator.metainfo.common import load_pending
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.segments import (
    VerifiedSegment,
    already_stored,
    discard_segments,
    insert_segments,
    segment_nodes,
    segment_row,
    verify_segment,
)
from skymesh.errors import BadRequest
from skymesh.wire.metainfo import CommitSegmentRequest, SegmentCommit


async def verify_segments(
    m: Metainfo, commits: Sequence[SegmentCommit], kind: str, stream_id: str
) -> list[VerifiedSegment]:
    """Check segment commits (receipts included) before any transaction opens.

    Each root piece id must have been issued for ``stream_id`` and its position.
    """
    positions = [(s.position.part, s.position.index) for s in commits]
    if len(set(positions)) != len(positions):
        raise BadRequest("two segments at one position", code="InvalidArgument")
    for part, idx in positions:
        check_position(part, idx, kind)
    nodes = await m.registry.lookup(segment_nodes(commits))
    return [
        verify_segment(
            seg,
            nodes,
            max_segment_size=m.config.max_segment_size,
            inline_threshold=m.config.inline_threshold,
            root_issued=lambda root, part, idx: m.roots.check(root, stream_id, part, idx),
        )
        for seg in commits
    ]


def store_segments(
    conn: sa.Connection, now: float, stream_id: str, verified: Sequence[VerifiedSegment]
) -> None:
    """Insert segments of a pending stream, replacing any others at the same positions."""
    same = already_stored(conn, stream_id, verified)
    fresh = [v for v in verified if (v.part, v.idx) not in same]
    discard_segments(conn, now, stream_id, positions=[(v.part, v.idx) for v in fresh])
    insert_segments(conn, [segment_row(stream_id, v, now) for v in fresh], fresh)


async def commit_segment(m: Metainfo, project_id: str, req: CommitSegmentRequest) -> None:
    verified = await verify_segments(m, [req.segment], SIMPLE, req.stream_id)
    now = m.clock()

    def txn(conn: sa.Connection) -> None:
        load_pending(conn, project_id, req.stream_id, now, kind=SIMPLE)
        store_segments(conn, now, req.stream_id, verified)

    await m.db.write(txn)
