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
    """``POST /v1/objects/head`` and ``POST /v1/objects/delete``."""

    bucket: str
    key: str
    version_id: str = ""


class DeleteObjectResponse(Base, frozen=True):
    deleted: bool
    version_id: str = ""


class DownloadRequest(Base, frozen=True):
    """``POST /v1/objects/download``: object info and segments ``first_segment`` onwards, with get orders."""

    bucket: str
    key: str
    version_id: str = ""
    first_segment: int = 0
    segment_limit: int = 8
    plain_offset: int | None = None  # start at the segment holding this byte instead


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


class PartInfo(Base, frozen=True):
    part_number: int
    size: int
    etag: str
    uploaded_at: float


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
