"""S3 XML: rendering responses and parsing the few XML request bodies.

Responses are built as strings, not element trees: a 1000-key listing is the hot
path of every ``aws s3 sync`` and costs a few milliseconds this way against tens
through ElementTree. Every text value goes through :func:`escape`, the only door
into the output.

Request bodies come from clients we do not trust, so :func:`_parse` is a small
expat front end that refuses any DTD (no entity expansion, no external entities),
caps the body size, and hands back an ElementTree element with namespaces stripped
(clients send the S3 namespace, or none).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from typing import NoReturn
from urllib.parse import quote
from xml.parsers import expat

from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.wire.metainfo import CorsRule

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_COMPLETE_BODY = 1024 * 1024
MAX_DELETE_BODY = 2 * 1024 * 1024
MAX_CREATE_BUCKET_BODY = 64 * 1024
MAX_DELETE_KEYS = 1000
MAX_PARTS = 10000

_NEEDS_ESCAPE = re.compile(r"[&<>\"'\x00-\x08\x0b\x0c\x0d\x0e-\x1f]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0d\x0e-\x1f]")


# -- values -----------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape XML text the way S3 does.

    Control characters become character references (``&#x1;``), as AWS renders keys
    that contain them; XML 1.0 parsers reject those, which is why clients list with
    ``encoding-type=url``. CR is escaped so that parsers do not fold it into LF.
    """
    if not _NEEDS_ESCAPE.search(text):
        return text
    text = (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )
    if _CONTROL.search(text):
        text = _CONTROL.sub(_char_ref, text)
    return text


def _char_ref(match: re.Match[str]) -> str:
    return f"&#x{ord(match.group()):X};"


def url_encode(text: str) -> str:
    """S3's ``encoding-type=url`` form: a space is ``%20`` and a plus ``%2B``, so that
    both ``unquote`` and botocore's ``unquote_plus`` give the key back."""
    return quote(text, safe="/")


def iso8601(ts: float) -> str:
    """``2009-10-12T17:50:30.123Z``: S3's timestamp in XML bodies (milliseconds, UTC).

    Built from cached pieces rather than strftime, which is several times slower:
    listings format a thousand of these per page.
    """
    secs = int(ts // 1)
    return (
        f"{_day(secs // 86400)}{_TWO[secs % 86400 // 3600]}:{_TWO[secs % 3600 // 60]}:"
        f"{_TWO[secs % 60]}{_MILLIS[int((ts - secs) * 1000)]}"
    )


_TWO = [f"{i:02d}" for i in range(60)]
_MILLIS = [f".{i:03d}Z" for i in range(1000)]
_EPOCH = date(1970, 1, 1)


@lru_cache(maxsize=4096)
def _day(days: int) -> str:
    return (_EPOCH + timedelta(days=days)).strftime("%Y-%m-%dT")


def http_date(ts: float) -> str:
    """RFC 7231 date (``Wed, 21 Oct 2015 07:28:00 GMT``) for Last-Modified and friends."""
    return formatdate(ts, usegmt=True)


def parse_http_date(value: str) -> float | None:
    """Parse an RFC 7231 date (If-Modified-Since...); None when it is not one, which
    conditional requests must treat as if the header were absent."""
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def quote_etag(etag: str) -> str:
    """ETags travel quoted in headers and XML; accept them stored with or without."""
    return etag if etag.startswith('"') else f'"{etag}"'


def _el(name: str, text: str) -> str:
    return f"<{name}>{escape(text)}</{name}>"


def _doc(root: str, body: Sequence[str]) -> bytes:
    return (XML_DECL + f'<{root} xmlns="{S3_NS}">' + "".join(body) + f"</{root}>").encode()


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _owner(tag: str, owner: tuple[str, str]) -> str:
    return f"<{tag}>{_el('ID', owner[0])}{_el('DisplayName', owner[1])}</{tag}>"


# -- entries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    """One object in a listing. ``owner`` is (id, display name), shown when set (v1
    always shows owners in AWS; v2 only with ``fetch-owner=true``)."""

    key: str
    last_modified: float
    etag: str
    size: int
    storage_class: str = "STANDARD"
    owner: tuple[str, str] | None = None


ObjectTuple = tuple[str, float, str, int]
"""(key, last modified, ETag, size): an :class:`ObjectEntry` with the defaults."""


@dataclass(frozen=True, slots=True)
class PartEntry:
    part_number: int
    last_modified: float
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadEntry:
    key: str
    upload_id: str
    initiated: float
    storage_class: str = "STANDARD"
    owner: tuple[str, str] | None = None


# -- responses --------------------------------------------------------------------------


def error_xml(err: S3Error, resource: str | None, request_id: str) -> bytes:
    """The ``<Error>`` document. It carries no namespace, like AWS's."""
    parts = [XML_DECL, "<Error>", _el("Code", err.code), _el("Message", err.message)]
    parts.extend(_el(name, value) for name, value in err.fields.items())
    res = err.resource if err.resource is not None else resource
    if res is not None:
        parts.append(_el("Resource", res))
    parts.append(_el("RequestId", request_id))
    parts.append("</Error>")
    return "".join(parts).encode()


def list_buckets_xml(owner_id: str, owner_name: str, buckets: Sequence[tuple[str, float]]) -> bytes:
    body = [_owner("Owner", (owner_id, owner_name)), "<Buckets>"]
    for name, created in buckets:
        body.append(
            f"<Bucket>{_el('Name', name)}<CreationDate>{iso8601(created)}</CreationDate></Bucket>"
        )
    body.append("</Buckets>")
    return _doc("ListAllMyBucketsResult", body)


def _contents(
    entries: Sequence[ObjectEntry | ObjectTuple],
    encode: bool,
    default_owner: tuple[str, str] | None,
) -> list[str]:
    out = []
    # Owners and storage classes repeat across a page: render each once.
    owners: dict[tuple[str, str], str] = {}
    classes: dict[str, str] = {}
    for e in entries:
        if isinstance(e, ObjectEntry):
            key, modified, etag, size = e.key, e.last_modified, e.etag, e.size
            storage_class, owner = e.storage_class, e.owner or default_owner
        else:
            key, modified, etag, size = e
            storage_class, owner = "STANDARD", default_owner
        owner_xml = ""
        if owner is not None:
            owner_xml = owners.get(owner) or owners.setdefault(owner, _owner("Owner", owner))
        storage = classes.get(storage_class) or classes.setdefault(
            storage_class, _el("StorageClass", storage_class)
        )
        out.append(
            f"<Contents><Key>{escape(url_encode(key) if encode else key)}</Key>"
            f"<LastModified>{iso8601(modified)}</LastModified>"
            f"<ETag>{_etag(etag)}</ETag><Size>{size}</Size>{owner_xml}{storage}</Contents>"
        )
    return out


def _etag(etag: str) -> str:
    """The quoted ETag, escaped (quotes become ``&quot;``, as in AWS's listings)."""
    return "&quot;" + escape(etag.strip('"')) + "&quot;"


def _common_prefixes(prefixes: Sequence[str], encode: bool) -> list[str]:
    return [
        f"<CommonPrefixes>{_el('Prefix', url_encode(p) if encode else p)}</CommonPrefixes>"
        for p in prefixes
    ]


def list_objects_v2_xml(
    *,
    bucket: str,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    is_truncated: bool,
    entries: Sequence[ObjectEntry | ObjectTuple],
    common_prefixes: Sequence[str] = (),
    continuation_token: str | None = None,
    next_continuation_token: str | None = None,
    start_after: str | None = None,
    encoding_type: str | None = None,
    owner: tuple[str, str] | None = None,
) -> bytes:
    """ListObjectsV2. With ``encoding_type="url"`` keys, prefixes, the delimiter and
    StartAfter are URL-encoded (continuation tokens are opaque and are not).

    ``entries`` are :class:`ObjectEntry` values or (key, last modified, ETag, size)
    tuples; ``owner`` is shown for entries without their own (pass it for
    ``fetch-owner=true``). KeyCount counts entries and common prefixes, as AWS does.
    """
    enc = encoding_type == "url"

    def e(value: str) -> str:
        return url_encode(value) if enc else value

    body = [_el("Name", bucket), _el("Prefix", e(prefix))]
    if start_after is not None:
        body.append(_el("StartAfter", e(start_after)))
    if continuation_token is not None:
        body.append(_el("ContinuationToken", continuation_token))
    if next_continuation_token is not None:
        body.append(_el("NextContinuationToken", next_continuation_token))
    body.append(f"<KeyCount>{len(entries) + len(common_prefixes)}</KeyCount>")
    body.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if delimiter:
        body.append(_el("Delimiter", e(delimiter)))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    body.append(f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>")
    body.extend(_contents(entries, enc, owner))
    body.extend(_common_prefixes(common_prefixes, enc))
    return _doc("ListBucketResult", body)


def list_objects_v1_xml(
    *,
    bucket: str,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    is_truncated: bool,
    entries: Sequence[ObjectEntry | ObjectTuple],
    common_prefixes: Sequence[str] = (),
    marker: str = "",
    next_marker: str | None = None,
    encoding_type: str | None = None,
    owner: tuple[str, str] | None = None,
) -> bytes:
    """ListObjects (v1). AWS sends NextMarker only when a delimiter is given and the
    listing is truncated; the caller decides by passing it or not. AWS always shows
    owners in v1, so pass ``owner``. ``entries`` as for :func:`list_objects_v2_xml`.

    With ``encoding_type="url"`` S3 encodes keys, common prefixes, Delimiter, Marker
    and NextMarker but not Prefix in v1 (botocore decodes exactly those, and ceph's
    s3-tests check a ``"\n"`` prefix comes back as sent)."""
    enc = encoding_type == "url"

    def e(value: str) -> str:
        return url_encode(value) if enc else value

    body = [_el("Name", bucket), _el("Prefix", prefix), _el("Marker", e(marker))]
    if next_marker is not None:
        body.append(_el("NextMarker", e(next_marker)))
    body.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if delimiter:
        body.append(_el("Delimiter", e(delimiter)))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    body.append(f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>")
    body.extend(_contents(entries, enc, owner))
    body.extend(_common_prefixes(common_prefixes, enc))
    return _doc("ListBucketResult", body)


def location_xml(region: str | None) -> bytes:
    """GetBucketLocation: us-east-1 is the empty constraint, as AWS answers it."""
    if not region or region == "us-east-1":
        return (XML_DECL + f'<LocationConstraint xmlns="{S3_NS}"/>').encode()
    return (
        XML_DECL + f'<LocationConstraint xmlns="{S3_NS}">{escape(region)}</LocationConstraint>'
    ).encode()


def versioning_xml(status: str | None = None) -> bytes:
    """GetBucketVersioning; None (never enabled) is an empty configuration."""
    return _doc("VersioningConfiguration", [_el("Status", status)] if status else [])


MAX_VERSIONING_BODY = 64 * 1024


def parse_versioning(body: bytes) -> str:
    """PutBucketVersioning's Status: ``Enabled`` or ``Suspended`` (else MalformedXML).

    ``MfaDelete: Enabled`` is NotImplemented: skymesh has no MFA devices.
    """
    root = _parse(body, MAX_VERSIONING_BODY, "VersioningConfiguration")
    mfa = (_child_text(root, "MfaDelete") or "").strip()
    if mfa == "Enabled":
        raise s3_error("NotImplemented", "MFA delete is not supported")
    status = (_child_text(root, "Status") or "").strip()
    if status not in ("Enabled", "Suspended"):
        _malformed("Status must be Enabled or Suspended")
    return status


@dataclass(frozen=True, slots=True)
class VersionItem:
    """One row of ListObjectVersions: a version, or a delete marker (no ETag or size)."""

    key: str
    version_id: str
    is_latest: bool
    last_modified: float
    delete_marker: bool = False
    etag: str = ""
    size: int = 0


def list_versions_xml(
    *,
    bucket: str,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    is_truncated: bool,
    items: Sequence[VersionItem],
    common_prefixes: Sequence[str] = (),
    key_marker: str = "",
    version_id_marker: str = "",
    next_key_marker: str | None = None,
    next_version_id_marker: str | None = None,
    encoding_type: str | None = None,
    owner: tuple[str, str] | None = None,
) -> bytes:
    """ListObjectVersions (``ListVersionsResult``): versions and delete markers in order."""
    enc = encoding_type == "url"

    def e(value: str) -> str:
        return url_encode(value) if enc else value

    body = [
        _el("Name", bucket),
        _el("Prefix", e(prefix)),
        _el("KeyMarker", e(key_marker)),
        _el("VersionIdMarker", version_id_marker),
    ]
    if next_key_marker is not None:
        body.append(_el("NextKeyMarker", e(next_key_marker)))
    if next_version_id_marker is not None:
        body.append(_el("NextVersionIdMarker", next_version_id_marker))
    body.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if delimiter:
        body.append(_el("Delimiter", e(delimiter)))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    body.append(f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>")
    owner_xml = _owner("Owner", owner) if owner is not None else ""
    for v in items:
        head = (
            f"<Key>{escape(e(v.key))}</Key>{_el('VersionId', v.version_id)}"
            f"<IsLatest>{_bool(v.is_latest)}</IsLatest>"
            f"<LastModified>{iso8601(v.last_modified)}</LastModified>"
        )
        if v.delete_marker:
            body.append(f"<DeleteMarker>{head}{owner_xml}</DeleteMarker>")
        else:
            body.append(
                f"<Version>{head}<ETag>{_etag(v.etag)}</ETag><Size>{v.size}</Size>"
                f"{owner_xml}<StorageClass>STANDARD</StorageClass></Version>"
            )
    body.extend(_common_prefixes(common_prefixes, enc))
    return _doc("ListVersionsResult", body)


def initiate_multipart_xml(bucket: str, key: str, upload_id: str) -> bytes:
    return _doc(
        "InitiateMultipartUploadResult",
        [_el("Bucket", bucket), _el("Key", key), _el("UploadId", upload_id)],
    )


def complete_multipart_xml(
    location: str, bucket: str, key: str, etag: str, checksum: tuple[str, str] | None = None
) -> bytes:
    """``checksum`` is (algorithm, S3's composite ``base64-N``), shown as ``Checksum<ALG>``."""
    body = [
        _el("Location", location),
        _el("Bucket", bucket),
        _el("Key", key),
        _el("ETag", quote_etag(etag)),
    ]
    if checksum is not None:
        body.append(_el(checksum_element(checksum[0]), checksum[1]))
        body.append(_el("ChecksumType", "COMPOSITE"))
    return _doc("CompleteMultipartUploadResult", body)


def post_response_xml(location: str, bucket: str, key: str, etag: str) -> bytes:
    """PostObject's answer to ``success_action_status=201``."""
    body = [
        _el("Location", location),
        _el("Bucket", bucket),
        _el("Key", key),
        _el("ETag", quote_etag(etag)),
    ]
    return _doc("PostResponse", body)


def checksum_element(algorithm: str) -> str:
    """``crc64nvme`` -> ``ChecksumCRC64NVME``: S3's element (and boto3's field) name."""
    return "Checksum" + algorithm.upper()


def list_parts_xml(
    *,
    bucket: str,
    key: str,
    upload_id: str,
    parts: Sequence[PartEntry | tuple[int, float, str, int]],
    checksums: Sequence[tuple[str, str] | None] = (),
    part_number_marker: int = 0,
    next_part_number_marker: int | None = None,
    max_parts: int = 1000,
    is_truncated: bool = False,
    owner: tuple[str, str] | None = None,
    storage_class: str = "STANDARD",
) -> bytes:
    body = [_el("Bucket", bucket), _el("Key", key), _el("UploadId", upload_id)]
    if owner is not None:
        body.append(_owner("Initiator", owner))
        body.append(_owner("Owner", owner))
    body.append(_el("StorageClass", storage_class))
    body.append(f"<PartNumberMarker>{part_number_marker}</PartNumberMarker>")
    if next_part_number_marker is not None:
        body.append(f"<NextPartNumberMarker>{next_part_number_marker}</NextPartNumberMarker>")
    body.append(f"<MaxParts>{max_parts}</MaxParts>")
    body.append(f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>")
    for i, p in enumerate(parts):
        number, modified, etag, size = (
            (p.part_number, p.last_modified, p.etag, p.size) if isinstance(p, PartEntry) else p
        )
        checksum = checksums[i] if i < len(checksums) else None
        checksum_xml = _el(checksum_element(checksum[0]), checksum[1]) if checksum else ""
        body.append(
            f"<Part><PartNumber>{number}</PartNumber>"
            f"<LastModified>{iso8601(modified)}</LastModified>"
            f"<ETag>{_etag(etag)}</ETag><Size>{size}</Size>{checksum_xml}</Part>"
        )
    return _doc("ListPartsResult", body)


def list_multipart_uploads_xml(
    *,
    bucket: str,
    uploads: Sequence[UploadEntry | tuple[str, str, float]],
    prefix: str = "",
    delimiter: str | None = None,
    key_marker: str = "",
    upload_id_marker: str = "",
    next_key_marker: str | None = None,
    next_upload_id_marker: str | None = None,
    max_uploads: int = 1000,
    is_truncated: bool = False,
    common_prefixes: Sequence[str] = (),
    encoding_type: str | None = None,
) -> bytes:
    enc = encoding_type == "url"

    def e(value: str) -> str:
        return url_encode(value) if enc else value

    body = [
        _el("Bucket", bucket),
        _el("KeyMarker", e(key_marker)),
        _el("UploadIdMarker", upload_id_marker),
    ]
    if next_key_marker is not None:
        body.append(_el("NextKeyMarker", e(next_key_marker)))
    if next_upload_id_marker is not None:
        body.append(_el("NextUploadIdMarker", next_upload_id_marker))
    body.append(_el("Prefix", e(prefix)))
    if delimiter:
        body.append(_el("Delimiter", e(delimiter)))
    if enc:
        body.append("<EncodingType>url</EncodingType>")
    body.append(f"<MaxUploads>{max_uploads}</MaxUploads>")
    body.append(f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>")
    for u in uploads:
        entry = u if isinstance(u, UploadEntry) else UploadEntry(*u)
        owner_xml = ""
        if entry.owner is not None:
            owner_xml = _owner("Initiator", entry.owner) + _owner("Owner", entry.owner)
        body.append(
            f"<Upload>{_el('Key', e(entry.key))}{_el('UploadId', entry.upload_id)}{owner_xml}"
            f"{_el('StorageClass', entry.storage_class)}"
            f"<Initiated>{iso8601(entry.initiated)}</Initiated></Upload>"
        )
    body.extend(_common_prefixes(common_prefixes, enc))
    return _doc("ListMultipartUploadsResult", body)


def copy_object_result_xml(etag: str, last_modified: float) -> bytes:
    return _doc(
        "CopyObjectResult",
        [
            f"<LastModified>{iso8601(last_modified)}</LastModified>",
            _el("ETag", quote_etag(etag)),
        ],
    )


def copy_part_result_xml(etag: str, last_modified: float) -> bytes:
    return _doc(
        "CopyPartResult",
        [
            f"<LastModified>{iso8601(last_modified)}</LastModified>",
            _el("ETag", quote_etag(etag)),
        ],
    )


def delete_result_xml(
    deleted: Sequence[str | tuple[str, str | None] | tuple[str, str | None, str | None]],
    errors: Sequence[tuple[str, str, str]],
    quiet: bool = False,
) -> bytes:
    """DeleteObjects' answer. ``deleted`` holds keys, (key, version id; "" or None
    for none) or (key, version id, delete marker's version id: the marker written,
    or the version removed when it was one); ``errors`` (key, code, message). Quiet
    mode reports errors only."""
    body = []
    if not quiet:
        for item in deleted:
            key, version, marker = (
                (item, None, None) if isinstance(item, str) else (*item, None)[:3]
            )
            version_el = _el("VersionId", version) if version else ""
            if marker:
                version_el += "<DeleteMarker>true</DeleteMarker>" + _el(
                    "DeleteMarkerVersionId", marker
                )
            body.append(f"<Deleted>{_el('Key', key)}{version_el}</Deleted>")
    for key, code, message in errors:
        body.append(f"<Error>{_el('Key', key)}{_el('Code', code)}{_el('Message', message)}</Error>")
    return _doc("DeleteResult", body)


# -- request bodies ---------------------------------------------------------------------


def parse_complete_multipart(body: bytes) -> list[tuple[int, str]]:
    """CompleteMultipartUpload's part list as (part number, ETag without quotes).

    Order and duplicates are left to the caller (InvalidPartOrder is the
    coordinator's call); only the shape is checked here.
    """
    return [(number, etag) for number, etag, _ in parse_complete_parts(body)]


_CHECKSUM_ELEMENTS = {
    "ChecksumCRC32": "crc32",
    "ChecksumCRC32C": "crc32c",
    "ChecksumCRC64NVME": "crc64nvme",
    "ChecksumSHA1": "sha1",
    "ChecksumSHA256": "sha256",
}


def parse_complete_parts(body: bytes) -> list[tuple[int, str, tuple[str, str] | None]]:
    """As :func:`parse_complete_multipart`, with each part's (algorithm, checksum) if given."""
    root = _parse(body, MAX_COMPLETE_BODY, "CompleteMultipartUpload")
    parts: list[tuple[int, str, tuple[str, str] | None]] = []
    for el in root:
        if el.tag != "Part":
            continue
        number_text = _child_text(el, "PartNumber")
        etag = _child_text(el, "ETag")
        if number_text is None or etag is None:
            _malformed("each Part needs a PartNumber and an ETag")
        number_text = number_text.strip()
        if not (number_text.isascii() and number_text.isdigit()) or len(number_text) > 5:
            _malformed(f"PartNumber {number_text[:20]!r} is not a number")
        number = int(number_text)
        if not 1 <= number <= MAX_PARTS:
            raise s3_error(
                "InvalidArgument",
                f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive",
                ArgumentName="PartNumber",
                ArgumentValue=number_text,
            )
        checksum = None
        for child in el:
            alg = _CHECKSUM_ELEMENTS.get(child.tag)
            if alg is not None and child.text and child.text.strip():
                checksum = (alg, child.text.strip())
        parts.append((number, etag.strip().strip('"'), checksum))
    if not parts:
        _malformed("CompleteMultipartUpload lists no parts")
    if len(parts) > MAX_PARTS:
        _malformed(f"more than {MAX_PARTS} parts")
    return parts


def parse_delete_objects(body: bytes) -> tuple[bool, list[tuple[str, str | None]]]:
    """DeleteObjects' body as (quiet, [(key, version id or None)]).

    Keys are taken verbatim, whitespace included: keys may begin or end with spaces.
    """
    root = _parse(body, MAX_DELETE_BODY, "Delete")
    quiet = False
    objects: list[tuple[str, str | None]] = []
    for el in root:
        if el.tag == "Quiet":
            value = (el.text or "").strip().lower()
            if value not in ("true", "false"):
                _malformed("Quiet must be true or false")
            quiet = value == "true"
        elif el.tag == "Object":
            key = _child_text(el, "Key")
            if key is None:
                _malformed("each Object needs a Key")
            version = _child_text(el, "VersionId")
            objects.append((key, version or None))
            if len(objects) > MAX_DELETE_KEYS:
                _malformed(f"at most {MAX_DELETE_KEYS} keys per DeleteObjects request")
    if not objects:
        _malformed("Delete lists no objects")
    return quiet, objects


def parse_create_bucket(body: bytes) -> str | None:
    """CreateBucketConfiguration's LocationConstraint; None for an empty body or none."""
    if not body.strip():
        return None
    root = _parse(body, MAX_CREATE_BUCKET_BODY, "CreateBucketConfiguration")
    text = _child_text(root, "LocationConstraint")
    if text is None:
        return None
    return text.strip() or None


def _child_text(el: ET.Element, tag: str) -> str | None:
    for child in el:
        if child.tag == tag:
            return child.text or ""
    return None


def _malformed(why: str) -> NoReturn:
    raise s3_error("MalformedXML", f"The XML you provided was not well-formed: {why}.")


class _Rejected(Exception):
    pass


def _reject(*_args: object) -> None:
    raise _Rejected


def _parse(body: bytes, limit: int, root_tag: str) -> ET.Element:
    """Parse an untrusted XML body: no DTDs, bounded size, namespaces stripped."""
    if len(body) > limit:
        raise s3_error("MaxMessageLengthExceeded", f"The XML body exceeds {limit} bytes.")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator=" ")

    def start(name: str, attrs: dict[str, str]) -> None:
        builder.start(name.rpartition(" ")[2], {})

    def end(name: str) -> None:
        builder.end(name.rpartition(" ")[2])

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    # Any DTD is refused: it is where entity expansion ("billion laughs") and
    # external entities come from, and S3 bodies never need one.
    parser.StartDoctypeDeclHandler = _reject
    parser.EntityDeclHandler = _reject
    parser.ExternalEntityRefHandler = _reject  # type: ignore[assignment]
    try:
        parser.Parse(body, True)
        root = builder.close()
    except _Rejected:
        _malformed("DTDs and entity declarations are not allowed")
    # LookupError: an XML declaration naming an encoding Python does not know
    except (expat.ExpatError, ValueError, LookupError, AssertionError, SyntaxError) as e:
        _malformed(str(e)[:100])
    if root.tag != root_tag:
        _malformed(f"expected a {root_tag} element, got {root.tag[:60]}")
    return root


# -- ACL, tagging, CORS -----------------------------------------------------------------

MAX_TAGGING_BODY = 64 * 1024
MAX_ACL_BODY = 64 * 1024
MAX_CORS_BODY = 64 * 1024  # S3's limit on a CORS configuration
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
_XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def tagging_xml(tags: Sequence[tuple[str, str]]) -> bytes:
    body = ["<TagSet>"]
    body.extend(f"<Tag>{_el('Key', k)}{_el('Value', v)}</Tag>" for k, v in tags)
    body.append("</TagSet>")
    return _doc("Tagging", body)


def parse_tagging(body: bytes) -> list[tuple[str, str]]:
    """A ``Tagging`` body as (key, value) pairs, in order; limits are the caller's."""
    root = _parse(body, MAX_TAGGING_BODY, "Tagging")
    tag_sets = [el for el in root if el.tag == "TagSet"]
    if len(tag_sets) != 1:
        _malformed("Tagging needs exactly one TagSet")
    tags: list[tuple[str, str]] = []
    for el in tag_sets[0]:
        if el.tag != "Tag":
            continue
        key = _child_text(el, "Key")
        value = _child_text(el, "Value")
        if key is None or value is None:
            _malformed("each Tag needs a Key and a Value")
        tags.append((key, value))
    return tags


def acl_xml(owner: tuple[str, str], public_read: bool) -> bytes:
    """An AccessControlPolicy for a canned ACL: the owner FULL_CONTROL, AllUsers READ if public."""
    grants = [
        f'<Grant><Grantee {_XSI} xsi:type="CanonicalUser">{_el("ID", owner[0])}'
        f"{_el('DisplayName', owner[1])}</Grantee><Permission>FULL_CONTROL</Permission></Grant>"
    ]
    if public_read:
        grants.append(
            f'<Grant><Grantee {_XSI} xsi:type="Group">{_el("URI", ALL_USERS)}</Grantee>'
            "<Permission>READ</Permission></Grant>"
        )
    body = [_owner("Owner", owner), "<AccessControlList>", *grants, "</AccessControlList>"]
    return _doc("AccessControlPolicy", body)


@dataclass(frozen=True, slots=True)
class Grant:
    """One grant of an AccessControlPolicy: grantee kind ("id", "uri", "email"), who, what."""

    kind: str
    grantee: str
    permission: str


def parse_acl(body: bytes) -> list[Grant]:
    """An ``AccessControlPolicy`` body's grants. The grantee's kind comes from the child
    element present (``ID``, ``URI``, ``EmailAddress``), since ``xsi:type`` says the same.

    A body that is not a well-formed policy is ``MalformedACLError``, S3's code for
    ACL bodies, where other operations answer ``MalformedXML``.
    """
    try:
        return _parse_acl(body)
    except S3Error as e:
        if e.code != "MalformedXML":
            raise
        raise s3_error("MalformedACLError", e.message) from None


def _parse_acl(body: bytes) -> list[Grant]:
    root = _parse(body, MAX_ACL_BODY, "AccessControlPolicy")
    acl = [el for el in root if el.tag == "AccessControlList"]
    if len(acl) != 1:
        _malformed("AccessControlPolicy needs one AccessControlList")
    grants: list[Grant] = []
    for el in acl[0]:
        if el.tag != "Grant":
            continue
        permission = _child_text(el, "Permission")
        grantee = next((c for c in el if c.tag == "Grantee"), None)
        if permission is None or grantee is None:
            _malformed("each Grant needs a Grantee and a Permission")
        for tag, kind in (("ID", "id"), ("URI", "uri"), ("EmailAddress", "email")):
            who = _child_text(grantee, tag)
            if who is not None:
                grants.append(Grant(kind, who.strip(), permission.strip()))
                break
        else:
            _malformed("a Grantee needs an ID, a URI or an EmailAddress")
    return grants


def cors_xml(rules: Sequence[CorsRule]) -> bytes:
    body = []
    for r in rules:
        parts = ["<CORSRule>"]
        if r.id:
            parts.append(_el("ID", r.id))
        parts.extend(_el("AllowedOrigin", o) for o in r.allowed_origins)
        parts.extend(_el("AllowedMethod", m) for m in r.allowed_methods)
        parts.extend(_el("AllowedHeader", h) for h in r.allowed_headers)
        parts.extend(_el("ExposeHeader", h) for h in r.expose_headers)
        if r.max_age_seconds is not None:
            parts.append(f"<MaxAgeSeconds>{r.max_age_seconds}</MaxAgeSeconds>")
        parts.append("</CORSRule>")
        body.append("".join(parts))
    return _doc("CORSConfiguration", body)


def parse_cors(body: bytes) -> list[CorsRule]:
    """A ``CORSConfiguration`` body; S3's rules on its values are ``cors.validate_rules``."""
    root = _parse(body, MAX_CORS_BODY, "CORSConfiguration")
    rules: list[CorsRule] = []
    for el in root:
        if el.tag != "CORSRule":
            continue
        values: dict[str, list[str]] = {}
        for child in el:
            values.setdefault(child.tag, []).append((child.text or "").strip())
        max_age: int | None = None
        if "MaxAgeSeconds" in values:
            raw = values["MaxAgeSeconds"][0]
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
                _malformed(f"MaxAgeSeconds {raw[:20]!r} is not a number")
            max_age = int(raw)
        rules.append(
            CorsRule(
                id=(values.get("ID") or [""])[0],
                allowed_origins=values.get("AllowedOrigin", []),
                allowed_methods=values.get("AllowedMethod", []),
                allowed_headers=values.get("AllowedHeader", []),
                expose_headers=values.get("ExposeHeader", []),
                max_age_seconds=max_age,
            )
        )
    if not rules:
        _malformed("CORSConfiguration has no CORSRule")
    return rules


# -- GetObjectAttributes ------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeParts:
    """One page of a multipart object's parts, for GetObjectAttributes' ``ObjectParts``."""

    total: int
    part_number_marker: int
    next_part_number_marker: int
    max_parts: int
    is_truncated: bool
    #: (part number, size, (algorithm, base64) or None), in order
    parts: Sequence[tuple[int, int, tuple[str, str] | None]]


def object_attributes_xml(
    *,
    etag: str | None = None,
    checksums: Sequence[tuple[str, str]] | None = None,
    parts: AttributeParts | None = None,
    storage_class: str | None = None,
    size: int | None = None,
) -> bytes:
    """GetObjectAttributesResponse with what was asked (None leaves an element out).

    ``etag`` goes unquoted, as S3 answers here; ``checksums`` are (algorithm, value),
    a composite ``base64-N`` value marking the object's checksum COMPOSITE.
    """
    body: list[str] = []
    if etag is not None:
        body.append(_el("ETag", etag.strip('"')))
    if checksums:
        inner = [_el(checksum_element(alg), value) for alg, value in checksums]
        kind = "COMPOSITE" if any("-" in value for _, value in checksums) else "FULL_OBJECT"
        inner.append(_el("ChecksumType", kind))
        body.append("<Checksum>" + "".join(inner) + "</Checksum>")
    if parts is not None:
        inner = [
            f"<PartsCount>{parts.total}</PartsCount>",
            f"<PartNumberMarker>{parts.part_number_marker}</PartNumberMarker>",
            f"<NextPartNumberMarker>{parts.next_part_number_marker}</NextPartNumberMarker>",
            f"<MaxParts>{parts.max_parts}</MaxParts>",
            f"<IsTruncated>{_bool(parts.is_truncated)}</IsTruncated>",
        ]
        for number, part_size, checksum in parts.parts:
            checksum_xml = _el(checksum_element(checksum[0]), checksum[1]) if checksum else ""
            inner.append(
                f"<Part><PartNumber>{number}</PartNumber><Size>{part_size}</Size>"
                f"{checksum_xml}</Part>"
            )
        body.append("<ObjectParts>" + "".join(inner) + "</ObjectParts>")
    if storage_class is not None:
        body.append(_el("StorageClass", storage_class))
    if size is not None:
        body.append(f"<ObjectSize>{size}</ObjectSize>")
    return _doc("GetObjectAttributesResponse", body)


# -- bucket encryption --------------------------------------------------------------------

MAX_ENCRYPTION_BODY = 64 * 1024


def encryption_xml(algorithm: str = "AES256") -> bytes:
    """ServerSideEncryptionConfiguration with one default rule of ``algorithm``."""
    return _doc(
        "ServerSideEncryptionConfiguration",
        [
            "<Rule><ApplyServerSideEncryptionByDefault>"
            + _el("SSEAlgorithm", algorithm)
            + "</ApplyServerSideEncryptionByDefault>"
            + "<BucketKeyEnabled>false</BucketKeyEnabled></Rule>"
        ],
    )


def parse_encryption(body: bytes) -> list[str]:
    """The SSEAlgorithm of each rule of a ServerSideEncryptionConfiguration."""
    root = _parse(body, MAX_ENCRYPTION_BODY, "ServerSideEncryptionConfiguration")
    algorithms: list[str] = []
    for rule in root.findall("Rule"):
        default = rule.find("ApplyServerSideEncryptionByDefault")
        if default is None:
            _malformed("a Rule needs ApplyServerSideEncryptionByDefault")
        algorithm = _child_text(default, "SSEAlgorithm")
        if not algorithm:
            _malformed("ApplyServerSideEncryptionByDefault needs an SSEAlgorithm")
        algorithms.append(algorithm)
    if not algorithms:
        _malformed("ServerSideEncryptionConfiguration needs a Rule")
    return algorithms


# -- object lock ------------------------------------------------------------------------

MAX_OBJECT_LOCK_BODY = 64 * 1024


def parse_timestamp(text: str) -> float | None:
    """An ISO 8601 timestamp (``2030-01-01T00:00:00Z``, fractions allowed; no zone is
    UTC) as unix seconds, or None when it is not one."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def object_lock_configuration_xml(mode: str, days: int, years: int) -> bytes:
    """GetObjectLockConfiguration: enabled, with the default retention when there is one."""
    body = [_el("ObjectLockEnabled", "Enabled")]
    if mode:
        period = _el("Days", str(days)) if days else _el("Years", str(years))
        body.append(
            f"<Rule><DefaultRetention>{_el('Mode', mode)}{period}</DefaultRetention></Rule>"
        )
    return _doc("ObjectLockConfiguration", body)


def _positive(text: str | None, what: str) -> int:
    if text is None:
        return 0
    text = text.strip()
    if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 10:
        _malformed(f"{what} must be an integer")
    value = int(text)
    if value <= 0:
        raise s3_error(
            "InvalidArgument", "Default retention period must be a positive integer value"
        )
    return value


def parse_object_lock_configuration(body: bytes) -> tuple[str, int, int]:
    """PutObjectLockConfiguration: (mode, days, years) of the default retention ("" none).

    ``ObjectLockEnabled`` must be ``Enabled``; a ``Rule`` holds one ``DefaultRetention``
    with a ``Mode`` and exactly one of ``Days`` / ``Years`` (else MalformedXML).
    """
    root = _parse(body, MAX_OBJECT_LOCK_BODY, "ObjectLockConfiguration")
    if (_child_text(root, "ObjectLockEnabled") or "").strip() != "Enabled":
        _malformed("ObjectLockEnabled must be Enabled")
    rule = root.find("Rule")
    if rule is None:
        return "", 0, 0
    default = rule.find("DefaultRetention")
    if default is None:
        _malformed("a Rule needs a DefaultRetention")
    mode = (_child_text(default, "Mode") or "").strip()
    days_text, years_text = _child_text(default, "Days"), _child_text(default, "Years")
    if not mode or (days_text is None) == (years_text is None):
        _malformed("a DefaultRetention needs a Mode and exactly one of Days and Years")
    if mode not in ("GOVERNANCE", "COMPLIANCE"):
        _malformed("Mode must be GOVERNANCE or COMPLIANCE")
    return mode, _positive(days_text, "Days"), _positive(years_text, "Years")


def retention_xml(mode: str, until: float) -> bytes:
    return _doc("Retention", [_el("Mode", mode), _el("RetainUntilDate", iso8601(until))])


def parse_retention(body: bytes) -> tuple[str, float]:
    """PutObjectRetention: (mode, retain-until) or ("", 0.0) to remove it; a mode without
    a date or the other way round is MalformedXML, an unknown mode too."""
    root = _parse(body, MAX_OBJECT_LOCK_BODY, "Retention")
    mode = (_child_text(root, "Mode") or "").strip()
    date_text = (_child_text(root, "RetainUntilDate") or "").strip()
    if bool(mode) != bool(date_text):
        _malformed("Retention needs both Mode and RetainUntilDate, or neither")
    if not mode:
        return "", 0.0
    if mode not in ("GOVERNANCE", "COMPLIANCE"):
        _malformed("Mode must be GOVERNANCE or COMPLIANCE")
    until = parse_timestamp(date_text)
    if until is None:
        _malformed("RetainUntilDate must be an ISO 8601 timestamp")
    return mode, until


def legal_hold_xml(on: bool) -> bytes:
    return _doc("LegalHold", [_el("Status", "ON" if on else "OFF")])


def parse_legal_hold(body: bytes) -> bool:
    root = _parse(body, MAX_OBJECT_LOCK_BODY, "LegalHold")
    status = (_child_text(root, "Status") or "").strip()
    if status not in ("ON", "OFF"):
        _malformed("Status must be ON or OFF")
    return status == "ON"


# -- policy status, Public Access Block, ownership controls ----------------------------

MAX_ACCESS_CONFIG_BODY = 64 * 1024
PUBLIC_ACCESS_FLAGS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)


def policy_status_xml(is_public: bool) -> bytes:
    return _doc("PolicyStatus", [_el("IsPublic", _bool(is_public))])


def public_access_block_xml(flags: Sequence[bool]) -> bytes:
    """A PublicAccessBlockConfiguration, flags in :data:`PUBLIC_ACCESS_FLAGS` order."""
    return _doc(
        "PublicAccessBlockConfiguration",
        [_el(name, _bool(on)) for name, on in zip(PUBLIC_ACCESS_FLAGS, flags, strict=True)],
    )


def parse_public_access_block(body: bytes) -> list[bool]:
    """The four flags of a PublicAccessBlockConfiguration (absent ones are false)."""
    root = _parse(body, MAX_ACCESS_CONFIG_BODY, "PublicAccessBlockConfiguration")
    flags: list[bool] = []
    for name in PUBLIC_ACCESS_FLAGS:
        text = _child_text(root, name)
        value = (text or "false").strip().lower()
        if value not in ("true", "false"):
            _malformed(f"{name} must be true or false")
        flags.append(value == "true")
    return flags


def ownership_controls_xml(ownership: str) -> bytes:
    return _doc("OwnershipControls", ["<Rule>" + _el("ObjectOwnership", ownership) + "</Rule>"])


def parse_ownership_controls(body: bytes) -> str:
    """The ObjectOwnership of an OwnershipControls body (exactly one rule)."""
    root = _parse(body, MAX_ACCESS_CONFIG_BODY, "OwnershipControls")
    rules = root.findall("Rule")
    if len(rules) != 1:
        _malformed("OwnershipControls needs exactly one Rule")
    ownership = _child_text(rules[0], "ObjectOwnership")
    if not ownership:
        _malformed("a Rule needs an ObjectOwnership")
    return ownership.strip()
