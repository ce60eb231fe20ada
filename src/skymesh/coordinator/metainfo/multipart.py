"""Multipart uploads: begin, parts (begin, commit, list), complete, abort, list.

An upload is a pending stream of kind ``multipart``; its id is the stream id.
Part ``n`` is segments ``(n, 0..)``: placement for the first comes from
``begin_part``, for further ones from ``/v1/segments/begin``, and
``commit_part`` stores them all at once, replacing any earlier upload of that
part (whose pieces go to garbage). ``complete_upload`` makes the listed parts
one object in a single transaction; parts left out go to garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.schema import parts, pending_streams, segments
from skymesh.coordinator.metainfo.checks import (
    MAX_ENCRYPTED_KEY,
    MAX_ENCRYPTED_METADATA,
    MULTIPART,
    check_blob,
    check_etag,
    check_key,
    check_part_number,
    check_size,
    check_text,
    metadata_limit,
    tag_digests_column,
    unquote_etag,
)
from skymesh.coordinator.metainfo.commit_segment import verify_segments
from skymesh.coordinator.metainfo.common import (
    PendingStream,
    committed_before,
    install_object,
    load_pending,
    new_stream_id,
    object_info,
    require_bucket,
    require_bucket_for_write,
)
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.list_versions import run_version_walk
from skymesh.coordinator.metainfo.listing import MAX_LIMIT, VersionWalk
from skymesh.coordinator.metainfo.segments import (
    already_stored,
    discard_segments,
    drop_pending,
    insert_segments,
    order_segments,
    segment_row,
)
from skymesh.coordinator.overlay.residency import bucket_placement
from skymesh.errors import BadRequest
from skymesh.wire.metainfo import (
    BeginPartRequest,
    BeginUploadRequest,
    CommitPartRequest,
    CompleteUploadRequest,
    ListPartsRequest,
    ListPartsResponse,
    ListUploadsRequest,
    ListUploadsResponse,
    ObjectInfo,
    PartInfo,
    Placement,
    UploadEntry,
    UploadInfo,
    UploadRequest,
)

#: Requests that name an upload: (bucket, key, upload_id).
UploadNaming = (
    UploadRequest | BeginPartRequest | CommitPartRequest | ListPartsRequest | CompleteUploadRequest
)


_PART_INDEXES = sa.select(segments.c.idx).where(
    segments.c.stream_id == sa.bindparam("stream_id"), segments.c.part == sa.bindparam("part")
)


def _upload_info(m: Metainfo, stream: PendingStream) -> UploadInfo:
    return UploadInfo(
        upload_id=stream.stream_id,
        bucket=stream.bucket,
        key=stream.key,
        encrypted_key=stream.encrypted_key,
        encrypted_metadata=stream.encrypted_metadata,
        created_at=stream.created_at,
        codec=m.codec,
    )


def _find_upload(
    conn: sa.Connection, project_id: str, now: float, req: UploadNaming
) -> PendingStream:
    """The caller's upload named by ``req``: AccessDenied / NoSuchBucket / NoSuchUpload."""
    require_bucket(conn, project_id, req.bucket)
    return load_pending(
        conn, project_id, req.upload_id, now, kind=MULTIPART, bucket=req.bucket, key=req.key
    )


async def begin_upload(m: Metainfo, project_id: str, req: BeginUploadRequest) -> UploadInfo:
    check_key(req.key)
    check_blob("encrypted key", req.encrypted_key, MAX_ENCRYPTED_KEY)
    check_blob("encrypted metadata", req.encrypted_metadata, MAX_ENCRYPTED_METADATA)
    now = m.clock()
    stream = PendingStream(
        stream_id=new_stream_id(now),
        project_id=project_id,
        bucket=req.bucket,
        key=req.key,
        kind=MULTIPART,
        encrypted_key=req.encrypted_key,
        encrypted_metadata=req.encrypted_metadata,
        created_at=now,
        expires_at=now + m.config.pending_upload_ttl,
    )

    def txn(conn: sa.Connection) -> None:
        require_bucket(conn, project_id, req.bucket)
        conn.execute(pending_streams.insert().values(**stream.__dict__))

    await m.db.write(txn)
    return _upload_info(m, stream)


async def get_upload(m: Metainfo, project_id: str, req: UploadRequest) -> UploadInfo:
    now = m.clock()

    def txn(conn: sa.Connection) -> PendingStream:
        return _find_upload(conn, project_id, now, req)

    return _upload_info(m, await m.db.read(txn))


async def begin_part(m: Metainfo, project_id: str, req: BeginPartRequest) -> Placement:
    check_part_number(req.part_number)
    if not 0 < req.plain_size <= m.config.max_segment_size:
        raise BadRequest(
            f"segment size must be 1..{m.config.max_segment_size}", code="InvalidArgument"
        )
    now = m.clock()

    def txn(conn: sa.Connection) -> tuple[PendingStream, tuple[str, str | None]]:
        upload = _find_upload(conn, project_id, now, req)
        return upload, bucket_placement(conn, upload.bucket)

    _upload, where = await m.db.read(txn)
    return await m.place(
        req.plain_size, stream_id=req.upload_id, bucket=where, part=req.part_number
    )


_UPDATE_PART = (
    parts.update()
    .where(
        parts.c.stream_id == sa.bindparam("b_stream_id"),
        parts.c.part_number == sa.bindparam("b_part_number"),
    )
    .values(
        size=sa.bindparam("size"),
        etag=sa.bindparam("etag"),
        uploaded_at=sa.bindparam("uploaded_at"),
        checksum=sa.bindparam("checksum"),
    )
)
MAX_CHECKSUM = 128  # "<algorithm>:<base64>"; a SHA-256 is 44 base64 characters


async def commit_part(m: Metainfo, project_id: str, req: CommitPartRequest) -> PartInfo:
    """Store all segments of one part, replacing an earlier upload of the same part."""
    check_part_number(req.part_number)
    check_size(req.size)
    check_etag(req.etag)
    if len(req.checksum) > MAX_CHECKSUM:
        raise BadRequest(f"checksum over {MAX_CHECKSUM} characters", code="InvalidArgument")
    if any(s.position.part != req.part_number for s in req.segments):
        raise BadRequest(f"every segment of part {req.part_number} must be in that part")
    indexes = sorted(s.position.index for s in req.segments)
    if indexes != list(range(len(indexes))):
        raise BadRequest("a part's segments are indexes 0..n-1", code="InvalidArgument")
    stored = sum(s.plain_size for s in req.segments)
    if stored != req.size:
        raise BadRequest(
            f"segments hold {stored} bytes; the part is said to be {req.size}",
            code="IncompleteBody",
        )
    verified = await verify_segments(m, req.segments, MULTIPART, req.upload_id)
    now = m.clock()
    values = {
        "size": req.size,
        "etag": req.etag,
        "uploaded_at": now,
        "checksum": req.checksum or None,
    }
    rows = [segment_row(req.upload_id, v, now) for v in verified]

    def txn(conn: sa.Connection) -> None:
        _find_upload(conn, project_id, now, req)
        # the same part committed again (a retry after a lost answer) keeps its segments:
        # replacing them would queue their own pieces as garbage
        same = already_stored(conn, req.upload_id, verified)
        held = conn.execute(_PART_INDEXES, {"stream_id": req.upload_id, "part": req.part_number})
        stale = [(req.part_number, i) for i in held.scalars() if (req.part_number, i) not in same]
        discard_segments(conn, now, req.upload_id, positions=stale)
        fresh = [(r, v) for r, v in zip(rows, verified, strict=True) if (v.part, v.idx) not in same]
        insert_segments(conn, [r for r, _ in fresh], [v for _, v in fresh])
        updated = conn.execute(
            _UPDATE_PART, {"b_stream_id": req.upload_id, "b_part_number": req.part_number, **values}
        )
        if updated.rowcount == 0:
            conn.execute(
                parts.insert().values(
                    stream_id=req.upload_id, part_number=req.part_number, **values
                )
            )

    await m.db.write(txn)
    return PartInfo(
        part_number=req.part_number,
        size=req.size,
        etag=req.etag,
        uploaded_at=now,
        checksum=req.checksum,
    )


async def list_parts(m: Metainfo, project_id: str, req: ListPartsRequest) -> ListPartsResponse:
    limit = max(1, min(req.limit, MAX_LIMIT))
    now = m.clock()

    def txn(conn: sa.Connection) -> Sequence[sa.Row]:
        _find_upload(conn, project_id, now, req)
        return conn.execute(
            sa.select(
                parts.c.part_number,
                parts.c.size,
                parts.c.etag,
                parts.c.uploaded_at,
                parts.c.checksum,
            )
            .where(
                parts.c.stream_id == req.upload_id,
                parts.c.part_number > req.part_number_marker,
            )
            .order_by(parts.c.part_number)
            .limit(limit + 1)
        ).all()

    rows = await m.db.read(txn)
    return ListPartsResponse(
        parts=[
            PartInfo(
                part_number=r.part_number,
                size=r.size,
                etag=r.etag,
                uploaded_at=r.uploaded_at,
                checksum=r.checksum or "",
            )
            for r in rows[:limit]
        ],
        truncated=len(rows) > limit,
    )


async def complete_upload(m: Metainfo, project_id: str, req: CompleteUploadRequest) -> ObjectInfo:
    """The listed parts become the object, in one transaction; the rest go to garbage."""
    check_etag(req.etag)
    check_blob("encrypted metadata", req.encrypted_metadata, metadata_limit(len(req.parts)))
    digests = tag_digests_column(req.tag_digests)
    if not req.parts:
        raise BadRequest("complete needs at least one part", code="MalformedXML")
    previous_number = 0
    for p in req.parts:
        check_part_number(p.part_number)
        if p.part_number <= previous_number:
            raise BadRequest("parts must be listed in ascending order", code="InvalidPartOrder")
        previous_number = p.part_number
    now = m.clock()

    def txn(conn: sa.Connection) -> tuple[Any, str]:
        bucket_row = require_bucket_for_write(conn, project_id, req.bucket)
        versioning = str(bucket_row.versioning)
        done = committed_before(conn, req.bucket, req.key, req.upload_id, req.etag)
        if done is not None:  # completed already: a retry after a lost answer
            return done, versioning
        stream = _find_upload(conn, project_id, now, req)
        stored = {
            r.part_number: r
            for r in conn.execute(
                sa.select(parts.c.part_number, parts.c.size, parts.c.etag, parts.c.checksum).where(
                    parts.c.stream_id == stream.stream_id
                )
            ).all()
        }
        for i, p in enumerate(req.parts):
            part = stored.get(p.part_number)
            if part is None or unquote_etag(part.etag) != unquote_etag(p.etag):
                raise BadRequest(
                    f"part {p.part_number} was not uploaded with etag {p.etag}",
                    code="InvalidPart",
                )
            if p.checksum and p.checksum != (part.checksum or ""):
                raise BadRequest(
                    f"part {p.part_number} was not uploaded with checksum {p.checksum}:"
                    " upload the part again with that checksum, or list the parts' own",
                    code="InvalidPart",
                )
            if i < len(req.parts) - 1 and part.size < req.min_part_size:
                raise BadRequest(
                    f"part {p.part_number} is {part.size} bytes;"
                    f" all but the last must be at least {req.min_part_size}",
                    code="EntityTooSmall",
                )
        listed = {p.part_number for p in req.parts}
        discard_segments(conn, now, stream.stream_id, parts=sorted(set(stored) - listed))
        order = order_segments(conn, stream.stream_id, single_part=False)
        size = sum(stored[n].size for n in listed)
        if sum(s for _, _, s in order) != size:
            raise BadRequest("the parts' segments do not add up to their sizes")
        values = {
            "stream_id": stream.stream_id,
            "size": size,
            "etag": req.etag,
            "created_at": now,
            "encrypted_key": stream.encrypted_key,
            "encrypted_metadata": req.encrypted_metadata or stream.encrypted_metadata,
            "segment_count": len(order),
            "tag_digests": digests,
        }
        row = install_object(
            conn,
            now,
            req.bucket,
            req.key,
            values,
            bucket_row=bucket_row,
            if_match=req.if_match,
            if_none_match=req.if_none_match,
            lock=req.lock,
        )
        conn.execute(parts.delete().where(parts.c.stream_id == stream.stream_id))
        conn.execute(
            pending_streams.delete().where(pending_streams.c.stream_id == stream.stream_id)
        )
        return row, versioning

    return object_info(req.bucket, req.key, *await m.db.write(txn))


async def abort_upload(m: Metainfo, project_id: str, req: UploadRequest) -> None:
    now = m.clock()

    def txn(conn: sa.Connection) -> None:
        _find_upload(conn, project_id, now, req)
        drop_pending(conn, now, [req.upload_id])

    await m.db.write(txn)


_UPLOAD_COLUMNS = (
    pending_streams.c.key,
    pending_streams.c.stream_id.label("seq"),
    pending_streams.c.created_at,
)


def _live_uploads(key_conds: list[Any]) -> sa.Select[Any]:
    p = pending_streams.c
    return (
        sa.select(*_UPLOAD_COLUMNS)
        .where(
            p.bucket == sa.bindparam("bucket"),
            p.kind == MULTIPART,
            p.expires_at >= sa.bindparam("now"),
            *key_conds,
        )
        .order_by(p.key, p.stream_id)
        .limit(sa.bindparam("limit"))
    )


def _upload_range(inclusive: bool, bounded: bool) -> sa.Select[Any]:
    key = pending_streams.c.key
    conds = [key >= sa.bindparam("start") if inclusive else key > sa.bindparam("start")]
    if bounded:
        conds.append(key < sa.bindparam("end"))
    return _live_uploads(conds)


# ListObjectVersions' walk, over uploads: a key's uploads in upload-id order
_UPLOAD_RANGES = {(i, b): _upload_range(i, b) for i in (False, True) for b in (False, True)}
_UPLOADS_WITHIN = _live_uploads(
    [
        pending_streams.c.key == sa.bindparam("key"),
        pending_streams.c.stream_id > sa.bindparam("after"),
    ]
)


async def list_uploads(
    m: Metainfo, project_id: str, req: ListUploadsRequest
) -> ListUploadsResponse:
    """S3's ListMultipartUploads: live uploads by (key, upload id), keys with the
    delimiter after the prefix rolled up into common prefixes (which count towards
    the limit, as S3 counts them); the upload-id-marker applies only with a key-marker."""
    check_text("prefix", req.prefix)
    check_text("key marker", req.key_marker)
    check_text("delimiter", req.delimiter)
    limit = max(1, min(req.limit, MAX_LIMIT))
    now = m.clock()
    marker_id = req.upload_id_marker if req.key_marker and req.upload_id_marker else None

    def txn(conn: sa.Connection) -> VersionWalk[Any]:
        require_bucket(conn, project_id, req.bucket)
        walk: VersionWalk[Any] = VersionWalk(
            req.prefix, req.delimiter, req.key_marker, marker_id, limit
        )
        return run_version_walk(
            conn, walk, _UPLOAD_RANGES, _UPLOADS_WITHIN, {"bucket": req.bucket, "now": now}
        )

    walk = await m.db.read(txn)
    last = walk.next_row
    return ListUploadsResponse(
        uploads=[
            UploadEntry(key=r.key, upload_id=r.seq, created_at=r.created_at) for r in walk.entries
        ],
        truncated=walk.truncated,
        prefixes=walk.prefixes,
        next_key_marker=walk.next_key_marker if walk.truncated else "",
        next_upload_id_marker=last.seq if walk.truncated and last is not None else "",
    )
