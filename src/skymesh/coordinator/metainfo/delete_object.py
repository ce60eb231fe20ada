"""Delete objects or versions, one or a batch in one transaction; pieces go to garbage.

S3's rules (``delete_one``): without a version id, an unversioned bucket loses the
key's object, while a versioned one gets a delete marker on top and keeps every
version (a Suspended bucket's marker is the null version, replacing the old one).
With a version id, exactly that version (or marker) goes for good, its pieces to
garbage. A missing key or version is not an error, as in S3. A version under
S3 Object Lock (retention or legal hold) is refused by ``drop_version`` with
``AccessDenied``; a delete marker on top of it is not (S3 allows that).
"""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.metainfo.checks import check_key, check_version_id
from skymesh.coordinator.metainfo.common import (
    add_delete_marker,
    current_stream,
    drop_version,
    find_version,
    require_bucket,
)
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.lock_rules import VersionLocked
from skymesh.errors import BadRequest, SkymeshError
from skymesh.wire.metainfo import (
    DeleteObjectResponse,
    DeleteObjectsRequest,
    DeleteObjectsResponse,
    DeleteObjectsResult,
    ObjectRequest,
)

MAX_BATCH = 1000  # S3's DeleteObjects limit


def delete_one(
    conn: sa.Connection,
    now: float,
    bucket: str,
    versioning: str,
    key: str,
    version_id: str,
    bypass_governance: bool = False,
) -> DeleteObjectResponse:
    if version_id:
        row = find_version(conn, bucket, key, version_id)
        if row is None:
            return DeleteObjectResponse(deleted=False, versioning=versioning)
        drop_version(conn, now, bucket, key, row, bypass_governance=bypass_governance)
        return DeleteObjectResponse(
            deleted=True,
            version_id=row.stream_id,
            delete_marker=bool(row.delete_marker),
            null_version=bool(row.null_version),
            versioning=versioning,
        )
    if versioning:
        marker = add_delete_marker(conn, now, bucket, key, versioning)
        return DeleteObjectResponse(
            deleted=True,
            version_id=marker["stream_id"],
            delete_marker=True,
            null_version=marker["null_version"],
            versioning=versioning,
        )
    latest = current_stream(conn, bucket, key)
    if latest is None:
        return DeleteObjectResponse(deleted=False)
    drop_version(conn, now, bucket, key, latest, bypass_governance=bypass_governance)
    return DeleteObjectResponse(deleted=True, version_id=latest.stream_id, null_version=True)


async def delete_object(m: Metainfo, project_id: str, req: ObjectRequest) -> DeleteObjectResponse:
    check_key(req.key)
    check_version_id(req.version_id)
    now = m.clock()

    def txn(conn: sa.Connection) -> DeleteObjectResponse:
        versioning = require_bucket(conn, project_id, req.bucket)
        return delete_one(
            conn, now, req.bucket, versioning, req.key, req.version_id, req.bypass_governance
        )

    return await m.db.write(txn)


async def delete_objects(
    m: Metainfo, project_id: str, req: DeleteObjectsRequest
) -> DeleteObjectsResponse:
    """Up to :data:`MAX_BATCH` deletes in one transaction, with a result per item.

    One round trip and one commit for the lot: S3's DeleteObjects of 1000 keys was
    1000 calls. A bad key or version id fails only its own item; the bucket check
    fails the whole batch.
    """
    if len(req.objects) > MAX_BATCH:
        raise BadRequest(f"at most {MAX_BATCH} objects per batch", code="MalformedXML")
    problems: dict[int, SkymeshError] = {}
    for i, item in enumerate(req.objects):
        try:
            check_key(item.key)
            check_version_id(item.version_id)
        except SkymeshError as e:
            problems[i] = e
    now = m.clock()

    def txn(conn: sa.Connection) -> list[DeleteObjectsResult]:
        versioning = require_bucket(conn, project_id, req.bucket)
        out = []
        for i, item in enumerate(req.objects):
            problem = problems.get(i)
            if problem is not None:
                out.append(
                    DeleteObjectsResult(
                        key=item.key,
                        version_id=item.version_id,
                        error_code=problem.code,
                        error_message=problem.message,
                    )
                )
                continue
            try:
                outcome = delete_one(
                    conn,
                    now,
                    req.bucket,
                    versioning,
                    item.key,
                    item.version_id,
                    req.bypass_governance,
                )
            except VersionLocked as e:  # refused before it changed anything
                out.append(
                    DeleteObjectsResult(
                        key=item.key,
                        version_id=item.version_id,
                        error_code=e.code,
                        error_message=e.message,
                    )
                )
                continue
            out.append(
                DeleteObjectsResult(key=item.key, version_id=item.version_id, outcome=outcome)
            )
        return out

    return DeleteObjectsResponse(results=await m.db.write(txn))
