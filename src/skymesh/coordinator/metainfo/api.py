"""The registry, project and metainfo routes of the coordinator, each onto one operation.

Routes are declared in ``skymesh.wire.routes``; ``docs/spec/coordinator-api.md`` is
their prose form. Each metainfo operation is ``(metainfo, project id, request)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

import skymesh
from skymesh.coordinator.auth import Auth
from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.metainfo import (
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
    put_inline,
    update_metadata,
)
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.overlay.registry import Registry
from skymesh.wire import routes
from skymesh.wire.base import Empty, Health
from skymesh.wire.identity import Identity
from skymesh.wire.metainfo import (
    CodecParams,
    CreateProjectRequest,
    ProjectCredentials,
    RegisterAccessKeyRequest,
)
from skymesh.wire.registry import PeerIdentity
from skymesh.wire.signing import Signed

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
    routes.PUT_BUCKET_VERSIONING: bucket_config.put_versioning,
    routes.UPDATE_METADATA: update_metadata.update_metadata,
    routes.BEGIN_OBJECT: begin_object.begin_object,
    routes.COMMIT_OBJECT: commit_object.commit_object,
    routes.PUT_INLINE: put_inline.put_inline,
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


def project_operation(m: Metainfo, op: ProjectOperation) -> Callable[[Call, Any], Awaitable[Any]]:
    """``op`` run as the calling project (its API key, or its batch order)."""

    async def run(call: Call, req: Any) -> Any:
        return await op(m, call.project_id, req)

    return run


def add_metainfo_routes(table: RouteTable, m: Metainfo) -> None:
    for route, op in PROJECT_OPERATIONS.items():
        table.add(route, project_operation(m, op))


def add_registry_routes(
    table: RouteTable, registry: Registry, auth: Auth, identity: Identity
) -> None:
    """Health, identity, joins and heartbeats, the node list, projects and access keys."""
    peer = PeerIdentity(
        id=identity.id,
        public_key=identity.public_key,
        role="coordinator",
        version=skymesh.__version__,
    )

    async def healthz(_call: Call, _req: None) -> Health:
        await registry.db.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
        return Health(status="ok")

    async def identity_route(_call: Call, _req: None) -> PeerIdentity:
        return peer

    async def join(_call: Call, signed: Signed) -> Any:
        return await registry.join(signed)

    async def heartbeat(_call: Call, signed: Signed) -> Any:
        return await registry.heartbeat(signed)

    async def list_nodes(_call: Call, _req: None) -> Any:
        return await registry.node_list()

    async def create_project(_call: Call, req: CreateProjectRequest) -> ProjectCredentials:
        return await auth.create_project(req.name)

    async def register_access_key(call: Call, req: RegisterAccessKeyRequest) -> Empty:
        await auth.register_access_key(call.project_id, req.access_key_id)
        return Empty()

    table.add(routes.HEALTHZ, healthz)
    table.add(routes.IDENTITY, identity_route)
    table.add(routes.JOIN, join)
    table.add(routes.HEARTBEAT, heartbeat)
    table.add(routes.LIST_NODES, list_nodes)
    table.add(routes.CREATE_PROJECT, create_project)
    table.add(routes.REGISTER_ACCESS_KEY, register_access_key)
