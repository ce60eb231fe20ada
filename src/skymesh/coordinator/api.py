"""HTTP routes of the coordinator, each onto one operation.

All bodies are JSON (msgspec structs of ``skymesh.wire.messages``); errors leave
through :func:`skymesh.rpc.error_middleware` as an ``ErrorBody`` with the error's
status. Project routes authenticate before reading the body.

| route | auth | request -> response |
|---|---|---|
| GET /healthz | - | {"status": "ok"} |
| GET /v1/identity | - | PeerIdentity |
| POST /v1/nodes/join | signed | Signed[NodeInfo] -> JoinResponse |
| POST /v1/nodes/heartbeat | signed | Signed[Heartbeat] -> HeartbeatResponse |
| GET /v1/nodes | admin | NodeList |
| GET /v1/admin/durability | admin | DurabilityReport |
| POST /v1/nodes/drain | signed | Signed[DrainRequest] -> DrainStatus |
| POST /v1/projects | admin | CreateProjectRequest -> ProjectCredentials |
| POST /v1/projects/access-keys | project | RegisterAccessKeyRequest -> {} |
| POST /v1/codec | project | CodecParamsRequest -> CodecParams |
| POST /v1/buckets/{create,get,list,delete} | project | see messages.py |
| POST /v1/buckets/{config,put-acl,put-tagging,put-cors} | project | BucketConfig |
| POST /v1/objects/update-metadata | project | UpdateObjectMetadataRequest -> ObjectInfo |
| POST /v1/objects/{begin,commit,put-inline,head,download,list,delete} | project | |
| POST /v1/segments/{begin,commit} | project | |
| POST /v1/uploads/{begin,get,begin-part,commit-part,parts,complete,abort,list} | project | |
| POST /v1/buckets/put-versioning, /v1/objects/{delete-many,versions} | project | S3 versioning |
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from aiohttp import web

import skymesh
from skymesh.coordinator.auth import Auth
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
    list_versions,  # S3 versioning
    multipart,
    put_inline,
    update_metadata,
)
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.rpc import MAX_RPC_BODY, Handler, error_middleware, json_response, read_json
from skymesh.wire import messages as msg
from skymesh.wire.identity import Identity
from skymesh.wire.signing import Signed

#: An operation: (metainfo, project id, request) -> a msgspec-encodable answer (None: {}).
Operation = Callable[[Metainfo, str, Any], Awaitable[Any]]

PROJECT_ROUTES: list[tuple[str, type | None, Operation]] = [
    ("/v1/codec", None, lambda m, _p, _r: _codec(m)),
    ("/v1/buckets/create", msg.CreateBucketRequest, buckets.create_bucket),
    ("/v1/buckets/get", msg.BucketRequest, buckets.get_bucket),
    ("/v1/buckets/list", None, buckets.list_buckets),
    ("/v1/buckets/delete", msg.BucketRequest, buckets.delete_bucket),
    # S3 slice B: bucket ACL, tagging, CORS; object metadata replacement (tags, ACL)
    ("/v1/buckets/config", msg.BucketRequest, bucket_config.get_config),
    ("/v1/buckets/put-acl", msg.PutBucketAclRequest, bucket_config.put_acl),
    ("/v1/buckets/put-tagging", msg.PutBucketTaggingRequest, bucket_config.put_tagging),
    ("/v1/buckets/put-cors", msg.PutBucketCorsRequest, bucket_config.put_cors),
    (
        "/v1/objects/update-metadata",
        msg.UpdateObjectMetadataRequest,
        update_metadata.update_metadata,
    ),
    ("/v1/objects/begin", msg.BeginObjectRequest, begin_object.begin_object),
    ("/v1/objects/commit", msg.CommitObjectRequest, commit_object.commit_object),
    ("/v1/objects/put-inline", msg.PutInlineRequest, put_inline.put_inline),
    ("/v1/objects/head", msg.ObjectRequest, head_object.head_object),
    ("/v1/objects/download", msg.DownloadRequest, download.download),
    ("/v1/objects/list", msg.ListObjectsRequest, list_objects.list_objects),
    ("/v1/objects/delete", msg.ObjectRequest, delete_object.delete_object),
    ("/v1/segments/begin", msg.BeginSegmentRequest, begin_segment.begin_segment),
    ("/v1/segments/commit", msg.CommitSegmentRequest, commit_segment.commit_segment),
    ("/v1/uploads/begin", msg.BeginUploadRequest, multipart.begin_upload),
    ("/v1/uploads/get", msg.UploadRequest, multipart.get_upload),
    ("/v1/uploads/begin-part", msg.BeginPartRequest, multipart.begin_part),
    ("/v1/uploads/commit-part", msg.CommitPartRequest, multipart.commit_part),
    ("/v1/uploads/parts", msg.ListPartsRequest, multipart.list_parts),
    ("/v1/uploads/complete", msg.CompleteUploadRequest, multipart.complete_upload),
    ("/v1/uploads/abort", msg.UploadRequest, multipart.abort_upload),
    ("/v1/uploads/list", msg.ListUploadsRequest, multipart.list_uploads),
    # ---- S3 versioning: bucket state, batched deletes, version listing
    ("/v1/buckets/put-versioning", msg.PutBucketVersioningRequest, bucket_config.put_versioning),
    ("/v1/objects/delete-many", msg.DeleteObjectsRequest, delete_object.delete_objects),
    ("/v1/objects/versions", msg.ListVersionsRequest, list_versions.list_versions),
    # ---- end S3 versioning
]


async def _codec(m: Metainfo) -> msg.CodecParams:
    return m.codec


def create_app(m: Metainfo, auth: Auth, identity: Identity) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_RPC_BODY)
    registry = m.registry
    peer = msg.PeerIdentity(
        id=identity.id,
        public_key=identity.public_key,
        role="coordinator",
        version=skymesh.__version__,
    )

    async def healthz(_request: web.Request) -> web.Response:
        await m.db.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
        return json_response({"status": "ok"})

    async def identity_route(_request: web.Request) -> web.Response:
        return json_response(peer)

    async def join(request: web.Request) -> web.Response:
        return json_response(await registry.join(await read_json(request, Signed)))

    async def heartbeat(request: web.Request) -> web.Response:
        return json_response(await registry.heartbeat(await read_json(request, Signed)))

    async def list_nodes(request: web.Request) -> web.Response:
        auth.require_admin(request)
        return json_response(await registry.node_list())

    async def create_project(request: web.Request) -> web.Response:
        auth.require_admin(request)
        req = await read_json(request, msg.CreateProjectRequest)
        return json_response(await auth.create_project(req.name))

    async def register_access_key(request: web.Request) -> web.Response:
        project_id = await auth.project_of(request)
        req = await read_json(request, msg.RegisterAccessKeyRequest)
        await auth.register_access_key(project_id, req.access_key_id)
        return json_response({})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/identity", identity_route)
    app.router.add_post("/v1/nodes/join", join)
    app.router.add_post("/v1/nodes/heartbeat", heartbeat)
    app.router.add_get("/v1/nodes", list_nodes)
    app.router.add_post("/v1/projects", create_project)
    app.router.add_post("/v1/projects/access-keys", register_access_key)
    for path, kind, op in PROJECT_ROUTES:
        app.router.add_post(path, _project_route(m, auth, kind, op))
    return app


def _project_route(m: Metainfo, auth: Auth, kind: type | None, op: Operation) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        project_id = await auth.project_of(request)
        req: Any = None if kind is None else await read_json(request, kind)
        result: Any = await op(m, project_id, req)
        return json_response({} if result is None else result)

    return handle


# ---- durability slice B: graceful exit -------------------------------------------


def add_drain_route(
    app: web.Application, drain: Callable[[Signed], Awaitable[msg.DrainStatus]]
) -> None:
    """``POST /v1/nodes/drain``: ``Signed[DrainRequest]`` (the node's key) -> ``DrainStatus``.

    Idempotent: asking again reports progress (pieces left, ``drained_at`` once done).
    """

    async def handle(request: web.Request) -> web.Response:
        return json_response(await drain(await read_json(request, Signed)))

    app.router.add_post("/v1/nodes/drain", handle)


# ---- durability slice A: durability report -----------------------------------------


def add_durability_route(
    app: web.Application, auth: Auth, report: Callable[[], Awaitable[msg.DurabilityReport]]
) -> None:
    """``GET /v1/admin/durability`` (admin token) -> ``DurabilityReport``."""

    async def handle(request: web.Request) -> web.Response:
        auth.require_admin(request)
        return json_response(await report())

    app.router.add_get("/v1/admin/durability", handle)


# ---- end durability slice A --------------------------------------------------------
