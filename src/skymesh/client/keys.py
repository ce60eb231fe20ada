"""Where a client's data keys come from: the project's root secret, or keys handed over.

Every object version (and every multipart upload) has its own random data key.
The coordinator keeps it wrapped, bound to the object's name (:func:`key_context`),
and never sees the key that wraps it. A :class:`KeySource` makes a new object's
key with its wrapped form, and opens a stored object's wrapped key:

- :class:`RootSecretKeys`, the project owner's: bucket keys are derived from the
  root secret (HKDF) and never stored; every object of the project opens.
- :class:`GivenKeys`, a node's under a batch or read order: a fixed map of data
  keys the owner's gateway handed over. Only those objects open, and no new
  object can be made, since that takes a bucket key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from skymesh.codec.crypto import (
    derive_bucket_key,
    derive_subkey,
    new_data_key,
    unwrap_key,
    wrap_key,
)
from skymesh.errors import Forbidden
from skymesh.lifecycle_rules import tag_digests

MAX_CACHED_BUCKET_KEYS = 4096
PART_KEY_LABEL = b"skymesh/part-key/v1"
TAG_DIGEST_LABEL = b"skymesh/tag-digest/v1"
KEY_SALT_SIZE = 16


class KeySource(Protocol):
    def new_key(self, bucket: str, key: str) -> tuple[bytes, bytes]:
        """A fresh data key for a new version of ``bucket/key``, and its wrapped form."""
        ...

    def data_key(self, bucket: str, key: str, wrapped: bytes) -> bytes:
        """The data key of ``bucket/key`` from the wrapped form the coordinator keeps."""
        ...

    def tag_secret(self, bucket: str) -> bytes:
        """The key of the bucket's tag digests (``skymesh.lifecycle_rules.tag_digest``)."""
        ...


class RootSecretKeys:
    """The project owner's keys: each bucket's key derived from the root secret."""

    def __init__(self, project_id: str, root_secret: bytes) -> None:
        self.project_id = project_id
        self._root_secret = root_secret
        # derived once per bucket: HKDF on every request costs more than the lookup
        self._bucket_keys: dict[str, bytes] = {}

    def bucket_key(self, bucket: str) -> bytes:
        key = self._bucket_keys.get(bucket)
        if key is None:
            if len(self._bucket_keys) >= MAX_CACHED_BUCKET_KEYS:
                self._bucket_keys.clear()
            key = derive_bucket_key(self._root_secret, self.project_id, bucket)
            self._bucket_keys[bucket] = key
        return key

    def new_key(self, bucket: str, key: str) -> tuple[bytes, bytes]:
        data_key = new_data_key()
        return data_key, wrap_key(self.bucket_key(bucket), data_key, key_context(bucket, key))

    def data_key(self, bucket: str, key: str, wrapped: bytes) -> bytes:
        return unwrap_key(self.bucket_key(bucket), wrapped, key_context(bucket, key))

    def tag_secret(self, bucket: str) -> bytes:
        """A subkey of the bucket key: lifecycle Tag filters match digests the coordinator
        cannot make or reverse (a tag is a guessable value: the key must stay ours)."""
        return derive_subkey(self.bucket_key(bucket), TAG_DIGEST_LABEL)


class GivenKeys:
    """Data keys handed over by the owner, by ``(bucket, key)``; no bucket key at all."""

    def __init__(self, keys: Mapping[tuple[str, str], bytes]) -> None:
        self._keys = dict(keys)

    def new_key(self, bucket: str, key: str) -> tuple[bytes, bytes]:
        raise Forbidden("a scoped client holds no bucket key: only the objects it was given")

    def data_key(self, bucket: str, key: str, wrapped: bytes) -> bytes:
        data_key = self._keys.get((bucket, key))
        if data_key is None:
            raise Forbidden(f"this scoped client holds no key for {bucket}/{key}")
        return data_key

    def tag_secret(self, bucket: str) -> bytes:
        raise Forbidden("a scoped client holds no bucket key: it cannot digest tags")


def tags_digested(keys: KeySource, bucket: str, tags: Mapping[str, str]) -> list[str]:
    """The digests stored beside a version with ``tags``, for lifecycle Tag filters."""
    return tag_digests(keys.tag_secret(bucket), tags) if tags else []


def key_context(bucket: str, key: str) -> bytes:
    """Binds a wrapped data key to its object's name: the coordinator cannot swap objects."""
    b = bucket.encode()
    return b"skymesh/object-key/v1" + len(b).to_bytes(2, "big") + b + key.encode()


def new_part_key(data_key: bytes) -> tuple[bytes, bytes]:
    """A key for one upload of a multipart part, and the fresh salt it comes from."""
    salt = os.urandom(KEY_SALT_SIZE)
    return segment_key(data_key, salt), salt


def segment_key(data_key: bytes, key_salt: bytes) -> bytes:
    """The key a segment's blocks are encrypted with.

    Simple uploads use the object's data key. Each multipart part upload uses a
    subkey with a fresh salt, so re-uploading a part never repeats a nonce.
    """
    return derive_subkey(data_key, PART_KEY_LABEL, key_salt) if key_salt else data_key
