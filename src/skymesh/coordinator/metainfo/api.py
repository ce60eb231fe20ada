"""The metainfo API: each project route of the coordinator and the operation that answers it.

Routes are declared in ``skymesh.wire.routes``; ``docs/spec/coordinator-api.md`` is
their prose form. Each operation is ``(metainfo, project id, request)``, one module
of this package per operation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from skymesh.coordinator.metainfo import (
    abort_object,
    begin_object,
    begin_segment,
    bucket_config,
    buckets,
    commit_object,
    commit_segment,
    delete_object,
    download,
    head_object,
    list_objects,
    list_versions,
    multipart,
    object_lock,
    put_inline,
    update_metadata,
)
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.wire import routes
from skymesh.wire.metainfo import CodecParams

#: A metainfo operation: (metainfo, project id, request) -> an answer (None: {}).
ProjectOperation = Callable[[Metainfo, str, Any], Awaitable[Any]]


async def _codec(m: Metainfo, _project_id: str, _req: None) -> CodecParams:
    return m.codec


#: Each project route of the metainfo API and the operation that answers it.
PROJECT_OPERATIONS: dict[routes.Route[Any, Any], ProjectOperation] = {
    routes.CODEC: _codec,
    routes.CREATE_BUCKET: buckets.create_bucket,
    routes.GET_BUCKET: buckets.get_bucket,
    routes.LIST_BUCKETS: buckets.list_buckets,
    routes.DELETE_BUCKET: buckets.delete_bucket,
    routes.BUCKET_CONFIG: bucket_config.get_config,
    routes.PUT_BUCKET_ACL: bucket_config.put_acl,
    routes.PUT_BUCKET_TAGGING: bucket_config.put_tagging,
    routes.PUT_BUCKET_CORS: bucket_config.put_cors,
    routes.PUT_BUCKET_POLICY: bucket_config.put_policy,
    routes.PUT_PUBLIC_ACCESS_BLOCK: bucket_config.put_public_access_block,
    routes.PUT_BUCKET_OWNERSHIP: bucket_config.put_ownership,
    routes.PUT_BUCKET_LIFECYCLE: bucket_config.put_lifecycle,
    routes.PUT_BUCKET_VERSIONING: bucket_config.put_versioning,
    routes.PUT_OBJECT_LOCK_CONFIG: bucket_config.put_object_lock_config,
    routes.PUT_OBJECT_LOCK: object_lock.put_object_lock,
    routes.UPDATE_METADATA: update_metadata.update_metadata,
    routes.BEGIN_OBJECT: begin_object.begin_object,
    routes.COMMIT_OBJECT: commit_object.commit_object,
    routes.PUT_INLINE: put_inline.put_inline,
    routes.ABORT_OBJECT: abort_object.abort_object,
    routes.HEAD_OBJECT: head_object.head_object,
    routes.DOWNLOAD: download.download,
    routes.LIST_OBJECTS: list_objects.list_objects,
    routes.DELETE_OBJECT: delete_object.delete_object,
    routes.DELETE_OBJECTS: delete_object.delete_objects,
    routes.LIST_VERSIONS: list_versions.list_versions,
    routes.BEGIN_SEGMENT: begin_segment.begin_segment,
    routes.COMMIT_SEGMENT: commit_segment.commit_segment,
    routes.BEGIN_UPLOAD: multipart.begin_upload,
    routes.GET_UPLOAD: multipart.get_upload,
    routes.BEGIN_PART: multipart.begin_part,
    routes.COMMIT_PART: multipart.commit_part,
    routes.LIST_PARTS: multipart.list_parts,
    routes.COMPLETE_UPLOAD: multipart.complete_upload,
    routes.ABORT_UPLOAD: multipart.abort_upload,
    routes.LIST_UPLOADS: multipart.list_uploads,
}
