"""Buckets, streams and object versions: lookups and the version swap several operations share.

Segments and pieces belong to a stream id, whether the stream is still pending or
is a committed version of an object, so committing moves no rows.

Versions (S3 versioning): every committed version of a key is an ``objects`` row;
``seq`` orders them newest first and ``latest`` marks the first. While a bucket is
not versioning-``Enabled`` a write makes S3's "null" version and replaces the key's
previous null version (its pieces go to garbage); while ``Enabled`` it only stacks a
new version on top, and nothing becomes garbage until a version is deleted by id.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.schema import buckets, objects, pending_streams
from skymesh.coordinator.metainfo.checks import check_version_id, check_write_conditions
from skymesh.coordinator.metainfo.lock_rules import check_removable, new_version_lock
from skymesh.coordinator.metainfo.segments import discard_segments
from skymesh.errors import Forbidden, NotFound, SkymeshError
from skymesh.wire.metainfo import ObjectInfo, ObjectLock


def new_stream_id(now: float) -> str:
    """32 hex chars: milliseconds then randomness, so ids sort by creation time."""
    return f"{int(now * 1000) & (2**48 - 1):012x}{secrets.token_hex(10)}"


# ---------------------------------------------------------------- buckets and streams

ENABLED = "Enabled"  # S3 bucket versioning states ("" = never configured)
SUSPENDED = "Suspended"
NULL_VERSION = "null"  # S3's id of the version written while versioning was not Enabled

_BUCKET_OWNER = sa.select(buckets.c.project_id, buckets.c.versioning).where(
    buckets.c.name == sa.bindparam("bucket")
)
_LOCK_COLUMNS = (
    buckets.c.object_lock,
    buckets.c.lock_mode,
    buckets.c.lock_days,
    buckets.c.lock_years,
)
# what a new version needs of its bucket, in one read: owner, versioning, Object Lock
_BUCKET_FOR_WRITE = sa.select(buckets.c.project_id, buckets.c.versioning, *_LOCK_COLUMNS).where(
    buckets.c.name == sa.bindparam("bucket")
)
_VERSION_COLUMNS = (
    objects.c.stream_id,
    objects.c.seq,
    objects.c.etag,
    objects.c.latest,
    objects.c.delete_marker,
    objects.c.null_version,
    objects.c.lock_mode,
    objects.c.retain_until,
    objects.c.legal_hold,
)
#: The latest version of (bucket, key), locked for the writer's transaction.
_CURRENT_STREAM = (
    sa.select(*_VERSION_COLUMNS)
    .where(objects.c.bucket == sa.bindparam("bucket"), objects.c.key == sa.bindparam("key"))
    .order_by(objects.c.seq)
    .limit(1)
    .with_for_update()
)


def require_bucket(conn: sa.Connection, project_id: str, bucket: str) -> str:
    """The bucket exists and belongs to ``project_id``; answers its versioning state."""
    return str(_owned(conn, _BUCKET_OWNER, project_id, bucket).versioning)


def require_bucket_for_write(conn: sa.Connection, project_id: str, bucket: str) -> Any:
    """:func:`require_bucket`, answering the bucket's row as :func:`install_object`
    takes it (versioning and Object Lock defaults): one statement where two were."""
    return _owned(conn, _BUCKET_FOR_WRITE, project_id, bucket)


def _owned(conn: sa.Connection, select: sa.Select[Any], project_id: str, bucket: str) -> Any:
    row = (conn.execute(select, {"bucket": bucket})).one_or_none()
    if row is None:
        raise NotFound(f"bucket {bucket!r} does not exist", code="NoSuchBucket")
    if row.project_id != project_id:
        raise Forbidden(f"bucket {bucket!r} belongs to another project", code="AccessDenied")
    return row


_BUCKET_LOCK = sa.select(*_LOCK_COLUMNS).where(buckets.c.name == sa.bindparam("bucket"))


def bucket_lock(conn: sa.Connection, bucket: str) -> Any:
    """The bucket's Object Lock switch and default retention (the caller checked it exists)."""
    return conn.execute(_BUCKET_LOCK, {"bucket": bucket}).one()


def current_stream(conn: sa.Connection, bucket: str, key: str) -> Any:
    """The latest version of (bucket, key) (maybe a delete marker), locked for this transaction."""
    return conn.execute(_CURRENT_STREAM, {"bucket": bucket, "key": key}).one_or_none()


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


def object_info(bucket: str, key: str, row: Any, versioning: str = "") -> ObjectInfo:
    """An ``ObjectInfo`` from an objects row (or a dict of its values)."""
    get = row.__getitem__ if isinstance(row, dict) else row._mapping.__getitem__
    lock = row if isinstance(row, dict) else row._mapping
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
        null_version=bool(get("null_version")),
        delete_marker=bool(get("delete_marker")),
        is_latest=bool(get("latest")),
        versioning=versioning,
        lock_mode=lock.get("lock_mode") or "",
        retain_until=float(lock.get("retain_until") or 0.0),
        legal_hold=bool(lock.get("legal_hold")),
    )


_INSERT_OBJECT = objects.insert()
_KEY = (objects.c.bucket == sa.bindparam("bucket"), objects.c.key == sa.bindparam("key"))
_AT_SEQ = (*_KEY, objects.c.seq == sa.bindparam("seq"))
# (an UPDATE's bind names must differ from its columns')
_SET_LATEST = (
    objects.update()
    .where(
        objects.c.bucket == sa.bindparam("b_bucket"),
        objects.c.key == sa.bindparam("b_key"),
        objects.c.seq == sa.bindparam("b_seq"),
    )
    .values(latest=sa.bindparam("b_latest"))
)


def _set_latest(conn: sa.Connection, bucket: str, key: str, seq: int, latest: bool) -> None:
    conn.execute(_SET_LATEST, {"b_bucket": bucket, "b_key": key, "b_seq": seq, "b_latest": latest})


_DELETE_VERSION = objects.delete().where(*_AT_SEQ)
_NULL_VERSION = sa.select(*_VERSION_COLUMNS).where(*_KEY, objects.c.null_version == sa.true())
_FIRST_SEQ = sa.select(objects.c.seq).where(*_KEY).order_by(objects.c.seq).limit(1)


def drop_version(
    conn: sa.Connection,
    now: float,
    bucket: str,
    key: str,
    row: Any,
    *,
    promote: bool = True,
    bypass_governance: bool = False,
) -> None:
    """Forget one version (``row`` has its seq, stream id and lock); its pieces go to garbage.

    A locked version (S3 Object Lock: legal hold, or retention until after ``now``)
    is refused with ``VersionLocked`` before anything changes; GOVERNANCE retention
    yields to ``bypass_governance``. Every path that removes a version comes here.
    When it was the latest and ``promote``, the newest remaining version becomes latest.
    """
    check_removable(row, now, bypass_governance=bypass_governance)
    discard_segments(conn, now, row.stream_id)
    conn.execute(_DELETE_VERSION, {"bucket": bucket, "key": key, "seq": row.seq})
    if row.latest and promote:
        seq = conn.execute(_FIRST_SEQ, {"bucket": bucket, "key": key}).scalar_one_or_none()
        if seq is not None:
            _set_latest(conn, bucket, key, seq, True)


def add_version(
    conn: sa.Connection,
    now: float,
    bucket: str,
    key: str,
    values: dict[str, Any],
    latest: Any,
    versioning: str,
) -> dict[str, Any]:
    """Put ``values`` on top of the key's versions; ``latest`` is :func:`current_stream`'s row.

    Unless the bucket is versioning-``Enabled`` the new version is S3's null version
    and replaces the key's previous one, whose pieces go to garbage; every other
    version stays. Returns the inserted row's values.
    """
    null = versioning != ENABLED
    params = {"bucket": bucket, "key": key}
    if latest is not None:
        if null and latest.null_version:
            drop_version(conn, now, bucket, key, latest, promote=False)
        else:
            _set_latest(conn, bucket, key, latest.seq, False)
            if null:
                old = conn.execute(_NULL_VERSION, params).one_or_none()
                if old is not None:
                    drop_version(conn, now, bucket, key, old)
    row = {
        "delete_marker": False,
        **values,
        "seq": 0 if latest is None else latest.seq - 1,
        "latest": True,
        "null_version": null,
    }
    conn.execute(_INSERT_OBJECT, {**params, **row})
    return row


def install_object(
    conn: sa.Connection,
    now: float,
    bucket: str,
    key: str,
    values: dict[str, Any],
    *,
    bucket_row: Any,
    if_match: str = "",
    if_none_match: str = "",
    lock: ObjectLock | None = None,
) -> dict[str, Any]:
    """Make ``values`` the latest version at (bucket, key), after S3's write conditions.

    ``bucket_row`` is :func:`require_bucket_for_write`'s answer (in this transaction).

    The conditions are checked against the latest version under the writer's lock
    (a delete marker counts as no object), so of racing conditional writers exactly
    one wins. The new version gets the Object Lock ``lock`` asks for, else the
    bucket's default retention. Returns the new row's values.
    """
    locked = new_version_lock(lock, bucket_row, now)
    latest = current_stream(conn, bucket, key)
    live = None if latest is None or latest.delete_marker else latest
    check_write_conditions(None if live is None else live.etag, if_match, if_none_match)
    return add_version(
        conn, now, bucket, key, {**values, **locked}, latest, str(bucket_row.versioning)
    )


def add_delete_marker(
    conn: sa.Connection, now: float, bucket: str, key: str, versioning: str
) -> dict[str, Any]:
    """S3's delete in a versioned bucket: a marker on top; older versions stay."""
    values = {
        "stream_id": new_stream_id(now),
        "size": 0,
        "etag": "",
        "created_at": now,
        "encrypted_key": b"",
        "encrypted_metadata": b"",
        "segment_count": 0,
        "delete_marker": True,
    }
    return add_version(
        conn, now, bucket, key, values, current_stream(conn, bucket, key), versioning
    )


_SELECT_LATEST = sa.select(objects).where(*_KEY).order_by(objects.c.seq).limit(1)
_SELECT_NULL = sa.select(objects).where(*_KEY, objects.c.null_version == sa.true())
_SELECT_STREAM = sa.select(objects).where(*_KEY, objects.c.stream_id == sa.bindparam("stream"))


def find_version(conn: sa.Connection, bucket: str, key: str, version_id: str) -> Any:
    """The row of ``version_id`` ("" latest, "null", a stream id) of (bucket, key), or None."""
    params = {"bucket": bucket, "key": key}
    if not version_id:
        return conn.execute(_SELECT_LATEST, params).one_or_none()
    if version_id == NULL_VERSION:
        return conn.execute(_SELECT_NULL, params).one_or_none()
    return conn.execute(_SELECT_STREAM, {**params, "stream": version_id}).one_or_none()


def committed_before(conn: sa.Connection, bucket: str, key: str, stream_id: str, etag: str) -> Any:
    """The version a commit of ``stream_id`` made, if it was committed already (with
    ``etag``): the row to answer a commit sent again, as the first was, with. None
    when it was not (the caller then checks the pending stream as usual). The caller
    has checked the bucket is the caller's."""
    row = conn.execute(_SELECT_STREAM, {"bucket": bucket, "key": key, "stream": stream_id})
    found = row.one_or_none()
    return found if found is not None and found.etag == etag else None


def load_object(
    conn: sa.Connection,
    project_id: str,
    bucket: str,
    key: str,
    version_id: str = "",
    *,
    markers: bool = False,
) -> ObjectInfo:
    """A committed version of (bucket, key): ``NoSuchKey`` / ``NoSuchVersion`` if absent.

    A delete marker is ``NoSuchKey`` when it is the latest and ``MethodNotAllowed``
    (405) when asked for by id, as S3 answers, unless ``markers`` asks for it as an
    ``ObjectInfo`` (the gateway then tells S3 clients it is a marker).
    """
    check_version_id(version_id)
    versioning = require_bucket(conn, project_id, bucket)
    row = find_version(conn, bucket, key, version_id)
    if row is None:
        if version_id:
            raise NotFound(f"object {key!r} has no version {version_id!r}", code="NoSuchVersion")
        raise NotFound(f"no object {key!r} in bucket {bucket!r}", code="NoSuchKey")
    if row.delete_marker and not markers:
        if version_id:
            raise SkymeshError(
                f"version {version_id!r} of {key!r} is a delete marker; it has no data",
                code="MethodNotAllowed",
                status=405,
            )
        raise NotFound(
            f"object {key!r} was deleted (its latest version is a delete marker)",
            code="NoSuchKey",
        )
    return object_info(bucket, key, row, versioning)
