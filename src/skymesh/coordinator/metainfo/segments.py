"""Segments: checking a commit (receipts included), storing, discarding and numbering them.

Whatever stops being reachable (an overwritten or deleted version, a replaced
segment or part, an aborted or expired upload) goes through
:func:`discard_segments`, which queues every piece it held in ``garbage_pieces``
for the collector, in the same transaction that drops the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from skymesh.codec import TAG_SIZE, RedundancyScheme, SegmentLayout
from skymesh.coordinator.db.schema import garbage_pieces, parts, pending_streams, pieces, segments
from skymesh.coordinator.metainfo.checks import MAX_BLOCK_SIZE
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.errors import BadRequest, CodecError, Forbidden
from skymesh.piecetransfer.receipts import check_receipt
from skymesh.wire.metainfo import Scheme, SegmentCommit
from skymesh.wire.pieces import derive_piece_id, is_valid_piece_id

_BATCH = 500  # ids per IN (...) list

# ---------------------------------------------------------------- segment checks

MAX_KEY_SALT = 32


@dataclass(frozen=True)
class VerifiedSegment:
    """A segment commit that passed every check, ready to store."""

    part: int
    idx: int
    plain_size: int
    block_size: int
    root_piece_id: str
    scheme: RedundancyScheme | None  # None: inline
    piece_size: int
    inline_data: bytes | None
    pieces: list[tuple[int, str, bytes]]  # (piece_num, node_id, merkle_root)
    key_salt: bytes = b""


def to_scheme(scheme: Scheme) -> RedundancyScheme:
    return RedundancyScheme(scheme.k, scheme.repair, scheme.optimal, scheme.total)


def verify_segment(
    seg: SegmentCommit,
    nodes: Mapping[str, NodeRecord],
    *,
    max_segment_size: int,
    inline_threshold: int,
    root_issued: Callable[[str, int, int], bool] | None = None,
) -> VerifiedSegment:
    """Check a segment commit: inline, or pieces with receipts signed by their nodes.

    ``root_issued(root_piece_id, part, index)`` says whether the coordinator
    handed that root out for this stream and position (``coordinator/roots.py``):
    a root committed anywhere else is refused, so no two segments ever share
    pieces and deleting one can never delete the other's.
    """
    if not 0 <= seg.plain_size <= max_segment_size:
        raise BadRequest(
            f"segment size {seg.plain_size} outside 0..{max_segment_size}", code="InvalidArgument"
        )
    if not 1 <= seg.block_size <= MAX_BLOCK_SIZE:
        raise BadRequest(f"block size {seg.block_size} out of range", code="InvalidArgument")
    pos = seg.position
    if len(seg.key_salt) > MAX_KEY_SALT:
        raise BadRequest(f"key salt longer than {MAX_KEY_SALT} bytes", code="InvalidArgument")
    if seg.inline_data is not None:
        if seg.pieces or seg.scheme is not None or seg.root_piece_id:
            raise BadRequest("an inline segment has no pieces, scheme or root piece id")
        if seg.plain_size > inline_threshold:
            raise BadRequest(
                f"inline segment of {seg.plain_size} bytes; the threshold is {inline_threshold}"
            )
        if len(seg.inline_data) > inline_threshold + TAG_SIZE:
            raise BadRequest(f"inline data of {len(seg.inline_data)} bytes is too large")
        return VerifiedSegment(
            part=pos.part,
            idx=pos.index,
            plain_size=seg.plain_size,
            block_size=seg.block_size,
            root_piece_id="",
            scheme=None,
            piece_size=0,
            inline_data=seg.inline_data,
            pieces=[],
            key_salt=seg.key_salt,
        )
    if seg.scheme is None:
        raise BadRequest("a segment needs either inline data or a scheme and pieces")
    scheme = to_scheme(seg.scheme)
    if not is_valid_piece_id(seg.root_piece_id):
        raise BadRequest("root piece id must be 64 lowercase hex characters")
    if root_issued is not None and not root_issued(seg.root_piece_id, pos.part, pos.index):
        raise Forbidden(
            f"root piece id of segment {pos.part}/{pos.index} was not issued for this upload"
            " and position: ask segments/begin for a placement and commit it where it was asked"
        )
    if seg.plain_size == 0:
        raise BadRequest("an empty segment is stored inline, not in pieces")
    try:
        expected = SegmentLayout(seg.plain_size, seg.block_size, scheme).piece_size
    except CodecError as e:
        raise BadRequest(f"bad segment layout: {e}") from e
    if seg.piece_size != expected:
        raise BadRequest(
            f"piece size {seg.piece_size} does not match the layout's {expected}"
            f" for {seg.plain_size} bytes in scheme {scheme}"
        )
    if len(seg.pieces) < scheme.optimal:
        raise BadRequest(
            f"segment {pos.part}/{pos.index} has {len(seg.pieces)} pieces;"
            f" scheme {scheme} needs at least {scheme.optimal}"
        )
    if len(seg.pieces) > scheme.total:
        raise BadRequest(f"segment has {len(seg.pieces)} pieces; scheme total is {scheme.total}")
    nums: set[int] = set()
    node_ids: set[str] = set()
    stored: list[tuple[int, str, bytes]] = []
    for piece in seg.pieces:
        if not 0 <= piece.piece_num < scheme.total:
            raise BadRequest(f"piece number {piece.piece_num} outside 0..{scheme.total - 1}")
        if piece.piece_num in nums:
            raise BadRequest(f"piece number {piece.piece_num} appears twice")
        if piece.node_id in node_ids:
            raise BadRequest(f"node {piece.node_id} holds two pieces of one segment")
        nums.add(piece.piece_num)
        node_ids.add(piece.node_id)
        node = nodes.get(piece.node_id)
        if node is None:
            raise Forbidden(f"piece {piece.piece_num} is on unknown node {piece.node_id!r}")
        receipt = check_receipt(
            piece.receipt,
            node_id=piece.node_id,
            piece_id=derive_piece_id(seg.root_piece_id, piece.piece_num),
            size=seg.piece_size,
            node_key=node.public_key,
        )
        stored.append((piece.piece_num, piece.node_id, receipt.merkle_root))
    return VerifiedSegment(
        part=pos.part,
        idx=pos.index,
        plain_size=seg.plain_size,
        block_size=seg.block_size,
        root_piece_id=seg.root_piece_id,
        scheme=scheme,
        piece_size=seg.piece_size,
        inline_data=None,
        pieces=sorted(stored),
        key_salt=seg.key_salt,
    )


def segment_nodes(commits: Sequence[SegmentCommit]) -> set[str]:
    return {p.node_id for seg in commits for p in seg.pieces}


# ---------------------------------------------------------------- segment storage

_INSERT_SEGMENT = segments.insert()
_INSERT_PIECE = pieces.insert()
_INSERT_GARBAGE = garbage_pieces.insert()


def segment_row(
    stream_id: str, seg: VerifiedSegment, now: float, number: int | None = None, offset: int = 0
) -> dict[str, Any]:
    s = seg.scheme
    return {
        "stream_id": stream_id,
        "part": seg.part,
        "idx": seg.idx,
        "number": number,
        "plain_offset": offset,
        "plain_size": seg.plain_size,
        "block_size": seg.block_size,
        "root_piece_id": seg.root_piece_id,
        "k": s.k if s else 0,
        "repair": s.repair if s else 0,
        "optimal": s.optimal if s else 0,
        "total": s.total if s else 0,
        "piece_size": seg.piece_size,
        "inline_data": seg.inline_data,
        "key_salt": seg.key_salt or None,
        "created_at": now,
    }


_ROOT_AT = sa.select(segments.c.root_piece_id).where(
    segments.c.stream_id == sa.bindparam("stream_id"),
    segments.c.part == sa.bindparam("part"),
    segments.c.idx == sa.bindparam("idx"),
)


def already_stored(
    conn: sa.Connection, stream_id: str, verified: Sequence[VerifiedSegment]
) -> set[tuple[int, int]]:
    """Positions of ``verified`` stored already with the same root piece id: a commit sent
    again (a retry after its answer was lost). They must be kept as they are: replacing
    a segment queues its pieces as garbage, and here they are the new segment's own."""
    same: set[tuple[int, int]] = set()
    for v in verified:
        if not v.root_piece_id:  # inline: no pieces, replacing it loses nothing
            continue
        params = {"stream_id": stream_id, "part": v.part, "idx": v.idx}
        if conn.execute(_ROOT_AT, params).scalar_one_or_none() == v.root_piece_id:
            same.add((v.part, v.idx))
    return same


def insert_segments(
    conn: sa.Connection, rows: Sequence[dict[str, Any]], verified: Sequence[VerifiedSegment]
) -> None:
    """Insert segment rows (from :func:`segment_row`) and the pieces of ``verified``."""
    if not rows:
        return
    conn.execute(_INSERT_SEGMENT, list(rows))
    piece_rows = [
        {
            "stream_id": row["stream_id"],
            "part": seg.part,
            "idx": seg.idx,
            "piece_num": num,
            "node_id": node_id,
            "merkle_root": root,
        }
        for row, seg in zip(rows, verified, strict=True)
        for num, node_id, root in seg.pieces
    ]
    if piece_rows:
        conn.execute(_INSERT_PIECE, piece_rows)


def _scope(table: sa.Table, scope: str) -> sa.ColumnElement[bool]:
    c = table.c
    if scope == "streams":
        return c.stream_id.in_(sa.bindparam("stream_ids", expanding=True))
    conds = [c.stream_id == sa.bindparam("stream_id")]
    if scope == "part":
        conds.append(c.part == sa.bindparam("part"))
    elif scope == "parts":
        conds.append(c.part.in_(sa.bindparam("parts", expanding=True)))
    elif scope == "position":
        conds += [c.part == sa.bindparam("part"), c.idx == sa.bindparam("idx")]
    return sa.and_(*conds)


def _discard_statements(scope: str) -> tuple[sa.Select[Any], sa.Delete, sa.Delete]:
    held = (
        sa.select(
            segments.c.root_piece_id, pieces.c.piece_num, pieces.c.node_id, segments.c.piece_size
        )
        .select_from(
            pieces.join(
                segments,
                sa.and_(
                    segments.c.stream_id == pieces.c.stream_id,
                    segments.c.part == pieces.c.part,
                    segments.c.idx == pieces.c.idx,
                ),
            )
        )
        .where(_scope(pieces, scope))
    )
    return (
        held,
        pieces.delete().where(_scope(pieces, scope)),
        segments.delete().where(_scope(segments, scope)),
    )


# Built once: the hot paths reuse compiled statements instead of building new ones.
_DISCARD = {
    scope: _discard_statements(scope)
    for scope in ("stream", "streams", "part", "parts", "position")
}


def discard_segments(
    conn: sa.Connection,
    now: float,
    stream_ids: str | Sequence[str],
    *,
    part: int | None = None,
    positions: Collection[tuple[int, int]] | None = None,
    parts: Collection[int] | None = None,
    queued_at: float | None = None,
) -> int:
    """Drop segments of ``stream_ids``: all of them, one ``part``, some ``parts`` or ``positions``.

    Their pieces are queued as garbage first, in the same transaction, as of
    ``queued_at`` (default ``now``; the collector deletes a row ``gc_grace``
    after it). Returns how many segments went.
    """
    when = now if queued_at is None else queued_at
    if isinstance(stream_ids, str):
        base: dict[str, Any] = {"stream_id": stream_ids}
        if positions is not None:
            return sum(
                _discard(conn, when, "position", {**base, "part": p, "idx": i})
                for p, i in positions
            )
        if parts is not None:
            return _discard(conn, when, "parts", {**base, "parts": list(parts)}) if parts else 0
        if part is not None:
            return _discard(conn, when, "part", {**base, "part": part})
        return _discard(conn, when, "stream", base)
    if part is not None or parts is not None or positions is not None:
        raise ValueError("several streams are discarded whole")
    return _discard(conn, when, "streams", {"stream_ids": list(stream_ids)}) if stream_ids else 0


def _discard(conn: sa.Connection, now: float, scope: str, params: dict[str, Any]) -> int:
    select_held, delete_pieces, delete_segments = _DISCARD[scope]
    held = conn.execute(select_held, params).all()
    if held:
        conn.execute(
            _INSERT_GARBAGE,
            [
                {
                    "node_id": node_id,
                    "piece_id": derive_piece_id(root, num),
                    "queued_at": now,
                    "piece_size": size,
                }
                for root, num, node_id, size in held
            ],
        )
        conn.execute(delete_pieces, params)
    return int(conn.execute(delete_segments, params).rowcount)


_DELETE_PARTS = parts.delete().where(
    parts.c.stream_id.in_(sa.bindparam("stream_ids", expanding=True))
)
_DELETE_PENDING = pending_streams.delete().where(
    pending_streams.c.stream_id.in_(sa.bindparam("stream_ids", expanding=True))
)


def drop_pending(
    conn: sa.Connection, now: float, stream_ids: Sequence[str], queued_at: float | None = None
) -> None:
    """Forget pending streams: their segments (pieces to garbage, as of ``queued_at``),
    parts and rows."""
    for start in range(0, len(stream_ids), _BATCH):
        ids = list(stream_ids[start : start + _BATCH])
        discard_segments(conn, now, ids, queued_at=queued_at)
        conn.execute(_DELETE_PARTS, {"stream_ids": ids})
        conn.execute(_DELETE_PENDING, {"stream_ids": ids})


_SEGMENT_ORDER = (
    sa.select(
        segments.c.part,
        segments.c.idx,
        segments.c.number,
        segments.c.plain_offset,
        segments.c.plain_size,
    )
    .where(segments.c.stream_id == sa.bindparam("stream_id"))
    .order_by(segments.c.part, segments.c.idx)
)
_SET_SEGMENT_ORDER = (
    segments.update()
    .where(
        segments.c.stream_id == sa.bindparam("b_stream_id"),
        segments.c.part == sa.bindparam("b_part"),
        segments.c.idx == sa.bindparam("b_idx"),
    )
    .values(number=sa.bindparam("number"), plain_offset=sa.bindparam("plain_offset"))
)


def order_segments(
    conn: sa.Connection, stream_id: str, *, single_part: bool
) -> list[tuple[int, int, int]]:
    """Number a committing stream's segments in (part, index) order with running offsets.

    Each part's indexes must run 0..n-1 (for a simple upload, ``single_part``,
    there is only part 0). Returns ``(part, index, plain_size)`` in object order.
    """
    rows = (conn.execute(_SEGMENT_ORDER, {"stream_id": stream_id})).all()
    updates: list[dict[str, Any]] = []
    out: list[tuple[int, int, int]] = []
    offset = 0
    expect_part, expect_idx = None, 0
    for number, row in enumerate(rows):
        if row.part != expect_part:
            if single_part and row.part != 0:
                raise BadRequest(f"a simple upload has a segment in part {row.part}")
            expect_part, expect_idx = row.part, 0
        if row.idx != expect_idx:
            raise BadRequest(
                f"segment {expect_idx} of part {row.part} is missing (next stored is {row.idx})"
            )
        expect_idx += 1
        if row.number != number or row.plain_offset != offset:
            updates.append(
                {
                    "b_stream_id": stream_id,
                    "b_part": row.part,
                    "b_idx": row.idx,
                    "number": number,
                    "plain_offset": offset,
                }
            )
        out.append((row.part, row.idx, row.plain_size))
        offset += row.plain_size
    if updates:
        conn.execute(_SET_SEGMENT_ORDER, updates)
    return out
