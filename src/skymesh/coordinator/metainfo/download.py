"""What a reader needs: the object, and a window of its segments with GET orders.

Segments come in object order from ``first_segment`` (or from the one holding
``plain_offset``), at most ``segment_limit`` (capped at 64) per call, and none
starting at or past ``plain_end`` (a ranged read signs orders only for what it reads). A piece
segment lists every stored piece whose node is known, online nodes first, each
with its Merkle root and a GET order allowing GET_ALLOWANCE_FACTOR reads of the piece. One snapshot, three
indexed queries: the object, the segment window, and all pieces of the window.
"""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.db.schema import pieces, segments
from skymesh.coordinator.metainfo.checks import check_key
from skymesh.coordinator.metainfo.common import load_object
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.errors import BadRequest
from skymesh.wire.metainfo import (
    DownloadPiece,
    DownloadRequest,
    DownloadResponse,
    ObjectInfo,
    Scheme,
    SegmentDownload,
    SegmentPosition,
)
from skymesh.wire.node import PieceAction
from skymesh.wire.pieces import derive_piece_id

MAX_SEGMENT_LIMIT = 64

_SEGMENT_COLUMNS = (
    segments.c.part,
    segments.c.idx,
    segments.c.number,
    segments.c.plain_offset,
    segments.c.plain_size,
    segments.c.block_size,
    segments.c.root_piece_id,
    segments.c.k,
    segments.c.repair,
    segments.c.optimal,
    segments.c.total,
    segments.c.piece_size,
    segments.c.inline_data,
    segments.c.key_salt,
)
_SEGMENTS_FROM = (
    sa.select(*_SEGMENT_COLUMNS)
    .where(
        segments.c.stream_id == sa.bindparam("stream_id"),
        segments.c.number >= sa.bindparam("first"),
    )
    .order_by(segments.c.number)
    .limit(sa.bindparam("limit"))
)
_SEGMENT_AT = (
    sa.select(segments.c.number)
    .where(
        segments.c.stream_id == sa.bindparam("stream_id"),
        segments.c.plain_offset <= sa.bindparam("offset"),
    )
    .order_by(segments.c.plain_offset.desc(), segments.c.number.desc())
    .limit(1)
)
_PIECES_BETWEEN = sa.select(
    pieces.c.part, pieces.c.idx, pieces.c.piece_num, pieces.c.node_id, pieces.c.merkle_root
).where(
    pieces.c.stream_id == sa.bindparam("stream_id"),
    sa.tuple_(pieces.c.part, pieces.c.idx)
    >= sa.tuple_(sa.bindparam("first_part"), sa.bindparam("first_idx")),
    sa.tuple_(pieces.c.part, pieces.c.idx)
    <= sa.tuple_(sa.bindparam("last_part"), sa.bindparam("last_idx")),
)

# A get order allows reading its piece this many times over: a reader that finds a
# corrupt piece re-reads chunk-aligned ranges of the others to verify them.
GET_ALLOWANCE_FACTOR = 2


async def download(m: Metainfo, project_id: str, req: DownloadRequest) -> DownloadResponse:
    check_key(req.key)
    if (
        req.first_segment < 0
        or (req.plain_offset is not None and req.plain_offset < 0)
        or (req.plain_end is not None and req.plain_end < 0)
    ):
        raise BadRequest("segment number and offset must not be negative", code="InvalidArgument")
    limit = max(0, min(req.segment_limit, MAX_SEGMENT_LIMIT))

    def txn(conn: sa.Connection) -> tuple[ObjectInfo, list[sa.Row], list[sa.Row]]:
        info = load_object(
            conn, project_id, req.bucket, req.key, req.version_id, markers=req.delete_markers
        )
        if info.delete_marker:
            return info, [], []
        stream = {"stream_id": info.version_id}
        first: int | None = req.first_segment
        if req.plain_offset is not None:
            first = None
            if info.segment_count == 1 and req.plain_offset < info.size:
                first = 0  # the one segment holds every offset: no query to find it
            elif req.plain_offset < info.size:
                first = conn.execute(
                    _SEGMENT_AT, {**stream, "offset": req.plain_offset}
                ).scalar_one_or_none()
        if first is None or not limit or first >= info.segment_count:
            return info, [], []
        seg_rows = list(
            conn.execute(_SEGMENTS_FROM, {**stream, "first": first, "limit": limit}).all()
        )
        if req.plain_end is not None:
            seg_rows = seg_rows[:1] + [r for r in seg_rows[1:] if r.plain_offset < req.plain_end]
        if not any(r.k for r in seg_rows):
            return info, seg_rows, []
        piece_rows = conn.execute(
            _PIECES_BETWEEN,
            {
                **stream,
                "first_part": seg_rows[0].part,
                "first_idx": seg_rows[0].idx,
                "last_part": seg_rows[-1].part,
                "last_idx": seg_rows[-1].idx,
            },
        ).all()
        return info, seg_rows, list(piece_rows)

    info, seg_rows, piece_rows = await m.db.read(txn)
    nodes = await m.registry.lookup({p.node_id for p in piece_rows})
    now = m.clock()
    by_segment: dict[tuple[int, int], list[sa.Row]] = {}
    for p in piece_rows:
        by_segment.setdefault((p.part, p.idx), []).append(p)
    out: list[SegmentDownload] = []
    for r in seg_rows:
        if not r.k:
            out.append(
                SegmentDownload(
                    number=r.number,
                    position=SegmentPosition(part=r.part, index=r.idx),
                    plain_offset=r.plain_offset,
                    plain_size=r.plain_size,
                    block_size=r.block_size,
                    inline_data=r.inline_data,
                    key_salt=r.key_salt or b"",
                )
            )
            continue
        listed: list[tuple[bool, int, DownloadPiece]] = []
        for p in by_segment.get((r.part, r.idx), []):
            node = nodes.get(p.node_id)
            if node is None:
                continue
            order = m.orders.order(
                node.node_id,
                derive_piece_id(r.root_piece_id, p.piece_num),
                PieceAction.GET,
                GET_ALLOWANCE_FACTOR * r.piece_size,
                now,
                project_id=project_id,
            )
            online = m.registry.is_online(node, now)
            piece = DownloadPiece(
                piece_num=p.piece_num,
                node_id=node.node_id,
                address=node.address,
                region=node.region,
                merkle_root=p.merkle_root,
                order=order,
                online=online,
            )
            listed.append((not online, p.piece_num, piece))
        listed.sort(key=lambda t: (t[0], t[1]))
        out.append(
            SegmentDownload(
                number=r.number,
                position=SegmentPosition(part=r.part, index=r.idx),
                plain_offset=r.plain_offset,
                plain_size=r.plain_size,
                block_size=r.block_size,
                root_piece_id=r.root_piece_id,
                scheme=Scheme(k=r.k, repair=r.repair, optimal=r.optimal, total=r.total),
                piece_size=r.piece_size,
                pieces=[t[2] for t in listed],
                key_salt=r.key_salt or b"",
            )
        )
    return DownloadResponse(object=info, segments=out)
