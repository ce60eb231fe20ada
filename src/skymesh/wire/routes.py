"""Every route of the coordinator, declared once: method, path, body, answer and who may call.

The coordinator mounts these and nothing else (``skymesh.coordinator``), and every
caller reaches it through :meth:`skymesh.rpc.RpcClient.send` with the same
:class:`Route`, so a path, its body type and its answer type cannot drift apart.
``docs/spec/coordinator-api.md`` describes each one; a test checks that it names them all.

Bodies and answers are JSON of the structs in this package; a route with no body takes
``None`` (its request type is ``NoneType``). ``{name}`` in a path is filled from the caller's ``params``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import NoneType
from typing import Generic, TypeVar

from skymesh.wire.accounting import (
    AccountingUsage,
    PayoutReport,
    ProjectUsage,
    SettlementResult,
)
from skymesh.wire.base import Empty, Health
from skymesh.wire.batch import BatchOrderGrant, BatchOrderRequest, ReadOrderRequest
from skymesh.wire.durability import DrainStatus, DurabilityReport, ObjectPieces
from skymesh.wire.inference import (
    CheckInferenceKeyRequest,
    ComputeNodeList,
    CreateInferenceKeyRequest,
    InferenceKeyCreated,
    InferenceKeyInfo,
    InferenceKeyList,
    InferenceOrderRequest,
    InferenceOrders,
    SpotCheckRecorded,
    SpotCheckReport,
)
from skymesh.wire.keys import CoordinatorKeyInfo, CoordinatorKeyList
from skymesh.wire.leases import LeaseList
from skymesh.wire.metainfo import (
    AbortObjectRequest,
    BeginObjectRequest,
    BeginObjectResponse,
    BeginPartRequest,
    BeginSegmentRequest,
    BeginUploadRequest,
    BucketConfig,
    BucketInfo,
    BucketList,
    BucketRequest,
    CodecParams,
    CommitObjectRequest,
    CommitPartRequest,
    CommitSegmentRequest,
    CompleteUploadRequest,
    CreateBucketRequest,
    CreateProjectRequest,
    DeleteObjectResponse,
    DeleteObjectsRequest,
    DeleteObjectsResponse,
    DownloadRequest,
    DownloadResponse,
    ListObjectsRequest,
    ListObjectsResponse,
    ListPartsRequest,
    ListPartsResponse,
    ListUploadsRequest,
    ListUploadsResponse,
    ListVersionsRequest,
    ListVersionsResponse,
    ObjectInfo,
    ObjectRequest,
    PartInfo,
    Placement,
    ProjectCredentials,
    PutBucketAclRequest,
    PutBucketCorsRequest,
    PutBucketLifecycleRequest,
    PutBucketOwnershipRequest,
    PutBucketPolicyRequest,
    PutBucketTaggingRequest,
    PutBucketVersioningRequest,
    PutInlineRequest,
    PutObjectLockConfigRequest,
    PutObjectLockRequest,
    PutPublicAccessBlockRequest,
    RegisterAccessKeyRequest,
    UpdateObjectMetadataRequest,
    UploadInfo,
    UploadRequest,
)
from skymesh.wire.metering import (
    ProjectRouting,
    ProjectRoutingList,
    RoutingWeights,
    UsageRecorded,
    UsageReports,
    UsageSummary,
)
from skymesh.wire.projects import (
    AccessKeyList,
    CreateKeysRequest,
    KeyList,
    KeysCreated,
    ProjectInfo,
    ProjectList,
)
from skymesh.wire.registry import (
    AdmitOperatorRequest,
    HeartbeatResponse,
    JoinResponse,
    NodeList,
    OperatorAdmission,
    OperatorInfo,
    OperatorList,
    PeerIdentity,
)
from skymesh.wire.signing import Signed
from skymesh.wire.status import NetworkStatus

Req = TypeVar("Req")
Resp = TypeVar("Resp")

#: The most a NODE route's body may be: a signed join, heartbeat or drain is a few KiB.
NODE_BODY_LIMIT = 64 * 1024

#: Where the routes a batch or read order opens are mounted: ``SCOPE_PREFIX + route.path``.
SCOPE_PREFIX = "/v1/compute/batch-scope"


class Caller(enum.Enum):
    """Who may call a route, checked before its body is read."""

    ANYONE = "-"
    ADMIN = "admin"  # Authorization: Bearer <admin token>
    PROJECT = "project"  # Authorization: Bearer <project API key>
    PROJECT_OR_ADMIN = "project or admin"
    NODE = "node"  # the body is a Signed envelope of a registered (or joining) node; anyone
    # may send one, so its body is capped at NODE_BODY_LIMIT
    BATCH_ORDER = "batch order"  # a signed BatchOrder in X-Skymesh-Order


@dataclass(frozen=True)
class Route(Generic[Req, Resp]):
    """One coordinator route: ``method path``, body type (None: no body) and answer type."""

    method: str
    path: str
    request: type[Req]  # NoneType: no body
    response: type[Resp]
    caller: Caller
    #: Safe to send again to another coordinator when an attempt may have reached the
    #: first (a timeout, a dropped connection, 502/503/504): doing it twice leaves what
    #: doing it once does, or at most an orphan that expiry removes. ``skymesh.failover``.
    idempotent: bool = False

    @property
    def has_body(self) -> bool:
        return self.request is not NoneType

    def url_path(self, params: dict[str, str] | None = None) -> str:
        """The path with its ``{name}`` parts filled in from ``params``."""
        return self.path.format(**params) if params else self.path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _route(
    method: str,
    path: str,
    request: type[Req],
    response: type[Resp],
    caller: Caller,
    idempotent: bool | None = None,
) -> Route[Req, Resp]:
    """A route; ``idempotent`` defaults to True for GET (a read) and False otherwise."""
    safe = method == "GET" if idempotent is None else idempotent
    return Route(method, path, request, response, caller, safe)


#: Written beside a route that is safe to repeat (see ``Route.idempotent``). Reads are;
#: so are writes that set a value (bucket ACL, tags, CORS, versioning, routing), node
#: joins, heartbeats and drains (signed state, not events), usage reports (counted once
#: by serial) and orders (unused ones expire). Begin object/upload, repeated, leave an
#: orphan pending stream that ``expire-uploads`` removes. Commits of segments, parts,
#: objects and uploads answer a repeat as the first commit did (``coordinator.metainfo``).
#: Not safe: creations and deletions that answer a repeat with an error or do it twice.
SAFE = True


ANYONE, ADMIN, PROJECT, NODE = Caller.ANYONE, Caller.ADMIN, Caller.PROJECT, Caller.NODE

# ---------------------------------------------------------------- registry
HEALTHZ = _route("GET", "/healthz", NoneType, Health, ANYONE)
IDENTITY = _route("GET", "/v1/identity", NoneType, PeerIdentity, ANYONE)
JOIN = _route("POST", "/v1/nodes/join", Signed, JoinResponse, NODE, SAFE)  # Signed[NodeInfo]
HEARTBEAT = _route("POST", "/v1/nodes/heartbeat", Signed, HeartbeatResponse, NODE, SAFE)
LIST_NODES = _route("GET", "/v1/nodes", NoneType, NodeList, ADMIN)
#: Accounting (``coordinator/accounting``): nodes settle served get orders (a signed
#: SettlementBatch; each order counts once, by serial); hourly usage and monthly payouts.
SETTLE_ORDERS = _route("POST", "/v1/nodes/settlements", Signed, SettlementResult, NODE, SAFE)
ACCOUNTING_USAGE = _route("GET", "/v1/admin/accounting", NoneType, AccountingUsage, ADMIN)
PAYOUTS = _route("GET", "/v1/admin/payouts", NoneType, PayoutReport, ADMIN)
#: A project's own hourly rollups as a series, with their cost (query: since, until, step).
OWN_USAGE = _route("GET", "/v1/projects/self/usage", NoneType, ProjectUsage, PROJECT)
#: Which coordinator of several runs each background loop (``coordinator/leases.py``).
LIST_LEASES = _route("GET", "/v1/admin/leases", NoneType, LeaseList, ADMIN)
#: The network at a glance (``skymesh status``): nodes, durability, loops, compute, warnings.
STATUS = _route("GET", "/v1/admin/status", NoneType, NetworkStatus, ADMIN)
#: The administrator's web console: static pages under this path (``skymesh.console``),
#: not a JSON route; the pages call the admin routes here with the admin token.
CONSOLE_PATH = "/console/"
# Prometheus metrics: the text exposition format, not JSON (docs/operations.md "Metrics")
METRICS = _route("GET", "/metrics", NoneType, bytes, ADMIN)

# ---------------------------------------------------------------- admission (operators)
ADMIT_OPERATOR = _route(
    "POST", "/v1/admin/operators", AdmitOperatorRequest, OperatorAdmission, ADMIN
)
LIST_OPERATORS = _route("GET", "/v1/admin/operators", NoneType, OperatorList, ADMIN)
REVOKE_OPERATOR = _route(
    "POST", "/v1/admin/operators/{operator}/revoke", NoneType, OperatorInfo, ADMIN
)

# ---------------------------------------------------------------- coordinator keys
LIST_COORDINATOR_KEYS = _route(
    "GET", "/v1/admin/coordinator-keys", NoneType, CoordinatorKeyList, ADMIN
)
RETIRE_COORDINATOR_KEY = _route(
    "POST",
    "/v1/admin/coordinator-keys/{coordinator_id}/retire",
    NoneType,
    CoordinatorKeyInfo,
    ADMIN,
)

# ---------------------------------------------------------------- durability
DRAIN = _route("POST", "/v1/nodes/drain", Signed, DrainStatus, NODE, SAFE)  # Signed[DrainRequest]
DURABILITY = _route("GET", "/v1/admin/durability", NoneType, DurabilityReport, ADMIN)
OBJECT_PIECES = _route("GET", "/v1/admin/objects/pieces", NoneType, ObjectPieces, ADMIN)

# ---------------------------------------------------------------- projects
CREATE_PROJECT = _route("POST", "/v1/projects", CreateProjectRequest, ProjectCredentials, ADMIN)
REGISTER_ACCESS_KEY = _route(
    "POST", "/v1/projects/access-keys", RegisterAccessKeyRequest, Empty, PROJECT, SAFE
)
#: A gateway, with the project's API key: the project's S3 access keys, revoked and
#: expired ones too (``coordinator/projects.py``), asked every few seconds.
PROJECT_ACCESS_KEYS = _route("GET", "/v1/projects/access-keys", NoneType, AccessKeyList, PROJECT)
#: The administrator's view of projects and their keys (`skymesh project`, `skymesh keys`).
LIST_PROJECTS = _route("GET", "/v1/admin/projects", NoneType, ProjectList, ADMIN)
DELETE_PROJECT = _route("DELETE", "/v1/admin/projects/{project}", NoneType, ProjectInfo, ADMIN)
CREATE_KEYS = _route(
    "POST", "/v1/admin/projects/{project}/keys", CreateKeysRequest, KeysCreated, ADMIN
)
PROJECT_KEYS = _route("GET", "/v1/admin/projects/{project}/keys", NoneType, KeyList, ADMIN)
LIST_KEYS = _route("GET", "/v1/admin/keys", NoneType, KeyList, ADMIN)
REVOKE_KEY = _route("POST", "/v1/admin/keys/{key_id}/revoke", NoneType, KeyList, ADMIN, SAFE)
#: A project's own keys, with its API key (the tenant console, through a gateway that
#: holds the project's root secret and so derives a new S3 key's secret itself): the
#: same answers as the admin's routes, for the caller's project only; another project's
#: key id is as unknown as none (404 NoSuchKey).
_OWN_KEYS = "/v1/projects/self/keys"
OWN_KEYS = _route("GET", _OWN_KEYS, NoneType, KeyList, PROJECT)
CREATE_OWN_KEYS = _route("POST", _OWN_KEYS, CreateKeysRequest, KeysCreated, PROJECT)
REVOKE_OWN_KEY = _route("POST", _OWN_KEYS + "/{key_id}/revoke", NoneType, KeyList, PROJECT, SAFE)

# ---------------------------------------------------------------- metainfo: buckets
CODEC = _route("POST", "/v1/codec", NoneType, CodecParams, PROJECT, SAFE)
CREATE_BUCKET = _route("POST", "/v1/buckets/create", CreateBucketRequest, BucketInfo, PROJECT)
GET_BUCKET = _route("POST", "/v1/buckets/get", BucketRequest, BucketInfo, PROJECT, SAFE)
LIST_BUCKETS = _route("POST", "/v1/buckets/list", NoneType, BucketList, PROJECT, SAFE)
DELETE_BUCKET = _route("POST", "/v1/buckets/delete", BucketRequest, Empty, PROJECT)
BUCKET_CONFIG = _route("POST", "/v1/buckets/config", BucketRequest, BucketConfig, PROJECT, SAFE)
PUT_BUCKET_ACL = _route(
    "POST", "/v1/buckets/put-acl", PutBucketAclRequest, BucketConfig, PROJECT, SAFE
)
PUT_BUCKET_TAGGING = _route(
    "POST", "/v1/buckets/put-tagging", PutBucketTaggingRequest, BucketConfig, PROJECT, SAFE
)
PUT_BUCKET_CORS = _route(
    "POST", "/v1/buckets/put-cors", PutBucketCorsRequest, BucketConfig, PROJECT, SAFE
)
PUT_BUCKET_POLICY = _route(
    "POST", "/v1/buckets/put-policy", PutBucketPolicyRequest, BucketConfig, PROJECT, SAFE
)
PUT_PUBLIC_ACCESS_BLOCK = _route(
    "POST",
    "/v1/buckets/put-public-access-block",
    PutPublicAccessBlockRequest,
    BucketConfig,
    PROJECT,
    SAFE,
)
PUT_BUCKET_OWNERSHIP = _route(
    "POST", "/v1/buckets/put-ownership", PutBucketOwnershipRequest, BucketConfig, PROJECT, SAFE
)
PUT_BUCKET_LIFECYCLE = _route(
    "POST", "/v1/buckets/put-lifecycle", PutBucketLifecycleRequest, BucketConfig, PROJECT, SAFE
)
PUT_BUCKET_VERSIONING = _route(
    "POST", "/v1/buckets/put-versioning", PutBucketVersioningRequest, BucketConfig, PROJECT, SAFE
)
PUT_OBJECT_LOCK_CONFIG = _route(
    "POST", "/v1/buckets/put-object-lock", PutObjectLockConfigRequest, BucketConfig, PROJECT, SAFE
)

# ---------------------------------------------------------------- metainfo: objects
BEGIN_OBJECT = _route(
    "POST", "/v1/objects/begin", BeginObjectRequest, BeginObjectResponse, PROJECT, SAFE
)
BEGIN_SEGMENT = _route("POST", "/v1/segments/begin", BeginSegmentRequest, Placement, PROJECT, SAFE)
COMMIT_SEGMENT = _route("POST", "/v1/segments/commit", CommitSegmentRequest, Empty, PROJECT, SAFE)
COMMIT_OBJECT = _route("POST", "/v1/objects/commit", CommitObjectRequest, ObjectInfo, PROJECT, SAFE)
PUT_INLINE = _route("POST", "/v1/objects/put-inline", PutInlineRequest, ObjectInfo, PROJECT)
ABORT_OBJECT = _route("POST", "/v1/objects/abort", AbortObjectRequest, Empty, PROJECT)
HEAD_OBJECT = _route("POST", "/v1/objects/head", ObjectRequest, ObjectInfo, PROJECT, SAFE)
DOWNLOAD = _route("POST", "/v1/objects/download", DownloadRequest, DownloadResponse, PROJECT, SAFE)
LIST_OBJECTS = _route(
    "POST", "/v1/objects/list", ListObjectsRequest, ListObjectsResponse, PROJECT, SAFE
)
DELETE_OBJECT = _route("POST", "/v1/objects/delete", ObjectRequest, DeleteObjectResponse, PROJECT)
DELETE_OBJECTS = _route(
    "POST", "/v1/objects/delete-many", DeleteObjectsRequest, DeleteObjectsResponse, PROJECT
)
LIST_VERSIONS = _route(
    "POST", "/v1/objects/versions", ListVersionsRequest, ListVersionsResponse, PROJECT, SAFE
)
PUT_OBJECT_LOCK = _route(
    "POST", "/v1/objects/put-lock", PutObjectLockRequest, ObjectInfo, PROJECT, SAFE
)
UPDATE_METADATA = _route(
    "POST", "/v1/objects/update-metadata", UpdateObjectMetadataRequest, ObjectInfo, PROJECT
)

# ---------------------------------------------------------------- metainfo: multipart
BEGIN_UPLOAD = _route("POST", "/v1/uploads/begin", BeginUploadRequest, UploadInfo, PROJECT, SAFE)
GET_UPLOAD = _route("POST", "/v1/uploads/get", UploadRequest, UploadInfo, PROJECT, SAFE)
BEGIN_PART = _route("POST", "/v1/uploads/begin-part", BeginPartRequest, Placement, PROJECT, SAFE)
COMMIT_PART = _route("POST", "/v1/uploads/commit-part", CommitPartRequest, PartInfo, PROJECT, SAFE)
LIST_PARTS = _route("POST", "/v1/uploads/parts", ListPartsRequest, ListPartsResponse, PROJECT, SAFE)
COMPLETE_UPLOAD = _route(
    "POST", "/v1/uploads/complete", CompleteUploadRequest, ObjectInfo, PROJECT, SAFE
)
ABORT_UPLOAD = _route("POST", "/v1/uploads/abort", UploadRequest, Empty, PROJECT)
LIST_UPLOADS = _route(
    "POST", "/v1/uploads/list", ListUploadsRequest, ListUploadsResponse, PROJECT, SAFE
)

# ---------------------------------------------------------------- inference
COMPUTE_NODES = _route("GET", "/v1/compute/nodes", NoneType, ComputeNodeList, PROJECT)
INFERENCE_ORDERS = _route(
    "POST", "/v1/compute/orders", InferenceOrderRequest, InferenceOrders, PROJECT, SAFE
)
BATCH_ORDERS = _route(
    "POST", "/v1/compute/batch-orders", BatchOrderRequest, BatchOrderGrant, PROJECT, SAFE
)
READ_ORDERS = _route(
    "POST", "/v1/compute/read-orders", ReadOrderRequest, BatchOrderGrant, PROJECT, SAFE
)
#: A gateway, with the project's API key: two nodes of different operators answered one
#: request alike or not (both signed inference orders as evidence).
SPOT_CHECKS = _route("POST", "/v1/compute/spot-checks", SpotCheckReport, SpotCheckRecorded, PROJECT)
#: Signed[BatchUsage], signed by the order's node.
BATCH_USAGE = _route("POST", SCOPE_PREFIX + "/usage", Signed, UsageRecorded, Caller.BATCH_ORDER)

# ---------------------------------------------------------------- inference API keys
_INFERENCE_KEYS = "/v1/projects/inference-keys"
CREATE_INFERENCE_KEY = _route(
    "POST", _INFERENCE_KEYS, CreateInferenceKeyRequest, InferenceKeyCreated, PROJECT
)
LIST_INFERENCE_KEYS = _route("GET", _INFERENCE_KEYS, NoneType, InferenceKeyList, PROJECT)
REVOKE_INFERENCE_KEY = _route(
    "DELETE", _INFERENCE_KEYS + "/{key_id}", NoneType, InferenceKeyInfo, PROJECT
)
#: A gateway, with the project's API key: is this bearer key one of the project's, live?
CHECK_INFERENCE_KEY = _route(
    "POST", _INFERENCE_KEYS + "/check", CheckInferenceKeyRequest, InferenceKeyInfo, PROJECT, SAFE
)

# ---------------------------------------------------------------- metering
USAGE_REPORTS = _route(
    "POST", "/v1/compute/usage", UsageReports, UsageRecorded, Caller.PROJECT_OR_ADMIN, SAFE
)
#: Query: project, since, until, group_by.
USAGE = _route("GET", "/v1/usage", NoneType, UsageSummary, Caller.PROJECT_OR_ADMIN)
OWN_ROUTING = _route("GET", "/v1/projects/self/routing", NoneType, ProjectRouting, PROJECT)
ALL_ROUTING = _route("GET", "/v1/admin/routing", NoneType, ProjectRoutingList, ADMIN)
_PROJECT_ROUTING = "/v1/admin/projects/{project}/routing"
GET_ROUTING = _route("GET", _PROJECT_ROUTING, NoneType, ProjectRouting, ADMIN)
SET_ROUTING = _route("PUT", _PROJECT_ROUTING, RoutingWeights, ProjectRouting, ADMIN, SAFE)
RESET_ROUTING = _route("DELETE", _PROJECT_ROUTING, NoneType, ProjectRouting, ADMIN, SAFE)

#: The project routes a batch (or read) order also opens under ``SCOPE_PREFIX``, run as
#: the order's project for its input and its uploads only.
BATCH_SCOPED: tuple[Route, ...] = (
    CODEC,
    DOWNLOAD,
    GET_UPLOAD,
    BEGIN_PART,
    COMMIT_PART,
    LIST_PARTS,
    COMPLETE_UPLOAD,
    ABORT_UPLOAD,
    BEGIN_SEGMENT,
)

#: Every route the coordinator serves, BATCH_SCOPED ones only at their own path.
COORDINATOR_ROUTES: tuple[Route, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, Route)
)
