"""List a bucket's committed objects, S3 style, by indexed range scans page by page.

The walk itself (prefixes, delimiter roll-up, seeks, truncation) is the pure
:class:`~skymesh.coordinator.metainfo.listing.ListWalk`; this module runs its pages as
``WHERE bucket = ? AND latest AND key > ? AND key < ? ORDER BY key LIMIT ?`` over
``ix_objects_latest`` (only the latest version of each key; a key whose latest
version is a delete marker is skipped), in one read snapshot.
"""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.db.schema import objects
from skymesh.coordinator.metainfo.checks import check_listing
from skymesh.coordinator.metainfo.common import require_bucket
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.listing import MAX_LIMIT, KeyPage, ListWalk
from skymesh.wire.metainfo import ListObjectsRequest, ListObjectsResponse, ObjectEntry


def _page_statement(inclusive: bool, bounded: bool) -> sa.Select:
    key = objects.c.key
    conds = [
        objects.c.bucket == sa.bindparam("bucket"),
        objects.c.latest == sa.true(),  # ix_objects_latest: older versions are never read
        key >= sa.bindparam("start") if inclusive else key > sa.bindparam("start"),
        objects.c.delete_marker == sa.false(),
    ]
    if bounded:
        conds.append(key < sa.bindparam("end"))
    return (
        sa.select(key, objects.c.size, objects.c.etag, objects.c.created_at)
        .where(*conds)
        .order_by(key)
        .limit(sa.bindparam("limit"))
    )


_PAGES = {(i, b): _page_statement(i, b) for i in (False, True) for b in (False, True)}


def walk_bucket(conn: sa.Connection, bucket: str, walk: ListWalk[sa.Row]) -> ListWalk[sa.Row]:
    """Run ``walk`` over the committed keys of ``bucket``."""
    page: KeyPage | None
    while (page := walk.next_page()) is not None:
        params = {"bucket": bucket, "start": page.start, "limit": page.limit}
        if page.end is not None:
            params["end"] = page.end
        rows = conn.execute(_PAGES[page.inclusive, page.end is not None], params).all()
        walk.feed(rows)
    return walk


async def list_objects(
    m: Metainfo, project_id: str, req: ListObjectsRequest
) -> ListObjectsResponse:
    check_listing(
        req.limit,
        {"prefix": req.prefix, "delimiter": req.delimiter, "start_after": req.start_after},
    )

    def txn(conn: sa.Connection) -> ListWalk[sa.Row]:
        # the walk is made here, not outside: a transaction may run twice (db/engine.py)
        walk: ListWalk[sa.Row] = ListWalk(
            req.prefix, req.delimiter, req.start_after, min(req.limit, MAX_LIMIT)
        )
        require_bucket(conn, project_id, req.bucket)
        return walk_bucket(conn, req.bucket, walk)

    walk = await m.db.read(txn)
    return ListObjectsResponse(
        entries=[
            ObjectEntry(key=r.key, size=r.size, etag=r.etag, created_at=r.created_at)
            for r in walk.entries
        ],
        prefixes=walk.prefixes,
        truncated=walk.truncated,
        next_start_after=walk.next_start_after if walk.truncated else "",
    )
