"""What we keep about an object besides its bytes, encrypted so the coordinator cannot read it."""

from __future__ import annotations

import msgspec

from skymesh.codec.crypto import open_sealed, seal

META_CONTEXT = b"skymesh/object-meta/v1"


class ObjectMeta(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Content type, user metadata, standard headers and checksums of one object."""

    content_type: str = "binary/octet-stream"
    user: dict[str, str] = {}  # x-amz-meta-* without the prefix, lower-cased names
    headers: dict[str, str] = {}  # cache-control, content-disposition, content-encoding, ...
    checksums: dict[str, str] = {}  # e.g. {"crc32": "<base64>"}
    parts: list[int] = []  # multipart: size of each part, for partNumber reads


def seal_meta(data_key: bytes, meta: ObjectMeta) -> bytes:
    return seal(data_key, msgspec.msgpack.encode(meta), META_CONTEXT)


def open_meta(data_key: bytes, blob: bytes) -> ObjectMeta:
    if not blob:
        return ObjectMeta()
    return msgspec.msgpack.decode(open_sealed(data_key, blob, META_CONTEXT), type=ObjectMeta)


def key_context(bucket: str, key: str) -> bytes:
    """Binds a wrapped data key to its object's name: the coordinator cannot swap objects."""
    b = bucket.encode()
    return b"skymesh/object-key/v1" + len(b).to_bytes(2, "big") + b + key.encode()
