"""What we keep about an object besides its bytes, encrypted so the coordinator cannot read it."""

from __future__ import annotations

import msgspec

from skymesh.codec.crypto import derive_subkey, open_sealed, seal

META_CONTEXT = b"skymesh/object-meta/v1"


class ObjectMeta(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Content type, user metadata, standard headers and checksums of one object."""

    content_type: str = "binary/octet-stream"
    user: dict[str, str] = {}  # x-amz-meta-* without the prefix, lower-cased names
    headers: dict[str, str] = {}  # cache-control, content-disposition, content-encoding, ...
    checksums: dict[str, str] = {}  # e.g. {"crc32": "<base64>"}
    parts: list[int] = []  # multipart: size of each part, for partNumber reads
    # S3 slice B: canned ACL ("" private, "public-read") and tags; sealed, so only
    # the owner's gateway reads them, and a new version starts without the old ones
    acl: str = ""
    tags: dict[str, str] = {}


def seal_meta(data_key: bytes, meta: ObjectMeta) -> bytes:
    key = derive_subkey(data_key, META_CONTEXT)
    return seal(key, msgspec.msgpack.encode(meta), META_CONTEXT)


def open_meta(data_key: bytes, blob: bytes) -> ObjectMeta:
    if not blob:
        return ObjectMeta()
    key = derive_subkey(data_key, META_CONTEXT)
    return msgspec.msgpack.decode(open_sealed(key, blob, META_CONTEXT), type=ObjectMeta)


PART_KEY_LABEL = b"skymesh/part-key/v1"


def segment_key(data_key: bytes, key_salt: bytes) -> bytes:
    """The key a segment's blocks are encrypted with.

    Simple uploads use the object's data key. Each multipart part upload uses a
    subkey with a fresh salt, so re-uploading a part never repeats a nonce.
    """
    return derive_subkey(data_key, PART_KEY_LABEL, key_salt) if key_salt else data_key


def key_context(bucket: str, key: str) -> bytes:
    """Binds a wrapped data key to its object's name: the coordinator cannot swap objects."""
    b = bucket.encode()
    return b"skymesh/object-key/v1" + len(b).to_bytes(2, "big") + b + key.encode()
