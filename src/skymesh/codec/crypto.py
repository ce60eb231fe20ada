"""Client-side encryption: keys, key wrapping, sealed blobs and per-block AEAD.

Every object gets its own random data key, so the deterministic block nonces
(segment, block) never repeat under one key. The data key travels only wrapped by
the bucket key, which the gateway derives from the user's root secret; the
coordinator stores the wrapped blob and cannot open it.

Blocks are sealed one by one (AES-256-GCM) so a ranged read decrypts only the
blocks it touches. Their position is bound by the nonce and the object by its
unique key, so blocks carry no associated data.

cryptography releases the GIL inside AES-GCM, so SegmentCipher may be used from
several threads at once; AESGCM keeps no per-call state.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from skymesh.errors import CodecError, IntegrityError

KEY_SIZE = 32
TAG_SIZE = 16
NONCE_SIZE = 12

#: First byte of every wrapped key and sealed blob, so the format can change later.
BLOB_VERSION = 1
_BLOB_OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE

# Domain labels, prepended to the caller's context in the AAD, so a wrapped key can
# never be opened as a sealed blob (or the reverse) even under the same key and
# context.
_WRAP_DOMAIN = b"skymesh/wrap-key/v1\x00"
_SEAL_DOMAIN = b"skymesh/seal/v1\x00"
_BUCKET_KEY_SALT = b"skymesh/bucket-key/v1"
_SUBKEY_DOMAIN = b"skymesh/subkey/v1\x00"

_MAX_SEGMENT = 2**64 - 1
_MAX_BLOCK = 2**32 - 1

Buffer = bytes | bytearray | memoryview


def _check_key(key: bytes, what: str = "key") -> None:
    if len(key) != KEY_SIZE:
        raise CodecError(f"{what} must be {KEY_SIZE} bytes, got {len(key)}")


def new_data_key() -> bytes:
    return os.urandom(KEY_SIZE)


def _length_prefixed(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def derive_bucket_key(root_secret: bytes, project_id: str, bucket: str) -> bytes:
    """HKDF-SHA256 key of one bucket of one project.

    Each name is length-prefixed in the info, so ("ab", "c") and ("a", "bc") can
    never derive the same key.
    """
    if not root_secret:
        raise CodecError("root secret must not be empty")
    info = (
        _BUCKET_KEY_SALT
        + _length_prefixed(project_id.encode("utf-8"))
        + _length_prefixed(bucket.encode("utf-8"))
    )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=_BUCKET_KEY_SALT, info=info)
    return hkdf.derive(bytes(root_secret))


def derive_subkey(key: bytes, label: bytes, salt: bytes = b"") -> bytes:
    """A key for one purpose, derived from ``key`` (HKDF-SHA256).

    Each AES-GCM key owns one nonce space: an object's data key encrypts its
    blocks; metadata and each multipart part upload get their own subkeys, so no
    two encryptions under one key can ever meet the same nonce.
    """
    _check_key(key)
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_SIZE,
        salt=bytes(salt) or None,
        info=_SUBKEY_DOMAIN + bytes(label),
    )
    return hkdf.derive(bytes(key))


def _seal_with_nonce(key: bytes, nonce: bytes, plaintext: Buffer, aad: bytes) -> bytes:
    """Deterministic core of wrap/seal; exposed only so golden vectors can pin it."""
    _check_key(key)
    return bytes((BLOB_VERSION,)) + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: Buffer, aad: bytes, what: str) -> bytes:
    _check_key(key)
    view = memoryview(blob)
    if len(view) < _BLOB_OVERHEAD:
        raise IntegrityError(f"{what} is truncated ({len(view)} bytes)")
    if view[0] != BLOB_VERSION:
        raise IntegrityError(f"{what} has unknown version {view[0]}")
    nonce = bytes(view[1 : 1 + NONCE_SIZE])
    try:
        return AESGCM(key).decrypt(nonce, view[1 + NONCE_SIZE :], aad)
    except InvalidTag:
        raise IntegrityError(f"{what} failed authentication (wrong key, context or data)") from None


def wrap_key(kek: bytes, data_key: bytes, context: bytes) -> bytes:
    """Encrypt ``data_key`` under ``kek``; ``context`` (e.g. bucket and object key)
    binds the blob to where it is stored, so it cannot be moved to another object."""
    _check_key(data_key, "data key")
    nonce = os.urandom(NONCE_SIZE)
    return _seal_with_nonce(kek, nonce, data_key, _WRAP_DOMAIN + context)


def unwrap_key(kek: bytes, blob: Buffer, context: bytes) -> bytes:
    if len(blob) != _BLOB_OVERHEAD + KEY_SIZE:
        raise IntegrityError(f"wrapped key must be {_BLOB_OVERHEAD + KEY_SIZE} bytes")
    return _open(kek, blob, _WRAP_DOMAIN + context, "wrapped key")


def seal(key: bytes, plaintext: Buffer, context: bytes) -> bytes:
    """Encrypt a small blob (object metadata) with a random nonce.

    Random 96-bit nonces are safe for the few blobs sealed per key; do not seal
    with an object's data key, whose nonce space belongs to its blocks.
    """
    nonce = os.urandom(NONCE_SIZE)
    return _seal_with_nonce(key, nonce, plaintext, _SEAL_DOMAIN + context)


def open_sealed(key: bytes, blob: Buffer, context: bytes) -> bytes:
    return _open(key, blob, _SEAL_DOMAIN + context, "sealed blob")


def block_nonce(segment: int, block: int) -> bytes:
    if not 0 <= segment <= _MAX_SEGMENT:
        raise ValueError(f"segment {segment} out of range for a nonce")
    if not 0 <= block <= _MAX_BLOCK:
        raise ValueError(f"block {block} out of range for a nonce")
    return struct.pack(">QI", segment, block)


class SegmentCipher:
    """AES-256-GCM over the blocks of one segment of one object."""

    __slots__ = ("_aead", "_prefix", "segment")

    def __init__(self, data_key: bytes, segment: int) -> None:
        _check_key(data_key, "data key")
        self._aead = AESGCM(data_key)
        self.segment = segment
        self._prefix = block_nonce(segment, 0)[:8]

    def _nonce(self, block: int) -> bytes:
        if not 0 <= block <= _MAX_BLOCK:
            raise ValueError(f"block {block} out of range for a nonce")
        return self._prefix + block.to_bytes(4, "big")

    def encrypt_block(self, block: int, plaintext: Buffer) -> bytes:
        return self._aead.encrypt(self._nonce(block), plaintext, None)

    def encrypt_block_into(self, block: int, plaintext: Buffer, out: bytearray | memoryview) -> int:
        """Encrypt straight into ``out`` (exactly len(plaintext) + TAG_SIZE bytes), so
        the erasure coder reads the stripe where it was sealed, with no copy between."""
        return self._aead.encrypt_into(self._nonce(block), plaintext, None, out)

    def decrypt_block(self, block: int, ciphertext: Buffer) -> bytes:
        if len(ciphertext) < TAG_SIZE:
            raise IntegrityError(f"block {block} is shorter than its tag")
        try:
            return self._aead.decrypt(self._nonce(block), ciphertext, None)
        except InvalidTag:
            raise IntegrityError(
                f"block {block} of segment {self.segment} failed authentication"
            ) from None

    def decrypt_block_into(
        self, block: int, ciphertext: Buffer, out: bytearray | memoryview
    ) -> int:
        """Decrypt straight into ``out`` (exactly len(ciphertext) - TAG_SIZE bytes).

        Lets a reader fill one output buffer without a fresh bytes object per block.
        On failure ``out`` may hold garbage; the caller must drop it.
        """
        if len(ciphertext) < TAG_SIZE:
            raise IntegrityError(f"block {block} is shorter than its tag")
        try:
            return self._aead.decrypt_into(self._nonce(block), ciphertext, None, out)
        except InvalidTag:
            raise IntegrityError(
                f"block {block} of segment {self.segment} failed authentication"
            ) from None
