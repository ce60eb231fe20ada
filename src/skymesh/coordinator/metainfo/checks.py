"""Checks on request fields that several metadata operations share (pure)."""

from __future__ import annotations

import re

from skymesh.errors import BadRequest, NotFound, PreconditionFailed

SIMPLE = "simple"  # kinds of upload
MULTIPART = "multipart"

MAX_KEY_BYTES = 1024
MAX_ENCRYPTED_KEY = 1024
MAX_ENCRYPTED_METADATA = 16 * 1024
# A multipart object's sealed metadata also lists each part's size and checksum
# (client/objectmeta.py): at most a 9-byte size and "sha256:" + 44 base64 characters.
MAX_PART_METADATA = 64
MAX_ETAG = 256
MAX_PART_NUMBER = 10_000
MAX_SEGMENT_INDEX = 2**31 - 1
MAX_BLOCK_SIZE = 64 * 1024 * 1024
MAX_EXCLUDED_NODES = 1000
_BUCKET_NAME = re.compile(r"[a-z0-9.-]{3,63}")
_VERSION_ID = re.compile(r"[0-9a-f]{32}")  # a stream id (common.new_stream_id)
_PARTS_IN_ETAG = re.compile(r'"?[^"]*-([0-9]{1,5})"?')  # a multipart ETag: "<md5 of md5s>-<parts>"
_TAG_DIGEST = re.compile(r"[0-9a-f]{64}")  # HMAC-SHA256, hex (skymesh.lifecycle_rules)
MAX_TAG_DIGESTS = 10  # S3's most tags on an object


def check_bucket_name(name: str) -> None:
    if not _BUCKET_NAME.fullmatch(name):
        raise BadRequest(
            "bucket names are 3-63 characters of a-z, 0-9, '.' and '-'", code="InvalidBucketName"
        )


def check_key(key: str) -> None:
    if not key:
        raise BadRequest("object key must not be empty", code="InvalidArgument")
    try:
        size = len(key.encode())
    except UnicodeEncodeError as e:
        raise BadRequest("object key is not valid UTF-8", code="InvalidArgument") from e
    if size > MAX_KEY_BYTES:
        raise BadRequest(
            f"object key is {size} bytes; at most {MAX_KEY_BYTES}", code="KeyTooLongError"
        )
    if "\x00" in key:
        raise BadRequest("object key must not contain NUL", code="InvalidArgument")


def check_version_id(version_id: str) -> None:
    """ "" (the latest), "null" (S3's null version) or a stream id; else InvalidArgument."""
    if version_id and version_id != "null" and not _VERSION_ID.fullmatch(version_id):
        raise BadRequest(
            f"invalid version id {version_id[:80]!r}: use one that a listing or write answered",
            code="InvalidArgument",
        )


def check_text(name: str, value: str, limit: int = MAX_KEY_BYTES) -> None:
    """A listing parameter (prefix, marker, delimiter): valid UTF-8 within ``limit`` bytes."""
    try:
        size = len(value.encode())
    except UnicodeEncodeError as e:
        raise BadRequest(f"{name} is not valid UTF-8", code="InvalidArgument") from e
    if size > limit or "\x00" in value:
        raise BadRequest(f"{name} is too long or contains NUL", code="InvalidArgument")


def check_listing(limit: int, texts: dict[str, str]) -> None:
    """A listing request's page size and text parameters (name -> value)."""
    if limit < 1:
        raise BadRequest("limit must be at least 1", code="InvalidArgument")
    for name, value in texts.items():
        check_text(name, value)


def check_blob(name: str, value: bytes, limit: int) -> None:
    if len(value) > limit:
        raise BadRequest(f"{name} is {len(value)} bytes; at most {limit}", code="InvalidArgument")


def metadata_limit(parts: int) -> int:
    """The most sealed metadata an object of ``parts`` parts (0: not multipart) may keep."""
    return MAX_ENCRYPTED_METADATA + MAX_PART_METADATA * min(parts, MAX_PART_NUMBER)


def parts_in_etag(etag: str) -> int:
    """How many parts a stored object's ETag says it was completed from (0: a simple
    upload). The coordinator cannot read the part list, which is sealed; an ETag that
    lies about it buys no more than a real 10,000-part object has."""
    found = _PARTS_IN_ETAG.fullmatch(etag)
    return int(found.group(1)) if found else 0


def check_etag(etag: str) -> None:
    if len(etag) > MAX_ETAG:
        raise BadRequest("etag too long", code="InvalidArgument")


def check_part_number(part_number: int) -> None:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise BadRequest(
            f"part number must be 1-{MAX_PART_NUMBER}, got {part_number}", code="InvalidArgument"
        )


def check_size(size: int) -> None:
    if size < 0:
        raise BadRequest("size must not be negative", code="InvalidArgument")


def unquote_etag(etag: str) -> str:
    return etag.strip().strip('"')


def check_position(part: int, idx: int, kind: str) -> None:
    if kind == SIMPLE and part != 0:
        raise BadRequest("a simple upload's segments are in part 0", code="InvalidArgument")
    if kind == MULTIPART:
        check_part_number(part)
    if not 0 <= idx <= MAX_SEGMENT_INDEX:
        raise BadRequest(f"segment index {idx} out of range", code="InvalidArgument")


def check_write_conditions(current_etag: str | None, if_match: str, if_none_match: str) -> None:
    """S3's conditional writes against the object now at the key (``None``: no object).

    ``If-None-Match: *`` fails when any object exists; ``If-Match`` fails unless
    the current ETag is one of those listed (or ``*`` and an object exists); on a
    missing key it is ``NoSuchKey``, as S3 answers. Called inside the commit
    transaction, so two racing writers cannot both pass.
    """
    if if_none_match:
        if if_none_match.strip() != "*":
            raise BadRequest("If-None-Match on a write takes only '*'", code="NotImplemented")
        if current_etag is not None:
            raise PreconditionFailed(
                "an object already exists at this key (If-None-Match: *)",
                code="PreconditionFailed",
            )
    if if_match:
        if current_etag is None:
            raise NotFound("no object at this key to match (If-Match)", code="NoSuchKey")
        wanted = {unquote_etag(e) for e in if_match.split(",")}
        if "*" not in wanted and unquote_etag(current_etag) not in wanted:
            raise PreconditionFailed(
                "the object's ETag does not match If-Match", code="PreconditionFailed"
            )


def tag_digests_column(digests: list[str]) -> str | None:
    """A version's tag digests checked, as ``objects.tag_digests`` holds them (None: no tags)."""
    if len(digests) > MAX_TAG_DIGESTS or not all(_TAG_DIGEST.fullmatch(d) for d in digests):
        raise BadRequest(
            f"tag_digests are at most {MAX_TAG_DIGESTS} HMAC-SHA256 digests in hex",
            code="InvalidArgument",
        )
    return " ".join(digests) or None
