"""Every message that crosses between roles.

Coordinator RPCs are ``POST /v1/<name>`` (or the method named in the docstring)
with a JSON body of the request struct and a JSON answer of the response struct;
an error answers with the HTTP status of the error and an :class:`ErrorBody`.
Node piece transfers carry a signed :class:`Order` in the ``X-Skymesh-Order``
header. ``docs/spec/`` describes the same in prose.
"""

from __future__ import annotations

import enum

import msgspec

from skymesh.wire.signing import Signed

ORDER_HEADER = "X-Skymesh-Order"
API_KEY_HEADER = "Authorization"  # "Bearer <api key>"


class Base(msgspec.Struct, frozen=True, kw_only=True):
    """Common base: immutable, keyword-only, unknown fields ignored (forward compatible)."""


class ErrorBody(Base, frozen=True):
    """What every role answers on error, with the error's HTTP status."""

    code: str
    message: str


# ---------------------------------------------------------------- identity, registry


class PeerIdentity(Base, frozen=True):
    """``GET /v1/identity`` on a coordinator or a node."""

    id: str
    public_key: bytes
    role: str
    version: str = ""


class NodeInfo(Base, frozen=True):
    """What a node says of itself when it joins (signed by the node)."""

    node_id: str
    address: str  # base URL where the node serves pieces, e.g. http://127.0.0.1:7801
    region: str
    operator: str
    capacity_bytes: int
    used_bytes: int
    version: str
    timestamp: float


class JoinResponse(Base, frozen=True):
    coordinator_id: str
    coordinator_public_key: bytes
    heartbeat_interval: float


class Heartbeat(Base, frozen=True):
    """``POST /v1/nodes/heartbeat`` body (signed by the node)."""

    node_id: str
    address: str
    capacity_bytes: int
    used_bytes: int
    timestamp: float
    compute: ComputeAdvert | None = None  # inference slice: nodes run with --compute


class HeartbeatResponse(Base, frozen=True):
    heartbeat_interval: float
    known: bool = True  # False: the coordinator forgot us, join again


class NodeStatus(Base, frozen=True):
    """One row of ``GET /v1/nodes``."""

    node_id: str
    address: str
    region: str
    operator: str
    capacity_bytes: int
    used_bytes: int
    online: bool
    last_seen: float
    joined_at: float
    # durability slice B: reputation (defaults: a node with no audits yet)
    audit_score: float = 1.0
    unknown_score: float = 1.0
    audits: int = 0  # answered audits (successes + failures)
    vetted: bool = False
    disqualified: bool = False
    exit: str = ""  # "", "draining" or "drained"


class NodeList(Base, frozen=True):
    nodes: list[NodeStatus]


# ---------------------------------------------------------------- orders and receipts


class PieceAction(enum.Enum):
    PUT = "put"
    GET = "get"
    DELETE = "delete"
    AUDIT = "audit"  # durability slice B: read one Merkle chunk with its proof (single-use)


class Order(Base, frozen=True):
    """Permission, signed by a coordinator, for one action on one piece at one node.

    A ``put`` or ``delete`` order is single-use. A ``get`` order is an allowance of
    ``max_bytes`` over any number of ranged reads until it expires.
    """

    serial: str  # 32 hex chars, unique per order
    coordinator_id: str
    node_id: str
    piece_id: str
    action: PieceAction
    max_bytes: int
    expires_at: float
    issued_at: float


class PieceReceipt(Base, frozen=True):
    """What a node signs once it has durably stored a piece."""

    node_id: str
    piece_id: str
    serial: str
    size: int
    merkle_root: bytes
    stored_at: float


class PieceHashes(Base, frozen=True):
    """Leaf hashes of a piece's Merkle tree, for readers that verify a range."""

    piece_id: str
    size: int
    chunk_size: int
    leaves: list[bytes]


# ---- durability slice B (audits, graceful exit) ------------------------------------


class AuditChunk(Base, frozen=True):
    """``GET /v1/pieces/{id}/audit?chunk=N``: one Merkle chunk and its inclusion proof.

    The auditor checks ``leaf_hash(data)`` with ``proof`` against the root it
    recorded from the piece's receipt; the node cannot answer without the bytes.
    """

    piece_id: str
    chunk_index: int
    leaf_count: int
    data: bytes
    proof: list[bytes]


class DrainRequest(Base, frozen=True):
    """``POST /v1/nodes/drain`` body, signed by the node: move my pieces off, I am leaving."""

    node_id: str
    timestamp: float


class DrainStatus(Base, frozen=True):
    """Where a node's graceful exit stands; ``drained_at`` is set once it holds no pieces."""

    node_id: str
    requested_at: float
    pieces_left: int
    drained_at: float | None = None


# ---- end durability slice B ------------------------------------------------------


# ---------------------------------------------------------------- projects and buckets


class CreateProjectRequest(Base, frozen=True):
    """``POST /v1/projects`` (admin token)."""

    name: str


class ProjectCredentials(Base, frozen=True):
    project_id: str
    name: str
    api_key: str


class RegisterAccessKeyRequest(Base, frozen=True):
    """``POST /v1/projects/access-keys``: record that an S3 access key id belongs to the caller's project.

    The secret never reaches the coordinator: the gateway keeps it.
    """

    access_key_id: str


class BucketInfo(Base, frozen=True):
    name: str
    created_at: float
    region: str = ""


class CreateBucketRequest(Base, frozen=True):
    """``POST /v1/buckets/create``."""

    name: str
    region: str = ""
    acl: str = "private"  # S3 slice B: canned ACL, "private" or "public-read"


class BucketRequest(Base, frozen=True):
    """``POST /v1/buckets/get`` and ``POST /v1/buckets/delete``."""

    name: str


class BucketList(Base, frozen=True):
    """``POST /v1/buckets/list``."""

    buckets: list[BucketInfo]


# ---- S3 slice B: bucket ACL, tagging, CORS; object metadata replacement ------------


class Tag(Base, frozen=True):
    key: str
    value: str


class CorsRule(Base, frozen=True):
    """One S3 CORS rule, as PutBucketCors gives it (checked by the gateway)."""

    allowed_origins: list[str]
    allowed_methods: list[str]
    allowed_headers: list[str] = []
    expose_headers: list[str] = []
    max_age_seconds: int | None = None
    id: str = ""


class BucketConfig(Base, frozen=True):
    """``POST /v1/buckets/config``: a bucket's ACL, tags and CORS rules.

    ``tags`` / ``cors`` are None when never set (S3's NoSuchTagSet /
    NoSuchCORSConfiguration), which differs from an empty list.
    """

    name: str
    acl: str = "private"  # "private" | "public-read"
    tags: list[Tag] | None = None
    cors: list[CorsRule] | None = None
    # S3 versioning: "" (never configured), "Enabled" or "Suspended"
    versioning: str = ""


# ---- S3 versioning ---------------------------------------------------------------------


class PutBucketVersioningRequest(Base, frozen=True):
    """``POST /v1/buckets/put-versioning`` -> BucketConfig; ``status`` Enabled or Suspended."""

    name: str
    status: str


# ---- end S3 versioning -----------------------------------------------------------------


class PutBucketAclRequest(Base, frozen=True):
    """``POST /v1/buckets/put-acl`` -> BucketConfig."""

    name: str
    acl: str


class PutBucketTaggingRequest(Base, frozen=True):
    """``POST /v1/buckets/put-tagging`` -> BucketConfig; ``tags`` None deletes them."""

    name: str
    tags: list[Tag] | None = None


class PutBucketCorsRequest(Base, frozen=True):
    """``POST /v1/buckets/put-cors`` -> BucketConfig; ``rules`` None deletes them."""

    name: str
    rules: list[CorsRule] | None = None


class UpdateObjectMetadataRequest(Base, frozen=True):
    """``POST /v1/objects/update-metadata`` -> ObjectInfo.

    Replaces the sealed metadata of the object's current version, only if that
    version is still ``version_id`` (else ``NoSuchVersion``): the gateway re-seals
    tags or an ACL change and must not overwrite a newer version's metadata.
    """

    bucket: str
    key: str
    version_id: str
    encrypted_metadata: bytes


# ---- end S3 slice B ------------------------------------------------------------------


# ---------------------------------------------------------------- segments and placement


class Scheme(Base, frozen=True):
    """Reed-Solomon thresholds: read with ``k``, repair at ``repair``, stop at ``optimal``, start ``total``."""

    k: int
    repair: int
    optimal: int
    total: int


class SegmentPosition(Base, frozen=True, order=True):
    """Where a segment sits: part 0 for simple uploads, the part number for multipart."""

    part: int = 0
    index: int = 0

    def nonce_segment(self) -> int:
        """The segment number that feeds the encryption nonce; unique within an object."""
        return (self.part << 32) | self.index


class AddressedOrder(Base, frozen=True):
    """A node to send one piece to (or fetch it from), with the order that allows it."""

    piece_num: int
    node_id: str
    address: str
    region: str
    order: Signed


class Placement(Base, frozen=True):
    """Where one segment's pieces go: ``total`` nodes, one piece each."""

    root_piece_id: str
    scheme: Scheme
    max_piece_size: int
    pieces: list[AddressedOrder]


class CodecParams(Base, frozen=True):
    """How the client cuts and encrypts; chosen by the coordinator, stored per segment."""

    max_segment_size: int
    inline_threshold: int
    block_size: int


class CommittedPiece(Base, frozen=True):
    piece_num: int
    node_id: str
    receipt: Signed  # a PieceReceipt signed by node_id


class SegmentCommit(Base, frozen=True):
    """A segment the client has stored (or inlined)."""

    position: SegmentPosition
    plain_size: int
    block_size: int
    root_piece_id: str = ""
    scheme: Scheme | None = None
    piece_size: int = 0
    pieces: list[CommittedPiece] = []
    inline_data: bytes | None = None  # ciphertext of an inline segment
    key_salt: bytes = b""  # multipart parts: salt of the part's subkey (empty: the data key)


# ---------------------------------------------------------------- objects


class ObjectInfo(Base, frozen=True):
    bucket: str
    key: str
    version_id: str  # the stream id of this version
    size: int
    etag: str
    created_at: float
    encrypted_key: bytes
    encrypted_metadata: bytes
    segment_count: int
    # S3 versioning: S3 calls this version "null" (written while the bucket was not
    # versioning-enabled); a delete marker has no data; the bucket's versioning
    # state when answered ("" never configured, "Enabled", "Suspended")
    null_version: bool = False
    delete_marker: bool = False
    is_latest: bool = True
    versioning: str = ""


class BeginObjectRequest(Base, frozen=True):
    """``POST /v1/objects/begin``: start a simple upload; answers with the first segment's placement."""

    bucket: str
    key: str
    encrypted_key: bytes
    first_segment_size: int  # plaintext bytes of the first segment, known before it is sent


class BeginObjectResponse(Base, frozen=True):
    stream_id: str
    placement: Placement


class BeginSegmentRequest(Base, frozen=True):
    """``POST /v1/segments/begin``: placement for one more segment, avoiding ``exclude_nodes``."""

    stream_id: str
    position: SegmentPosition
    plain_size: int
    exclude_nodes: list[str] = []


class CodecParamsRequest(Base, frozen=True):
    """``POST /v1/codec``: the segment size, inline threshold and block size clients must use."""


class CommitSegmentRequest(Base, frozen=True):
    """``POST /v1/segments/commit``: record a stored segment of a pending stream (still invisible)."""

    stream_id: str
    segment: SegmentCommit


class CommitObjectRequest(Base, frozen=True):
    """``POST /v1/objects/commit``: make a pending simple upload visible, atomically.

    ``segments`` holds those not yet committed one by one (often just the last).
    """

    stream_id: str
    bucket: str
    key: str
    size: int
    etag: str
    encrypted_metadata: bytes
    segments: list[SegmentCommit] = []
    # S3 conditional writes, checked inside the commit transaction ("" = none):
    # if_none_match "*" fails if the key exists; if_match fails unless its ETag is current.
    if_match: str = ""
    if_none_match: str = ""


class PutInlineRequest(Base, frozen=True):
    """``POST /v1/objects/put-inline``: a whole small object in one round trip."""

    bucket: str
    key: str
    size: int
    etag: str
    encrypted_key: bytes
    encrypted_metadata: bytes
    segment: SegmentCommit | None = None  # None for an empty object
    if_match: str = ""  # as in CommitObjectRequest
    if_none_match: str = ""


class ObjectRequest(Base, frozen=True):
    """``POST /v1/objects/head`` and ``POST /v1/objects/delete``.

    ``version_id``: "" the latest version, "null" S3's null version, else a stream id.
    """

    bucket: str
    key: str
    version_id: str = ""
    # S3 versioning: answer a delete marker as an ObjectInfo (delete_marker=True)
    # instead of NoSuchKey / MethodNotAllowed, so the gateway can say so in headers
    delete_markers: bool = False


class DeleteObjectResponse(Base, frozen=True):
    deleted: bool
    version_id: str = ""  # stream id of the version removed, or of the delete marker written
    # S3 versioning: what ``version_id`` names is a delete marker; it is S3's null version;
    # the bucket's versioning state
    delete_marker: bool = False
    null_version: bool = False
    versioning: str = ""


# ---- S3 versioning: batched deletes and version listing ---------------------------------


class DeleteObjectsItem(Base, frozen=True):
    key: str
    version_id: str = ""


class DeleteObjectsRequest(Base, frozen=True):
    """``POST /v1/objects/delete-many``: up to 1000 deletes in one transaction."""

    bucket: str
    objects: list[DeleteObjectsItem]


class DeleteObjectsResult(Base, frozen=True):
    """One item's outcome: ``outcome`` when done, else an error code and message."""

    key: str
    version_id: str = ""  # as asked
    outcome: DeleteObjectResponse | None = None
    error_code: str = ""
    error_message: str = ""


class DeleteObjectsResponse(Base, frozen=True):
    results: list[DeleteObjectsResult]


class ListVersionsRequest(Base, frozen=True):
    """``POST /v1/objects/versions``: every version and delete marker, newest first per key."""

    bucket: str
    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    version_id_marker: str = ""
    limit: int = 1000


class VersionEntry(Base, frozen=True):
    key: str
    version_id: str  # as S3 shows it: "null" or the stream id
    is_latest: bool
    delete_marker: bool
    size: int
    etag: str
    created_at: float


class ListVersionsResponse(Base, frozen=True):
    entries: list[VersionEntry]
    prefixes: list[str]
    truncated: bool
    next_key_marker: str = ""
    next_version_id_marker: str = ""


# ---- end S3 versioning -----------------------------------------------------------------


class DownloadRequest(Base, frozen=True):
    """``POST /v1/objects/download``: object info and segments ``first_segment`` onwards, with get orders."""

    bucket: str
    key: str
    version_id: str = ""
    first_segment: int = 0
    segment_limit: int = 8
    plain_offset: int | None = None  # start at the segment holding this byte instead
    delete_markers: bool = False  # S3 versioning: as in ObjectRequest
    # stop after the segment holding byte plain_end - 1: a ranged read gets orders
    # signed for the segments it reads, not for a whole batch of them
    plain_end: int | None = None


class DownloadPiece(Base, frozen=True):
    piece_num: int
    node_id: str
    address: str
    region: str
    merkle_root: bytes
    order: Signed
    online: bool = True  # as the coordinator last saw the node


class SegmentDownload(Base, frozen=True):
    number: int  # position in the object's segment order
    position: SegmentPosition
    plain_offset: int
    plain_size: int
    block_size: int
    root_piece_id: str = ""
    scheme: Scheme | None = None
    piece_size: int = 0
    pieces: list[DownloadPiece] = []
    inline_data: bytes | None = None
    key_salt: bytes = b""


class DownloadResponse(Base, frozen=True):
    object: ObjectInfo
    segments: list[SegmentDownload]


class ListObjectsRequest(Base, frozen=True):
    """``POST /v1/objects/list``: keys after ``start_after`` under ``prefix``, rolled up at ``delimiter``."""

    bucket: str
    prefix: str = ""
    delimiter: str = ""
    start_after: str = ""
    limit: int = 1000


class ObjectEntry(Base, frozen=True):
    key: str
    size: int
    etag: str
    created_at: float


class ListObjectsResponse(Base, frozen=True):
    """Entries and common prefixes in key order; ``next_start_after`` resumes when truncated."""

    entries: list[ObjectEntry]
    prefixes: list[str]
    truncated: bool
    next_start_after: str = ""


# ---------------------------------------------------------------- multipart


class BeginUploadRequest(Base, frozen=True):
    """``POST /v1/uploads/begin``: a multipart upload; its id is the stream id."""

    bucket: str
    key: str
    encrypted_key: bytes
    encrypted_metadata: bytes


class UploadInfo(Base, frozen=True):
    """``POST /v1/uploads/get`` answer: what a part upload needs."""

    upload_id: str
    bucket: str
    key: str
    encrypted_key: bytes
    encrypted_metadata: bytes
    created_at: float
    codec: CodecParams


class UploadRequest(Base, frozen=True):
    """``POST /v1/uploads/get`` and ``POST /v1/uploads/abort``."""

    bucket: str
    key: str
    upload_id: str


class BeginPartRequest(Base, frozen=True):
    """``POST /v1/uploads/begin-part``: placement for the first segment of a part."""

    bucket: str
    key: str
    upload_id: str
    part_number: int
    plain_size: int


class CommitPartRequest(Base, frozen=True):
    """``POST /v1/uploads/commit-part``: a part's segments; replaces an earlier upload of that part."""

    bucket: str
    key: str
    upload_id: str
    part_number: int
    size: int
    etag: str
    segments: list[SegmentCommit]
    checksum: str = ""  # S3 flexible checksum of the part, "<algorithm>:<base64>"


class PartInfo(Base, frozen=True):
    part_number: int
    size: int
    etag: str
    uploaded_at: float
    checksum: str = ""  # as committed with the part


class ListPartsRequest(Base, frozen=True):
    """``POST /v1/uploads/parts``."""

    bucket: str
    key: str
    upload_id: str
    part_number_marker: int = 0
    limit: int = 1000


class ListPartsResponse(Base, frozen=True):
    parts: list[PartInfo]
    truncated: bool


class CompletePart(Base, frozen=True):
    part_number: int
    etag: str
    checksum: str = ""  # when set, must equal the part's stored checksum (InvalidPart)


class CompleteUploadRequest(Base, frozen=True):
    """``POST /v1/uploads/complete``: parts in order; the object becomes visible atomically.

    Errors: ``InvalidPart`` (unknown part or etag mismatch), ``InvalidPartOrder``,
    ``EntityTooSmall`` (a part other than the last under ``min_part_size``).
    """

    bucket: str
    key: str
    upload_id: str
    parts: list[CompletePart]
    etag: str
    min_part_size: int = 5 * 1024 * 1024
    if_match: str = ""  # as in CommitObjectRequest
    if_none_match: str = ""
    # when set, replaces the upload's sealed metadata (the gateway adds part sizes, checksums)
    encrypted_metadata: bytes = b""


class ListUploadsRequest(Base, frozen=True):
    """``POST /v1/uploads/list``."""

    bucket: str
    prefix: str = ""
    key_marker: str = ""
    upload_id_marker: str = ""
    limit: int = 1000


class UploadEntry(Base, frozen=True):
    key: str
    upload_id: str
    created_at: float


class ListUploadsResponse(Base, frozen=True):
    uploads: list[UploadEntry]
    truncated: bool


# ---- durability slice A (garbage collection, reconciliation, durability report) ----


class RetainFilter(Base, frozen=True):
    """``POST /v1/retain`` on a node, signed by a coordinator: keep these pieces.

    A Bloom filter (``codec/bloom.py``) of every piece the coordinator references
    on ``node_id``. The node deletes a stored piece only when the filter does not
    contain it and it was stored before ``stored_before`` (``created_at`` minus the
    coordinator's grace), so pieces of uploads still in flight survive.
    """

    node_id: str
    created_at: float
    stored_before: float
    piece_count: int  # members, for logs and sizing checks
    num_bits: int
    hashes: int
    seed: bytes
    bits: bytes


class RetainReport(Base, frozen=True):
    """What a node did with one filter."""

    created_at: float  # the filter's
    finished_at: float
    checked: int  # pieces looked at
    removed: int
    removed_bytes: int
    kept_young: int  # not in the filter but stored after stored_before


class RetainResponse(Base, frozen=True):
    """A node's answer to ``POST /v1/retain`` (202): queued; the last sweep's report."""

    queued: bool
    last: RetainReport | None = None


class SchemeHealth(Base, frozen=True):
    """Committed segments of one redundancy scheme, by count of healthy pieces."""

    scheme: Scheme
    segments: int
    histogram: dict[int, int]  # healthy pieces -> segments
    at_or_below_repair: int  # what the repair checker queues
    lost: int  # fewer than k healthy pieces


class SegmentHealth(Base, frozen=True):
    bucket: str
    key: str
    position: SegmentPosition
    healthy: int
    stored: int
    scheme: Scheme


class DurabilityReport(Base, frozen=True):
    """``GET /v1/admin/durability`` (admin token)."""

    generated_at: float
    nodes: int
    healthy_nodes: int
    segments: int  # committed segments with pieces (inline ones cannot be lost)
    inline_segments: int
    schemes: list[SchemeHealth]
    at_risk: list[SegmentHealth]  # at or below repair, worst first (capped)
    lost: list[SegmentHealth]  # below k (capped)
    lost_total: int = 0
    at_risk_total: int = 0


# ---- end durability slice A ----------------------------------------------------------


# ---- inference slice: compute adverts, inference orders, node inference RPCs ---------


class ModelOffer(Base, frozen=True):
    """One model a compute node serves, and what it charges (USD per million tokens)."""

    name: str
    kind: str  # "embedding" | "chat"
    context_length: int
    price_in: float = 0.0
    price_out: float = 0.0
    dimensions: int = 0  # embedding models: vector length


class ComputeAdvert(Base, frozen=True):
    """What a compute node offers and how loaded it is; rides on every heartbeat.

    Soft state: the coordinator keeps the latest one in memory and forgets it with
    the node's liveness, so no column holds it.
    """

    models: list[ModelOffer]
    cores: int
    memory_bytes: int
    gpu: str = ""  # "" when none was detected
    concurrency: int = 1  # requests run at once
    queue_depth: int = 0  # requests running or waiting now
    queue_limit: int = 0  # waiting requests beyond which the node answers 429
    latency_ms: float = 0.0  # recent mean service time of one request
    tokens_per_second: float = 0.0  # recent generation throughput (0: unknown)
    pue: float = 1.0
    grid_gco2_kwh: float = 0.0
    watts: float = 0.0  # power drawn while serving, for gCO2 per token


class ComputeNode(Base, frozen=True):
    """An online compute node as the coordinator lists it to gateways."""

    node_id: str
    address: str
    region: str
    advert: ComputeAdvert


class ComputeNodeList(Base, frozen=True):
    """``GET /v1/compute/nodes`` (project key)."""

    nodes: list[ComputeNode]


class InferenceOrder(Base, frozen=True):
    """Lets the holder run one inference request on one node (signed by a coordinator).

    Carried in the ``X-Skymesh-Order`` header like piece orders; single use, short-lived.
    """

    serial: str
    coordinator_id: str
    node_id: str
    project_id: str
    model: str
    max_tokens: int  # completion tokens (chat) or input tokens (embeddings) allowed
    expires_at: float
    issued_at: float
    # metering slice: what the node offered when the order was signed (USD per 1M
    # tokens) and where it runs, so a usage report is priced as offered
    price_in: float = 0.0
    price_out: float = 0.0
    region: str = ""


class InferenceOrderRequest(Base, frozen=True):
    """``POST /v1/compute/orders`` (project key): orders for ``model`` on these nodes."""

    model: str
    node_ids: list[str]
    max_tokens: int


class InferenceOrders(Base, frozen=True):
    orders: list[Signed]  # Signed[InferenceOrder], in the order of the request's node_ids


class EmbedRequest(Base, frozen=True):
    """``POST /v1/infer/embeddings`` on a node."""

    model: str
    input: list[str]


class EmbedResponse(Base, frozen=True):
    """Vectors as little-endian float32 bytes, one per input, L2-normalised."""

    embeddings: list[bytes]
    dimensions: int
    prompt_tokens: int


class ChatMessage(Base, frozen=True):
    role: str
    content: str


class ChatRequest(Base, frozen=True):
    """``POST /v1/infer/chat`` on a node; the answer is a stream of :class:`ChatEvent`."""

    model: str
    messages: list[ChatMessage]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = []
    seed: int | None = None


class ChatEvent(Base, frozen=True):
    """One line of a node's newline-delimited JSON chat stream.

    Text arrives in ``delta`` events; the last event has ``finish_reason`` and the
    usage counts, or ``error`` when generation failed midway.
    """

    delta: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: ErrorBody | None = None


# ---- end inference slice -------------------------------------------------------------


# ---- metering slice: inference usage and per-project routing weights ------------------


class UsageReport(Base, frozen=True):
    """The tokens one signed inference order served, as its node answered them.

    ``order`` is the :class:`InferenceOrder` exactly as the coordinator signed it:
    the coordinator records usage only for orders it issued, and each order once.
    ``complete`` is False when the answer broke off (the counts are then what the
    gateway saw: one completion token per streamed piece, no prompt tokens).
    """

    order: Signed  # Signed[InferenceOrder]
    prompt_tokens: int
    completion_tokens: int
    complete: bool = True


class UsageReports(Base, frozen=True):
    """``POST /v1/compute/usage`` (project key, or admin): up to 500 reports at once."""

    reports: list[UsageReport]


class UsageRecorded(Base, frozen=True):
    """How many reports were new, and how many named an order already recorded."""

    recorded: int
    duplicates: int


class UsageRow(Base, frozen=True):
    """Totals of one group; the fields not grouped by are empty."""

    project_id: str = ""
    project_name: str = ""
    model: str = ""
    node_id: str = ""
    region: str = ""
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # USD, at the prices signed into each order


class UsageSummary(Base, frozen=True):
    """``GET /v1/usage?project=&since=&until=&group_by=`` (admin, or a project for itself)."""

    group_by: list[str]  # of "project", "model", "node"
    since: float
    until: float
    rows: list[UsageRow]


class RoutingWeights(Base, frozen=True):
    """Routing weights to set for a project (``skymesh.compute.routing.Weights``);
    a weight left out keeps its current value."""

    latency: float | None = None
    price: float | None = None
    carbon: float | None = None


class ProjectRouting(Base, frozen=True):
    """A project's default routing weights: ``GET /v1/projects/self/routing`` (project
    key), ``GET|PUT|DELETE /v1/admin/projects/{project}/routing`` (admin)."""

    project_id: str
    name: str
    latency: float
    price: float
    carbon: float
    custom: bool  # False: the network's defaults


class ProjectRoutingList(Base, frozen=True):
    """``GET /v1/admin/routing`` (admin): every project's weights."""

    projects: list[ProjectRouting]


# ---- end metering slice -----------------------------------------------------------------
