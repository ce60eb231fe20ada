"""S3 request routing: method, path, query and host to one :class:`Endpoint`.

S3 multiplexes dozens of operations onto a few URLs, told apart by method, by
which "subresource" query parameter is present (``?uploads``, ``?tagging``...) and,
for copies, by the ``x-amz-copy-source`` header. Parsing that once, as a pure
function, keeps handlers free of guesswork and lets a table of cases pin it down
(Garage does the same in ``src/api/s3/router.rs``).

Decisions:

* ``route`` takes the headers too (optional), so CopyObject and UploadPartCopy are
  their own endpoints; without headers they route as PutObject and UploadPart.
* Operations AWS has and we may not implement (ACLs, tagging, CORS, policies...)
  still get their proper names, so the caller answers ``NotImplemented`` for
  exactly those. Query parameters that are not subresources are ignored, as AWS
  does. A method that means nothing on the resource raises ``MethodNotAllowed``.
* Bucket names are not validated here: only CreateBucket must refuse a bad name;
  other operations on one simply find no such bucket.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote_to_bytes

from skymesh.gateway.s3.errors import S3Error, s3_error

MAX_KEY_BYTES = 1024
MAX_PART_NUMBER = 10000


class Op(StrEnum):
    """S3 operation names, as AWS's API reference spells them."""

    # service
    ListBuckets = "ListBuckets"
    # buckets
    CreateBucket = "CreateBucket"
    HeadBucket = "HeadBucket"
    DeleteBucket = "DeleteBucket"
    ListObjects = "ListObjects"
    ListObjectsV2 = "ListObjectsV2"
    ListObjectVersions = "ListObjectVersions"
    ListMultipartUploads = "ListMultipartUploads"
    DeleteObjects = "DeleteObjects"
    PostObject = "PostObject"
    GetBucketLocation = "GetBucketLocation"
    GetBucketVersioning = "GetBucketVersioning"
    PutBucketVersioning = "PutBucketVersioning"
    GetBucketAcl = "GetBucketAcl"
    PutBucketAcl = "PutBucketAcl"
    GetBucketTagging = "GetBucketTagging"
    PutBucketTagging = "PutBucketTagging"
    DeleteBucketTagging = "DeleteBucketTagging"
    GetBucketCors = "GetBucketCors"
    PutBucketCors = "PutBucketCors"
    DeleteBucketCors = "DeleteBucketCors"
    GetBucketPolicy = "GetBucketPolicy"
    PutBucketPolicy = "PutBucketPolicy"
    DeleteBucketPolicy = "DeleteBucketPolicy"
    GetBucketPolicyStatus = "GetBucketPolicyStatus"
    GetBucketLifecycleConfiguration = "GetBucketLifecycleConfiguration"
    PutBucketLifecycleConfiguration = "PutBucketLifecycleConfiguration"
    DeleteBucketLifecycle = "DeleteBucketLifecycle"
    GetBucketWebsite = "GetBucketWebsite"
    PutBucketWebsite = "PutBucketWebsite"
    DeleteBucketWebsite = "DeleteBucketWebsite"
    GetBucketLogging = "GetBucketLogging"
    PutBucketLogging = "PutBucketLogging"
    GetBucketNotificationConfiguration = "GetBucketNotificationConfiguration"
    PutBucketNotificationConfiguration = "PutBucketNotificationConfiguration"
    GetBucketReplication = "GetBucketReplication"
    PutBucketReplication = "PutBucketReplication"
    DeleteBucketReplication = "DeleteBucketReplication"
    GetBucketEncryption = "GetBucketEncryption"
    PutBucketEncryption = "PutBucketEncryption"
    DeleteBucketEncryption = "DeleteBucketEncryption"
    GetObjectLockConfiguration = "GetObjectLockConfiguration"
    PutObjectLockConfiguration = "PutObjectLockConfiguration"
    GetBucketRequestPayment = "GetBucketRequestPayment"
    PutBucketRequestPayment = "PutBucketRequestPayment"
    GetBucketAccelerateConfiguration = "GetBucketAccelerateConfiguration"
    PutBucketAccelerateConfiguration = "PutBucketAccelerateConfiguration"
    GetBucketOwnershipControls = "GetBucketOwnershipControls"
    PutBucketOwnershipControls = "PutBucketOwnershipControls"
    DeleteBucketOwnershipControls = "DeleteBucketOwnershipControls"
    GetPublicAccessBlock = "GetPublicAccessBlock"
    PutPublicAccessBlock = "PutPublicAccessBlock"
    DeletePublicAccessBlock = "DeletePublicAccessBlock"
    GetBucketAnalyticsConfiguration = "GetBucketAnalyticsConfiguration"
    ListBucketAnalyticsConfigurations = "ListBucketAnalyticsConfigurations"
    PutBucketAnalyticsConfiguration = "PutBucketAnalyticsConfiguration"
    DeleteBucketAnalyticsConfiguration = "DeleteBucketAnalyticsConfiguration"
    GetBucketInventoryConfiguration = "GetBucketInventoryConfiguration"
    ListBucketInventoryConfigurations = "ListBucketInventoryConfigurations"
    PutBucketInventoryConfiguration = "PutBucketInventoryConfiguration"
    DeleteBucketInventoryConfiguration = "DeleteBucketInventoryConfiguration"
    GetBucketMetricsConfiguration = "GetBucketMetricsConfiguration"
    ListBucketMetricsConfigurations = "ListBucketMetricsConfigurations"
    PutBucketMetricsConfiguration = "PutBucketMetricsConfiguration"
    DeleteBucketMetricsConfiguration = "DeleteBucketMetricsConfiguration"
    GetBucketIntelligentTieringConfiguration = "GetBucketIntelligentTieringConfiguration"
    ListBucketIntelligentTieringConfigurations = "ListBucketIntelligentTieringConfigurations"
    PutBucketIntelligentTieringConfiguration = "PutBucketIntelligentTieringConfiguration"
    DeleteBucketIntelligentTieringConfiguration = "DeleteBucketIntelligentTieringConfiguration"
    # objects
    PutObject = "PutObject"
    CopyObject = "CopyObject"
    GetObject = "GetObject"
    HeadObject = "HeadObject"
    DeleteObject = "DeleteObject"
    CreateMultipartUpload = "CreateMultipartUpload"
    UploadPart = "UploadPart"
    UploadPartCopy = "UploadPartCopy"
    CompleteMultipartUpload = "CompleteMultipartUpload"
    AbortMultipartUpload = "AbortMultipartUpload"
    ListParts = "ListParts"
    GetObjectAcl = "GetObjectAcl"
    PutObjectAcl = "PutObjectAcl"
    GetObjectTagging = "GetObjectTagging"
    PutObjectTagging = "PutObjectTagging"
    DeleteObjectTagging = "DeleteObjectTagging"
    GetObjectRetention = "GetObjectRetention"
    PutObjectRetention = "PutObjectRetention"
    GetObjectLegalHold = "GetObjectLegalHold"
    PutObjectLegalHold = "PutObjectLegalHold"
    GetObjectTorrent = "GetObjectTorrent"
    GetObjectAttributes = "GetObjectAttributes"
    RestoreObject = "RestoreObject"
    SelectObjectContent = "SelectObjectContent"
    # any resource
    Options = "Options"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One parsed S3 request: the operation, its bucket and key, and its parameters.

    ``key`` is the decoded object key, exactly as stored (a trailing slash, ``//``,
    spaces and unicode kept). ``part_number`` is parsed for UploadPart,
    UploadPartCopy and for GetObject/HeadObject (``?partNumber`` reads one part).
    ``virtual_host`` tells whether the bucket came from the Host header, which
    matters for building ``Location`` URLs.
    """

    name: Op
    bucket: str | None = None
    key: str | None = None
    upload_id: str | None = None
    part_number: int | None = None
    version_id: str | None = None
    virtual_host: bool = False


QueryLike = Mapping[str, str] | Mapping[str, list[str]] | Mapping[str, Sequence[str]]
"""aiohttp's ``request.query`` (a multidict), a plain dict, or ``parse_qs`` output."""


# Subresources per target and method: (query parameter, operation). The first present
# wins, so more specific ones come first.
_BUCKET_GET: tuple[tuple[str, Op], ...] = (
    ("location", Op.GetBucketLocation),
    ("versioning", Op.GetBucketVersioning),
    ("versions", Op.ListObjectVersions),
    ("uploads", Op.ListMultipartUploads),
    ("acl", Op.GetBucketAcl),
    ("tagging", Op.GetBucketTagging),
    ("cors", Op.GetBucketCors),
    ("policyStatus", Op.GetBucketPolicyStatus),
    ("policy", Op.GetBucketPolicy),
    ("lifecycle", Op.GetBucketLifecycleConfiguration),
    ("website", Op.GetBucketWebsite),
    ("logging", Op.GetBucketLogging),
    ("notification", Op.GetBucketNotificationConfiguration),
    ("replication", Op.GetBucketReplication),
    ("encryption", Op.GetBucketEncryption),
    ("object-lock", Op.GetObjectLockConfiguration),
    ("requestPayment", Op.GetBucketRequestPayment),
    ("accelerate", Op.GetBucketAccelerateConfiguration),
    ("ownershipControls", Op.GetBucketOwnershipControls),
    ("publicAccessBlock", Op.GetPublicAccessBlock),
)
_BUCKET_PUT: tuple[tuple[str, Op], ...] = (
    ("versioning", Op.PutBucketVersioning),
    ("acl", Op.PutBucketAcl),
    ("tagging", Op.PutBucketTagging),
    ("cors", Op.PutBucketCors),
    ("policy", Op.PutBucketPolicy),
    ("lifecycle", Op.PutBucketLifecycleConfiguration),
    ("website", Op.PutBucketWebsite),
    ("logging", Op.PutBucketLogging),
    ("notification", Op.PutBucketNotificationConfiguration),
    ("replication", Op.PutBucketReplication),
    ("encryption", Op.PutBucketEncryption),
    ("object-lock", Op.PutObjectLockConfiguration),
    ("requestPayment", Op.PutBucketRequestPayment),
    ("accelerate", Op.PutBucketAccelerateConfiguration),
    ("ownershipControls", Op.PutBucketOwnershipControls),
    ("publicAccessBlock", Op.PutPublicAccessBlock),
    ("analytics", Op.PutBucketAnalyticsConfiguration),
    ("inventory", Op.PutBucketInventoryConfiguration),
    ("metrics", Op.PutBucketMetricsConfiguration),
    ("intelligent-tiering", Op.PutBucketIntelligentTieringConfiguration),
)
_BUCKET_DELETE: tuple[tuple[str, Op], ...] = (
    ("tagging", Op.DeleteBucketTagging),
    ("cors", Op.DeleteBucketCors),
    ("policy", Op.DeleteBucketPolicy),
    ("lifecycle", Op.DeleteBucketLifecycle),
    ("website", Op.DeleteBucketWebsite),
    ("replication", Op.DeleteBucketReplication),
    ("encryption", Op.DeleteBucketEncryption),
    ("ownershipControls", Op.DeleteBucketOwnershipControls),
    ("publicAccessBlock", Op.DeletePublicAccessBlock),
    ("analytics", Op.DeleteBucketAnalyticsConfiguration),
    ("inventory", Op.DeleteBucketInventoryConfiguration),
    ("metrics", Op.DeleteBucketMetricsConfiguration),
    ("intelligent-tiering", Op.DeleteBucketIntelligentTieringConfiguration),
)
# GET ?analytics etc.: with ?id= one configuration, without, the list.
_BUCKET_GET_BY_ID: tuple[tuple[str, Op, Op], ...] = (
    ("analytics", Op.GetBucketAnalyticsConfiguration, Op.ListBucketAnalyticsConfigurations),
    ("inventory", Op.GetBucketInventoryConfiguration, Op.ListBucketInventoryConfigurations),
    ("metrics", Op.GetBucketMetricsConfiguration, Op.ListBucketMetricsConfigurations),
    (
        "intelligent-tiering",
        Op.GetBucketIntelligentTieringConfiguration,
        Op.ListBucketIntelligentTieringConfigurations,
    ),
)
_OBJECT_GET: tuple[tuple[str, Op], ...] = (
    ("uploadId", Op.ListParts),
    ("acl", Op.GetObjectAcl),
    ("tagging", Op.GetObjectTagging),
    ("retention", Op.GetObjectRetention),
    ("legal-hold", Op.GetObjectLegalHold),
    ("torrent", Op.GetObjectTorrent),
    ("attributes", Op.GetObjectAttributes),
)
_OBJECT_PUT: tuple[tuple[str, Op], ...] = (
    ("acl", Op.PutObjectAcl),
    ("tagging", Op.PutObjectTagging),
    ("retention", Op.PutObjectRetention),
    ("legal-hold", Op.PutObjectLegalHold),
)
_OBJECT_POST: tuple[tuple[str, Op], ...] = (
    ("uploads", Op.CreateMultipartUpload),
    ("uploadId", Op.CompleteMultipartUpload),
    ("restore", Op.RestoreObject),
    ("select", Op.SelectObjectContent),
)
_OBJECT_DELETE: tuple[tuple[str, Op], ...] = (
    ("uploadId", Op.AbortMultipartUpload),
    ("tagging", Op.DeleteObjectTagging),
)


def route(
    method: str,
    path: str,
    query: QueryLike,
    host: str,
    base_hosts: Sequence[str],
    headers: Mapping[str, str] | None = None,
) -> Endpoint:
    """Parse one request into its :class:`Endpoint`.

    ``path`` is the raw, percent-encoded path (a query string after ``?`` is
    ignored: pass it as ``query``). ``host`` is the Host header; a host ending in
    ``.<base host>`` names a bucket (virtual-hosted style), anything else means
    path style. ``headers`` (case-insensitive, like aiohttp's) tell copies apart.
    Raises S3Error: InvalidURI, InvalidArgument (bad partNumber), MethodNotAllowed.
    """
    method = method.upper()
    params = _normalize_query(query)
    decoded = _decode_path(path.split("?", 1)[0])
    stripped = decoded[1:] if decoded.startswith("/") else decoded
    bucket = virtual_host_bucket(host, base_hosts)
    virtual = bucket is not None
    key: str | None
    if virtual:
        key = stripped
    else:
        bucket_part, slash, rest = stripped.partition("/")
        bucket = bucket_part or None
        key = rest if slash else None
    if not key:
        key = None

    if method == "OPTIONS":
        return Endpoint(Op.Options, bucket, key, virtual_host=virtual)
    if bucket is None:
        if method == "GET":
            return Endpoint(Op.ListBuckets)
        raise _not_allowed(method, "SERVICE")
    if key is None:
        return _bucket_endpoint(method, bucket, params, virtual)
    return _object_endpoint(method, bucket, key, params, headers, virtual)


def _bucket_endpoint(
    method: str, bucket: str, params: dict[str, list[str]], virtual: bool
) -> Endpoint:
    name: Op | None
    if method == "GET":
        name = _first(params, _BUCKET_GET)
        if name is None:
            for param, one, listing in _BUCKET_GET_BY_ID:
                if param in params:
                    name = one if _get(params, "id") is not None else listing
                    break
        if name is None:
            name = Op.ListObjectsV2 if _get(params, "list-type") == "2" else Op.ListObjects
    elif method == "HEAD":
        name = Op.HeadBucket
    elif method == "PUT":
        name = _first(params, _BUCKET_PUT) or Op.CreateBucket
    elif method == "DELETE":
        name = _first(params, _BUCKET_DELETE) or Op.DeleteBucket
    elif method == "POST":
        name = Op.DeleteObjects if "delete" in params else Op.PostObject
    else:
        raise _not_allowed(method, "BUCKET")
    return Endpoint(name, bucket, virtual_host=virtual)


def _object_endpoint(
    method: str,
    bucket: str,
    key: str,
    params: dict[str, list[str]],
    headers: Mapping[str, str] | None,
    virtual: bool,
) -> Endpoint:
    upload_id = _get(params, "uploadId")
    version_id = _get(params, "versionId")
    part_number: int | None = None
    name: Op | None
    if method in ("GET", "HEAD"):
        name = _first(params, _OBJECT_GET) if method == "GET" else None
        if name is None:
            name = Op.GetObject if method == "GET" else Op.HeadObject
            part_number = _part_number(params, required=False)
    elif method == "PUT":
        name = _first(params, _OBJECT_PUT)
        if name is None:
            copy = _header(headers, "x-amz-copy-source") is not None
            if upload_id is not None or "partNumber" in params:
                if upload_id is None:
                    raise s3_error(
                        "InvalidArgument",
                        "partNumber needs uploadId",
                        ArgumentName="uploadId",
                        ArgumentValue="",
                    )
                part_number = _part_number(params, required=True)
                name = Op.UploadPartCopy if copy else Op.UploadPart
            else:
                name = Op.CopyObject if copy else Op.PutObject
    elif method == "POST":
        name = _first(params, _OBJECT_POST)
        if name is None:
            raise _not_allowed(method, "OBJECT")
    elif method == "DELETE":
        name = _first(params, _OBJECT_DELETE) or Op.DeleteObject
    else:
        raise _not_allowed(method, "OBJECT")
    return Endpoint(
        name,
        bucket,
        key,
        upload_id=upload_id,
        part_number=part_number,
        version_id=version_id,
        virtual_host=virtual,
    )


def virtual_host_bucket(host: str, base_hosts: Iterable[str]) -> str | None:
    """The bucket named by a virtual-hosted-style Host header, or None.

    Ports are ignored on both sides. IP addresses and a bare ``localhost`` never name
    a bucket (clients use them for path style); ``<bucket>.localhost`` does when
    ``localhost`` is a base host.
    """
    name = _strip_port(host).lower().rstrip(".")
    if not name or name == "localhost" or _is_ip(name):
        return None
    best: str | None = None
    for base in base_hosts:
        b = _strip_port(base).lower().rstrip(".")
        if b and name.endswith("." + b):
            candidate = name[: -len(b) - 1]
            # The longest base wins: with s3.example.com and example.com both
            # configured, b.s3.example.com is bucket "b", not "b.s3".
            if best is None or len(candidate) < len(best):
                best = candidate
    return best or None


def validate_bucket_name(name: str) -> None:
    """Raise InvalidBucketName unless ``name`` follows AWS's general-purpose rules."""
    if not _bucket_name_ok(name):
        raise s3_error("InvalidBucketName", BucketName=name[:255])


_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def _bucket_name_ok(name: str) -> bool:
    if not _BUCKET_CHARS.fullmatch(name):
        return False
    if ".." in name or name.startswith(_BAD_PREFIXES) or name.endswith(_BAD_SUFFIXES):
        return False
    return not _is_ip(name)


def validate_key(key: str) -> None:
    """Raise unless ``key`` can name an object: non-empty, at most 1024 UTF-8 bytes."""
    if not key:
        raise s3_error("InvalidArgument", "The object key must not be empty.", ArgumentName="key")
    # A str of at most 256 characters cannot exceed 1024 UTF-8 bytes: skip encoding.
    if len(key) > MAX_KEY_BYTES // 4:
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > MAX_KEY_BYTES:
            raise s3_error("KeyTooLongError", MaxSizeAllowed=MAX_KEY_BYTES, Size=size)


# -- helpers ---------------------------------------------------------------------------


def _normalize_query(query: QueryLike) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in query.items():
        values = params.setdefault(name, [])
        if isinstance(value, str):
            values.append(value)
        else:
            values.extend(value)
    return params


def _get(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _first(params: dict[str, list[str]], table: tuple[tuple[str, Op], ...]) -> Op | None:
    for param, op in table:
        if param in params:
            return op
    return None


def _part_number(params: dict[str, list[str]], *, required: bool) -> int | None:
    raw = _get(params, "partNumber")
    if raw is None:
        if required:
            raise _bad_part_number("")
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise _bad_part_number(raw)
    number = int(raw)
    if not 1 <= number <= MAX_PART_NUMBER:
        raise _bad_part_number(raw)
    return number


def _bad_part_number(raw: str) -> S3Error:
    return s3_error(
        "InvalidArgument",
        f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
        ArgumentName="partNumber",
        ArgumentValue=raw[:64],
    )


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def _decode_path(raw: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise s3_error("InvalidURI", "The path is not valid percent-encoded UTF-8.") from None


def _strip_port(host: str) -> str:
    host = host.strip()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


@functools.lru_cache(maxsize=256)  # a gateway sees few Host names; parsing one costs
def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _not_allowed(method: str, resource_type: str) -> S3Error:
    return S3Error(
        "MethodNotAllowed",
        fields={"Method": method[:32], "ResourceType": resource_type},
    )
