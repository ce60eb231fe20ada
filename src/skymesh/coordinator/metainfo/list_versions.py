"""ListObjectVersions: every version and delete marker, by key, newest first within a key.

The walk is the pure :class:`~skymesh.coordinator.metainfo.listing.VersionWalk`; its pages
run as range scans over the objects primary key (bucket, key, seq), whose order is
S3's (``seq`` falls as versions are added), in one read snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.schema import objects
from skymesh.coordinator.metainfo.checks import check_listing, check_version_id
from skymesh.coordinator.metainfo.common import NULL_VERSION, find_version, require_bucket
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.listing import MAX_LIMIT, VersionPage, VersionWalk
from skymesh.errors import BadRequest
from skymesh.wire.metainfo import ListVersionsRequest, ListVersionsResponse, VersionEntry

_COLUMNS = (
    objects.c.key,
    objects.c.seq,
    objects.c.stream_id,
    objects.c.null_version,
    objects.c.latest,
    objects.c.delete_marker,
    objects.c.size,
    objects.c.etag,
    objects.c.created_at,
)


def _range_statement(inclusive: bool, bounded: bool) -> sa.Select[Any]:
    key = objects.c.key
    conds = [
        objects.c.bucket == sa.bindparam("bucket"),
        key >= sa.bindparam("start") if inclusive else key > sa.bindparam("start"),
    ]
    if bounded:
        conds.append(key < sa.bindparam("end"))
    return (
        sa.select(*_COLUMNS).where(*conds).order_by(key, objects.c.seq).limit(sa.bindparam("limit"))
    )


_RANGES = {(i, b): _range_statement(i, b) for i in (False, True) for b in (False, True)}
_WITHIN = (
    sa.select(*_COLUMNS)
    .where(
        objects.c.bucket == sa.bindparam("bucket"),
        objects.c.key == sa.bindparam("key"),
        objects.c.seq > sa.bindparam("after"),
    )
    .order_by(objects.c.seq)
    .limit(sa.bindparam("limit"))
)


def walk_versions(conn: sa.Connection, bucket: str, walk: VersionWalk[Any]) -> VersionWalk[Any]:
    return run_version_walk(conn, walk, _RANGES, _WITHIN, {"bucket": bucket})


def run_version_walk(
    conn: sa.Connection,
    walk: VersionWalk[Any],
    ranges: Mapping[tuple[bool, bool], sa.Select[Any]],
    within: sa.Select[Any],
    params: Mapping[str, Any],
) -> VersionWalk[Any]:
    """Feed ``walk`` its pages. ``ranges[inclusive, bounded]`` reads rows of keys from
    ``:start`` (up to ``:end``), ``within`` the rows of ``:key`` after ``:after``, both
    ordered as the walk needs, ``:limit`` of them; ``params`` binds the rest."""
    page: VersionPage | None
    while (page := walk.next_page()) is not None:
        keys = page.keys
        if page.within is not None:
            bound: dict[str, Any] = {
                **params,
                "key": page.within,
                "after": page.after,
                "limit": keys.limit,
            }
            rows = conn.execute(within, bound).all()
        else:
            bound = {**params, "start": keys.start, "limit": keys.limit}
            if keys.end is not None:
                bound["end"] = keys.end
            rows = conn.execute(ranges[keys.inclusive, keys.end is not None], bound).all()
        walk.feed(rows)
    return walk


def s3_version_id(row: Any) -> str:
    return NULL_VERSION if row.null_version else str(row.stream_id)


async def list_versions(
    m: Metainfo, project_id: str, req: ListVersionsRequest
) -> ListVersionsResponse:
    check_listing(
        req.limit,
        {"prefix": req.prefix, "delimiter": req.delimiter, "key marker": req.key_marker},
    )
    check_version_id(req.version_id_marker)
    if req.version_id_marker and not req.key_marker:
        raise BadRequest(
            "a version-id-marker needs a key-marker: pass both from the previous page",
            code="InvalidArgument",
        )

    def txn(conn: sa.Connection) -> VersionWalk[Any]:
        require_bucket(conn, project_id, req.bucket)
        seq = None
        if req.version_id_marker:
            row = find_version(conn, req.bucket, req.key_marker, req.version_id_marker)
            seq = None if row is None else row.seq  # gone since: resume after the key
        walk: VersionWalk[Any] = VersionWalk(
            req.prefix, req.delimiter, req.key_marker, seq, min(req.limit, MAX_LIMIT)
        )
        return walk_versions(conn, req.bucket, walk)

    walk = await m.db.read(txn)
    last = walk.next_row
    return ListVersionsResponse(
        entries=[
            VersionEntry(
                key=r.key,
                version_id=s3_version_id(r),
                is_latest=bool(r.latest),
                delete_marker=bool(r.delete_marker),
                size=r.size,
                etag=r.etag,
                created_at=r.created_at,
            )
            for r in walk.entries
        ],
        prefixes=walk.prefixes,
        truncated=walk.truncated,
        next_key_marker=walk.next_key_marker if walk.truncated else "",
        next_version_id_marker=s3_version_id(last) if walk.truncated and last is not None else "",
    )
