"""The metainfo protocol: projects, buckets, objects, segments, placement and multipart uploads.

Every struct here is the body or the answer of a project route of the coordinator
(``skymesh.wire.routes``); ``docs/spec/coordinator-api.md`` is the prose form.
"""

from __future__ import annotations

from skymesh.wire.base import Base
from skymesh.wire.signing import Signed


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
    acl: str = "private"
    object_lock: bool = False  # S3 Object Lock from the start (versioning Enabled for good)


class BucketRequest(Base, frozen=True):
    """``POST /v1/buckets/get`` and ``POST /v1/buckets/delete``."""

    name: str


class BucketList(Base, frozen=True):
    """``POST /v1/buckets/list``."""

    buckets: list[BucketInfo]


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


class PublicAccessBlock(Base, frozen=True):
    """S3's PublicAccessBlockConfiguration of one bucket (absent flags are false)."""

    block_public_acls: bool = False
    ignore_public_acls: bool = False
    block_public_policy: bool = False
    restrict_public_buckets: bool = False


class LifecycleRule(Base, frozen=True):
    """One S3 lifecycle rule, as PutBucketLifecycleConfiguration gives it (checked by
    the gateway; applied by the coordinator's ``lifecycle-rules`` loop).

    The filter: ``prefix``, the object's size strictly between ``size_greater_than``
    and ``size_less_than``, and every tag of ``tags``. Object tags are sealed in
    their object's metadata, so the coordinator matches ``tag_digests`` (the
    gateway's keyed digests of each ``key=value``, in the order of ``tags``) against
    the digests stored with each object. ``legacy_prefix``: written as the
    rule-level ``<Prefix>`` rather than a ``<Filter>``; ``filter_and``: the filter was
    an ``<And>`` (both only to answer GetBucketLifecycleConfiguration as written).
    Times are epoch seconds; ``expiration_date`` is a midnight UTC.
    """

    id: str
    enabled: bool
    prefix: str = ""
    legacy_prefix: bool = False
    filter_and: bool = False
    tags: list[Tag] = []
    tag_digests: list[str] = []
    size_greater_than: int | None = None
    size_less_than: int | None = None
    expiration_days: int | None = None
    expiration_date: float | None = None
    expired_object_delete_marker: bool = False
    noncurrent_days: int | None = None
    newer_noncurrent_versions: int | None = None
    abort_days: int | None = None


class BucketConfig(Base, frozen=True):
    """``POST /v1/buckets/config``: a bucket's ACL, tags, CORS and lifecycle rules,
    policy, Public Access Block, ownership controls and Object Lock configuration.

    ``tags`` / ``cors`` / ``lifecycle`` are None when never set (S3's NoSuchTagSet /
    NoSuchCORSConfiguration / NoSuchLifecycleConfiguration), which differs from an
    empty list.
    """

    name: str
    acl: str = "private"  # "private" | "public-read"
    tags: list[Tag] | None = None
    cors: list[CorsRule] | None = None
    lifecycle: list[LifecycleRule] | None = None
    # seconds in a lifecycle "day" (the coordinator's lifecycle_day_seconds), so the
    # gateway's x-amz-expiration agrees with when the coordinator expires
    lifecycle_day: float = 86400.0

    versioning: str = ""
    policy: str | None = None  # the bucket policy JSON as the owner gave it
    public_access_block: PublicAccessBlock | None = None
    ownership: str | None = None  # ObjectWriter | BucketOwnerPreferred | BucketOwnerEnforced
    # S3 Object Lock: enabled for good once on; the default retention of new versions
    # (lock_mode "" = none; exactly one of lock_days / lock_years when a mode is set)
    object_lock: bool = False
    lock_mode: str = ""
    lock_days: int = 0
    lock_years: int = 0


class PutObjectLockConfigRequest(Base, frozen=True):
    """``POST /v1/buckets/put-object-lock`` -> BucketConfig: enable Object Lock (on a
    bucket whose versioning is Enabled) and set or clear its default retention."""

    name: str
    mode: str = ""  # "" no default retention, GOVERNANCE or COMPLIANCE
    days: int = 0
    years: int = 0


class PutBucketPolicyRequest(Base, frozen=True):
    """``POST /v1/buckets/put-policy`` -> BucketConfig; ``policy`` None deletes it.

    The gateway parses and validates the policy language; the coordinator caps its size."""

    name: str
    policy: str | None = None


class PutPublicAccessBlockRequest(Base, frozen=True):
    """``POST /v1/buckets/put-public-access-block`` -> BucketConfig; None deletes it."""

    name: str
    config: PublicAccessBlock | None = None


class PutBucketOwnershipRequest(Base, frozen=True):
    """``POST /v1/buckets/put-ownership`` -> BucketConfig; ``ownership`` None deletes it."""

    name: str
    ownership: str | None = None


class PutBucketVersioningRequest(Base, frozen=True):
    """``POST /v1/buckets/put-versioning`` -> BucketConfig; ``status`` Enabled or Suspended."""

    name: str
    status: str


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


class PutBucketLifecycleRequest(Base, frozen=True):
    """``POST /v1/buckets/put-lifecycle`` -> BucketConfig; ``rules`` None deletes them."""

    name: str
    rules: list[LifecycleRule] | None = None


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
    # keyed digests of the version's tags (the gateway's, for lifecycle Tag filters)
    tag_digests: list[str] = []


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

    # versioning-enabled); a delete marker has no data; the bucket's versioning
    # state when answered ("" never configured, "Enabled", "Suspended")
    null_version: bool = False
    delete_marker: bool = False
    is_latest: bool = True
    versioning: str = ""
    policy: str | None = None  # the bucket policy JSON as the owner gave it
    public_access_block: PublicAccessBlock | None = None
    ownership: str | None = None  # ObjectWriter | BucketOwnerPreferred | BucketOwnerEnforced
    # S3 Object Lock of this version: retention mode ("" none) until retain_until
    # (unix seconds; it may be past), and a legal hold
    lock_mode: str = ""
    retain_until: float = 0.0
    legal_hold: bool = False


class ObjectLock(Base, frozen=True):
    """The Object Lock a write asks for (S3's x-amz-object-lock-* headers).

    ``mode`` and ``retain_until`` come together or not at all; with no mode the
    bucket's default retention applies. Any of it on a bucket without Object Lock is
    refused (``InvalidRequest``).
    """

    mode: str = ""  # GOVERNANCE | COMPLIANCE
    retain_until: float = 0.0
    legal_hold: bool = False


class BeginObjectRequest(Base, frozen=True):
    """``POST /v1/objects/begin``: start a simple upload; answers with the first segment's placement."""

    bucket: str
    key: str
    encrypted_key: bytes
    first_segment_size: int  # plaintext bytes of the first segment, known before it is sent


class BeginObjectResponse(Base, frozen=True):
    stream_id: str
    placement: Placement


class AbortObjectRequest(Base, frozen=True):
    """``POST /v1/objects/abort``: drop a simple upload that failed after ``objects/begin``."""

    bucket: str
    key: str
    stream_id: str


class BeginSegmentRequest(Base, frozen=True):
    """``POST /v1/segments/begin``: placement for one more segment, avoiding ``exclude_nodes``."""

    stream_id: str
    position: SegmentPosition
    plain_size: int
    exclude_nodes: list[str] = []


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
    lock: ObjectLock | None = None  # None: the bucket's default retention, if any
    # keyed digests of the version's tags (the gateway's, for lifecycle Tag filters)
    tag_digests: list[str] = []


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
    lock: ObjectLock | None = None
    # keyed digests of the version's tags (the gateway's, for lifecycle Tag filters)
    tag_digests: list[str] = []


class ObjectRequest(Base, frozen=True):
    """``POST /v1/objects/head`` and ``POST /v1/objects/delete``.

    ``version_id``: "" the latest version, "null" S3's null version, else a stream id.
    """

    bucket: str
    key: str
    version_id: str = ""

    # instead of NoSuchKey / MethodNotAllowed, so the gateway can say so in headers
    delete_markers: bool = False
    # delete: S3's x-amz-bypass-governance-retention (GOVERNANCE only, never COMPLIANCE)
    bypass_governance: bool = False


class DeleteObjectResponse(Base, frozen=True):
    deleted: bool
    version_id: str = ""  # stream id of the version removed, or of the delete marker written

    # the bucket's versioning state
    delete_marker: bool = False
    null_version: bool = False
    versioning: str = ""


class DeleteObjectsItem(Base, frozen=True):
    key: str
    version_id: str = ""


class DeleteObjectsRequest(Base, frozen=True):
    """``POST /v1/objects/delete-many``: up to 1000 deletes in one transaction."""

    bucket: str
    objects: list[DeleteObjectsItem]
    bypass_governance: bool = False  # as in ObjectRequest


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


class DownloadRequest(Base, frozen=True):
    """``POST /v1/objects/download``: object info and segments ``first_segment`` onwards, with get orders."""

    bucket: str
    key: str
    version_id: str = ""
    first_segment: int = 0
    segment_limit: int = 8
    plain_offset: int | None = None  # start at the segment holding this byte instead
    delete_markers: bool = False
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
    lock: ObjectLock | None = None  # as in CommitObjectRequest
    # keyed digests of the version's tags (the gateway's, for lifecycle Tag filters)
    tag_digests: list[str] = []


class ListUploadsRequest(Base, frozen=True):
    """``POST /v1/uploads/list``."""

    bucket: str
    prefix: str = ""
    key_marker: str = ""
    upload_id_marker: str = ""
    limit: int = 1000
    delimiter: str = ""  # keys with it after the prefix roll up into ``prefixes``


class UploadEntry(Base, frozen=True):
    key: str
    upload_id: str
    created_at: float


class ListUploadsResponse(Base, frozen=True):
    uploads: list[UploadEntry]
    truncated: bool
    prefixes: list[str] = []
    # when truncated: the last item listed (a key or a common prefix), and the
    # upload id when that item was an upload
    next_key_marker: str = ""
    next_upload_id_marker: str = ""


class PutObjectLockRequest(Base, frozen=True):
    """``POST /v1/objects/put-lock`` -> ObjectInfo: S3's PutObjectRetention (``retention``)
    and PutObjectLegalHold (``legal_hold``) on one version ("" the latest).

    ``retention`` with no mode removes it (allowed only where it is no longer in
    force, or GOVERNANCE with ``bypass_governance``); a retention in force can be
    lengthened or made COMPLIANCE by anyone, shortened or weakened only in
    GOVERNANCE with ``bypass_governance``, and in COMPLIANCE never.
    """

    bucket: str
    key: str
    version_id: str = ""
    retention: ObjectLock | None = None  # its mode and retain_until; legal_hold ignored
    legal_hold: bool | None = None
    bypass_governance: bool = False
