"""What we keep about an object besides its bytes, encrypted so the coordinator cannot read it."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from skymesh.codec.crypto import derive_subkey, open_sealed, seal
from skymesh.wire.metainfo import ObjectLock

META_CONTEXT = b"skymesh/object-meta/v1"


class ObjectMeta(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Content type, user metadata, standard headers and checksums of one object."""

    content_type: str = "binary/octet-stream"
    user: dict[str, str] = {}  # x-amz-meta-* without the prefix, lower-cased names
    headers: dict[str, str] = {}  # cache-control, content-disposition, content-encoding, ...
    checksums: dict[str, str] = {}  # e.g. {"crc32": "<base64>"}
    parts: list[int] = []  # multipart: size of each part, for partNumber reads
    # multipart: each part's checksum as uploaded ("<algorithm>:<base64>", "" none),
    # for GetObjectAttributes; empty when no part had one
    part_checksums: list[str] = []
    # canned ACL ("" private, "public-read") and tags: sealed, so only the owner's
    # gateway reads them, and a new version starts without the old ones
    acl: str = ""
    tags: dict[str, str] = {}
    # SSE-C: an HMAC of the customer's key under a subkey of the data key
    # (client/customerkey.py), never the key or its MD5; "" for an object without one
    customer_key_verifier: str = ""
    # multipart uploads only: the S3 Object Lock asked for at creation, handed to the
    # coordinator at completion (which enforces it) and not kept in the object's metadata
    lock: ObjectLock | None = None


def seal_meta(data_key: bytes, meta: ObjectMeta) -> bytes:
    key = derive_subkey(data_key, META_CONTEXT)
    return seal(key, msgspec.msgpack.encode(meta), META_CONTEXT)


def open_meta(data_key: bytes, blob: bytes) -> ObjectMeta:
    if not blob:
        return ObjectMeta()
    key = derive_subkey(data_key, META_CONTEXT)
    return msgspec.msgpack.decode(open_sealed(key, blob, META_CONTEXT), type=ObjectMeta)


#: ``(md5_hex, size)`` -> checksums to keep in the object's metadata (or None).
BeforeCommit = Callable[[str, int], Mapping[str, str] | None]


def with_checksums(meta: ObjectMeta, checksums: Mapping[str, str] | None) -> ObjectMeta:
    """``meta`` with ``checksums`` added (``{algorithm: base64}``)."""
    if not checksums:
        return meta
    return msgspec.structs.replace(meta, checksums={**meta.checksums, **checksums})
