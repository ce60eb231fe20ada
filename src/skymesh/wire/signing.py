"""Signed envelopes.

A signature covers ``domain || body`` where ``body`` is the msgpack encoding of
the message and ``domain`` names its type, so a signature on one kind of message
can never pass for another. The receiver verifies the bytes it was given and only
then decodes them: nothing is re-encoded, so no canonical form is needed.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection
from typing import TypeVar

import msgspec

from skymesh.errors import Forbidden
from skymesh.wire.identity import Identity, id_from_public_key, verify_signature

T = TypeVar("T", bound=msgspec.Struct)

DOMAIN_PREFIX = b"skymesh/signed/v1/"
#: The HTTP header that carries a signed order (piece, inference or batch) to its node.
ORDER_HEADER = "X-Skymesh-Order"


class Signed(msgspec.Struct, frozen=True):
    """A message body, the public key of its signer and the signature."""

    body: bytes
    signer: bytes
    signature: bytes

    @property
    def signer_id(self) -> str:
        return id_from_public_key(self.signer)


def _domain(kind: type[msgspec.Struct]) -> bytes:
    return DOMAIN_PREFIX + kind.__name__.encode()


def sign(identity: Identity, message: msgspec.Struct) -> Signed:
    body = msgspec.msgpack.encode(message)
    return Signed(
        body=body,
        signer=identity.public_key,
        signature=identity.sign(_domain(type(message)) + body),
    )


def open_signed(
    signed: Signed,
    kind: type[T],
    trusted: Collection[bytes] | Callable[[bytes], bool] | None = None,
) -> T:
    """Verify ``signed`` and decode its body as ``kind``.

    ``trusted`` limits who may have signed: a collection of public keys, or a
    predicate on the signer's public key. ``None`` accepts any signer (the
    caller then checks the decoded message names that signer).
    Raises :class:`Forbidden` on any failure.
    """
    if trusted is not None:
        ok = trusted(signed.signer) if callable(trusted) else signed.signer in trusted
        if not ok:
            raise Forbidden(f"{kind.__name__} signed by an untrusted key")
    if not verify_signature(signed.signer, signed.signature, _domain(kind) + signed.body):
        raise Forbidden(f"{kind.__name__} has a bad signature")
    try:
        return msgspec.msgpack.decode(signed.body, type=kind)
    except (msgspec.DecodeError, RecursionError) as e:
        raise Forbidden(f"{kind.__name__} body is malformed: {e}") from e


def encode_header(signed: Signed) -> str:
    """A signed message as one HTTP header value (URL-safe base64 of msgpack)."""
    return base64.urlsafe_b64encode(msgspec.msgpack.encode(signed)).decode().rstrip("=")


def decode_header(value: str) -> Signed:
    """The envelope in an order header (not yet verified); :class:`Forbidden` when malformed.

    msgspec raises RecursionError for values nested past Python's recursion limit
    (an unknown field is skipped by recursing into it): a header of a few KiB of
    nested arrays is malformed, not a crash.
    """
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        return msgspec.msgpack.decode(raw, type=Signed)
    except (ValueError, msgspec.DecodeError, RecursionError) as e:
        raise Forbidden(f"malformed signed header: {e}") from e
