"""Buckets, streams and objects: lookups and the version swap that several operations share.

Segments and pieces belong to a stream id, whether the stream is still pending or
is the committed version of an object, so committing moves no rows.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.schema import buckets, objects, pending_streams
from skymesh.coordinator.metainfo.segments import discard_segments
from skymesh.errors import Forbidden, NotFound
from skymesh.wire.messages import ObjectInfo


def new_stream_id(now: float) -> str:
    """32 hex chars: milliseconds then randomness, so ids sort by creation time."""
    return f"{int(now * 1000) & (2**48 - 1):012x}{secrets.token_hex(10)}"


# ---------------------------------------------------------------- buckets and streams

_BUCKET_OWNER = sa.select(buckets.c.project_id).where(buckets.c.name == sa.bindparam("bucket"))
_CURRENT_STREAM = (
    sa.select(objects.c.stream_id)
    .where(objects.c.bucket == sa.bindparam("bucket"), objects.c.key == sa.bindparam("key"))
    .with_for_update()
)


def require_bucket(conn: sa.Connection, project_id: str, bucket: str) -> None:
    """The bucket exists and belongs to ``project_id``."""
    owner = (conn.execute(_BUCKET_OWNER, {"bucket": bucket})).scalar_one_or_none()
    if owner is None:
        raise NotFound(f"bucket {bucket!r} does not exist", code="NoSuchBucket")
    if owner != project_id:
        raise Forbidden(f"bucket {bucket!r} belongs to another project", code="AccessDenied")


def current_stream(conn: sa.Connection, bucket: str, key: str) -> str | None:
    """The stream id of the committed object at (bucket, key), locked for this transaction."""
    result = conn.execute(_CURRENT_STREAM, {"bucket": bucket, "key": key})
    value: str | None = result.scalar_one_or_none()
    return value


@dataclass(frozen=True)
class PendingStream:
    stream_id: str
    project_id: str
    bucket: str
    key: str
    kind: str
    encrypted_key: bytes
    encrypted_metadata: bytes
    created_at: float
    expires_at: float


_SELECT_PENDING = sa.select(pending_streams).where(
    pending_streams.c.stream_id == sa.bindparam("stream_id")
)


def load_pending(
    conn: sa.Connection,
    project_id: str,
    stream_id: str,
    now: float,
    *,
    kind: str | None = None,
    bucket: str | None = None,
    key: str | None = None,
) -> PendingStream:
    """The caller's live pending stream, or ``NoSuchUpload``.

    Another project's stream, an expired one, one of another kind or one for
    another (bucket, key) all read as missing: ids are unguessable, and telling
    them apart would only leak that they exist.
    """
    row = (conn.execute(_SELECT_PENDING, {"stream_id": stream_id})).one_or_none()
    if (
        row is None
        or row.project_id != project_id
        or row.expires_at < now
        or (kind is not None and row.kind != kind)
        or (bucket is not None and row.bucket != bucket)
        or (key is not None and row.key != key)
    ):
        raise NotFound(f"no upload {stream_id!r} in progress", code="NoSuchUpload")
    return PendingStream(**row._asdict())


# ---------------------------------------------------------------- objects


def object_info(bucket: str, key: str, row: Any) -> ObjectInfo:
    """An ``ObjectInfo`` from an objects row (or a dict of its values)."""
    get = row.__getitem__ if isinstance(row, dict) else row._mapping.__getitem__
    return ObjectInfo(
        bucket=bucket,
        key=key,
        version_id=get("stream_id"),
        size=get("size"),
        etag=get("etag"),
        created_at=get("created_at"),
        encrypted_key=get("encrypted_key"),
        encrypted_metadata=get("encrypted_metadata"),
        segment_count=get("segment_count"),
    )


_UPDATE_OBJECT = (
    objects.update()
    .where(objects.c.bucket == sa.bindparam("b_bucket"), objects.c.key == sa.bindparam("b_key"))
    .values(
        stream_id=sa.bindparam("stream_id"),
        size=sa.bindparam("size"),
        etag=sa.bindparam("etag"),
        created_at=sa.bindparam("created_at"),
        encrypted_key=sa.bindparam("encrypted_key"),
        encrypted_metadata=sa.bindparam("encrypted_metadata"),
        segment_count=sa.bindparam("segment_count"),
    )
)
_INSERT_OBJECT = objects.insert()


def install_object(
    conn: sa.Connection,
    now: float,
    bucket: str,
    key: str,
    values: dict[str, Any],
    previous: str | None,
) -> None:
    """Make ``values`` the object at (bucket, key), discarding the ``previous`` version.

    ``previous`` is what :func:`current_stream` returned in this transaction.
    """
    if previous is None:
        conn.execute(_INSERT_OBJECT, {"bucket": bucket, "key": key, **values})
        return
    discard_segments(conn, now, previous)
    conn.execute(_UPDATE_OBJECT, {"b_bucket": bucket, "b_key": key, **values})


_SELECT_OBJECT = sa.select(objects).where(
    objects.c.bucket == sa.bindparam("bucket"), objects.c.key == sa.bindparam("key")
)


def load_object(
    conn: sa.Connection, project_id: str, bucket: str, key: str, version_id: str = ""
) -> ObjectInfo:
    """The committed object at (bucket, key): ``NoSuchKey`` / ``NoSuchVersion`` if absent."""
    require_bucket(conn, project_id, bucket)
    row = (conn.execute(_SELECT_OBJECT, {"bucket": bucket, "key": key})).one_or_none()
    if row is None:
        raise NotFound(f"no object {key!r} in bucket {bucket!r}", code="NoSuchKey")
    if version_id and row.stream_id != version_id:
        raise NotFound(f"object {key!r} has no version {version_id!r}", code="NoSuchVersion")
    return object_info(bucket, key, row)
