"""Customer-provided keys (S3's SSE-C): a key of the caller's own, mixed into the object's.

Every object already has a random data key, wrapped by a key derived from the
project's root secret (:mod:`.keys`). An object written with a customer key is
encrypted under a *content key* derived from both (HKDF: the data key as input,
the customer key as salt), so the project's root secret alone no longer opens its
bytes: the customer key must come with every read, as S3 requires.

The customer key is never stored. The object's sealed metadata (:mod:`.objectmeta`,
sealed under the data key, so HEAD can tell the object needs a key) keeps only a
*verifier*: an HMAC of the customer key under a subkey of the data key, which
tells a wrong key (403 AccessDenied) from a right one without reading a byte,
and which nobody can turn back into the key. Neither the key nor its MD5 is kept:
an MD5 of a 256-bit key is no secret, but it would let anyone who can open the
metadata check a guessed key without the data key.

Such an object's ETag is not its plaintext's MD5 (S3 does the same): it is derived
from the MD5 under the content key, so the coordinator learns nothing of the
plaintext from it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from skymesh import errors
from skymesh.codec.crypto import derive_subkey

CUSTOMER_KEY_SIZE = 32  # AES-256, the one algorithm S3 takes for SSE-C
CONTENT_KEY_LABEL = b"skymesh/customer-content-key/v1"
VERIFIER_LABEL = b"skymesh/customer-key-verifier/v1"
ETAG_LABEL = b"skymesh/customer-etag/v1"

NEEDS_KEY = (
    "The object was stored using a form of Server Side Encryption. The correct parameters"
    " must be provided to retrieve the object."
)
NOT_APPLICABLE = "The encryption parameters are not applicable to this object."
WRONG_KEY = (
    "The provided encryption key does not match the one the object was stored with"
    " (x-amz-server-side-encryption-customer-key)."
)


@dataclass(frozen=True, repr=False)
class CustomerKey:
    """A customer's 32-byte key, held for one request only; ``md5`` is the base64 MD5 the
    client sent (checked against the key), echoed back in answers as S3 does."""

    key: bytes
    md5: str

    def __post_init__(self) -> None:
        if len(self.key) != CUSTOMER_KEY_SIZE:
            raise errors.BadRequest(
                "The secret key was invalid for the specified algorithm.", code="InvalidArgument"
            )

    @classmethod
    def of(cls, key: bytes) -> CustomerKey:
        """A key with its MD5 computed (as SDKs do for their callers)."""
        return cls(key, base64.b64encode(hashlib.md5(key, usedforsecurity=False).digest()).decode())

    def __repr__(self) -> str:  # never the key: reprs end up in logs and tracebacks
        return "CustomerKey(<redacted>)"


def content_key(data_key: bytes, customer: CustomerKey | None) -> bytes:
    """The key an object's bytes are encrypted with: its data key, or, with a customer key,
    a key derived from both (so neither alone opens the bytes)."""
    if customer is None:
        return data_key
    return derive_subkey(data_key, CONTENT_KEY_LABEL, customer.key)


def verifier(data_key: bytes, customer: CustomerKey) -> str:
    """What the sealed metadata keeps to recognise ``customer`` on a later read."""
    mac = hmac.new(derive_subkey(data_key, VERIFIER_LABEL), customer.key, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def open_content(data_key: bytes, stored_verifier: str, customer: CustomerKey | None) -> bytes:
    """The content key of an object (or multipart upload) whose metadata keeps
    ``stored_verifier`` ("" none), read or written with ``customer``; S3's errors when
    the key is missing (400 InvalidRequest), wrong (403 AccessDenied) or not wanted
    (400 InvalidRequest)."""
    if not stored_verifier:
        if customer is not None:
            raise errors.BadRequest(NOT_APPLICABLE, code="InvalidRequest")
        return data_key
    if customer is None:
        raise errors.BadRequest(NEEDS_KEY, code="InvalidRequest")
    if not hmac.compare_digest(verifier(data_key, customer), stored_verifier):
        raise errors.Forbidden(WRONG_KEY, code="AccessDenied")
    return content_key(data_key, customer)


def customer_etag(content: bytes, md5_hex: str, salt: bytes = b"") -> str:
    """The ETag of an object (or part) written with a customer key: 32 hex digits derived
    from its plaintext MD5 under its content key (and a part's key salt), not the MD5."""
    mac = hmac.new(derive_subkey(content, ETAG_LABEL, salt), bytes.fromhex(md5_hex), hashlib.md5)
    return mac.hexdigest()
