from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.codec import (
    KEY_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    SegmentCipher,
    block_nonce,
    derive_bucket_key,
    new_data_key,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
)
from skymesh.errors import CodecError, IntegrityError

KEK = bytes(range(32))
OTHER = bytes(range(1, 33))


def flip(blob: bytes, bit: int) -> bytes:
    out = bytearray(blob)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_new_data_key_is_random_and_sized() -> None:
    a, b = new_data_key(), new_data_key()
    assert len(a) == KEY_SIZE and len(b) == KEY_SIZE and a != b


# -- HKDF -----------------------------------------------------------------------


def reference_hkdf(secret: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 written out, to show derive_bucket_key is plain HKDF-SHA256."""
    prk = hmac.new(salt, secret, hashlib.sha256).digest()
    okm, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def test_bucket_key_is_hkdf_with_length_prefixed_names() -> None:
    salt = b"skymesh/bucket-key/v1"
    info = salt + struct.pack(">I", 4) + b"proj" + struct.pack(">I", 3) + "bü".encode()
    assert derive_bucket_key(b"secret", "proj", "bü") == reference_hkdf(b"secret", salt, info, 32)


def test_bucket_key_binds_names_unambiguously() -> None:
    keys = {
        derive_bucket_key(b"s", "ab", "c"),
        derive_bucket_key(b"s", "a", "bc"),
        derive_bucket_key(b"s", "abc", ""),
        derive_bucket_key(b"s", "", "abc"),
        derive_bucket_key(b"t", "ab", "c"),
    }
    assert len(keys) == 5
    assert derive_bucket_key(b"s", "ab", "c") == derive_bucket_key(b"s", "ab", "c")
    assert len(derive_bucket_key(b"s", "ab", "c")) == KEY_SIZE


def test_bucket_key_needs_a_secret() -> None:
    with pytest.raises(CodecError):
        derive_bucket_key(b"", "p", "b")


# -- wrap / seal ------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(context=st.binary(max_size=64))
def test_wrap_roundtrip_and_failures(context: bytes) -> None:
    data_key = new_data_key()
    blob = wrap_key(KEK, data_key, context)
    assert len(blob) == 1 + NONCE_SIZE + KEY_SIZE + TAG_SIZE
    assert unwrap_key(KEK, blob, context) == data_key
    assert wrap_key(KEK, data_key, context) != blob  # fresh nonce every time
    with pytest.raises(IntegrityError):
        unwrap_key(OTHER, blob, context)
    with pytest.raises(IntegrityError):
        unwrap_key(KEK, blob, context + b"x")
    for bit in range(0, len(blob) * 8, 7):
        with pytest.raises(IntegrityError):
            unwrap_key(KEK, flip(blob, bit), context)
    with pytest.raises(IntegrityError):
        unwrap_key(KEK, blob[:-1], context)
    with pytest.raises(IntegrityError):
        unwrap_key(KEK, blob + b"\0", context)


def test_unwrap_rejects_unknown_version() -> None:
    blob = wrap_key(KEK, new_data_key(), b"c")
    with pytest.raises(IntegrityError, match="version"):
        unwrap_key(KEK, b"\x02" + blob[1:], b"c")


def test_wrap_rejects_bad_key_sizes() -> None:
    with pytest.raises(CodecError):
        wrap_key(KEK[:16], new_data_key(), b"")
    with pytest.raises(CodecError):
        wrap_key(KEK, b"short", b"")
    with pytest.raises(CodecError):
        unwrap_key(KEK[:31], wrap_key(KEK, new_data_key(), b""), b"")


@settings(max_examples=20, deadline=None)
@given(plaintext=st.binary(max_size=300), context=st.binary(max_size=32))
def test_seal_roundtrip_and_failures(plaintext: bytes, context: bytes) -> None:
    blob = seal(KEK, plaintext, context)
    assert open_sealed(KEK, blob, context) == plaintext
    assert open_sealed(KEK, memoryview(blob), context) == plaintext
    with pytest.raises(IntegrityError):
        open_sealed(OTHER, blob, context)
    with pytest.raises(IntegrityError):
        open_sealed(KEK, blob, context + b"!")
    for bit in range(0, len(blob) * 8, 13):
        with pytest.raises(IntegrityError):
            open_sealed(KEK, flip(blob, bit), context)
    with pytest.raises(IntegrityError):
        open_sealed(KEK, blob[:10], context)


def test_wrapped_key_is_not_a_sealed_blob() -> None:
    """Domain separation: same key, same context, still not interchangeable."""
    data_key = new_data_key()
    with pytest.raises(IntegrityError):
        open_sealed(KEK, wrap_key(KEK, data_key, b"ctx"), b"ctx")
    with pytest.raises(IntegrityError):
        unwrap_key(KEK, seal(KEK, data_key, b"ctx"), b"ctx")


# -- blocks ---------------------------------------------------------------------


def test_block_nonce_layout_and_range() -> None:
    assert block_nonce(0, 0) == bytes(12)
    assert block_nonce(1, 2) == bytes(7) + b"\x01" + bytes(3) + b"\x02"
    assert block_nonce(2**64 - 1, 2**32 - 1) == b"\xff" * 12
    for segment, block in [(-1, 0), (2**64, 0), (0, -1), (0, 2**32)]:
        with pytest.raises(ValueError):
            block_nonce(segment, block)


def test_block_nonces_are_unique() -> None:
    nonces = {block_nonce(s, b) for s in range(20) for b in range(50)}
    assert len(nonces) == 1000


@settings(max_examples=25, deadline=None)
@given(
    plaintext=st.binary(max_size=2000),
    segment=st.integers(0, 2**64 - 1),
    block=st.integers(0, 2**32 - 1),
)
def test_segment_cipher_roundtrip(plaintext: bytes, segment: int, block: int) -> None:
    key = new_data_key()
    cipher = SegmentCipher(key, segment)
    ct = cipher.encrypt_block(block, memoryview(plaintext))
    assert len(ct) == len(plaintext) + TAG_SIZE
    assert cipher.decrypt_block(block, ct) == plaintext
    assert cipher.decrypt_block(block, memoryview(bytearray(ct))) == plaintext
    out = bytearray(len(plaintext))
    assert cipher.decrypt_block_into(block, ct, out) == len(plaintext)
    assert out == plaintext


def test_segment_cipher_rejects_tampering_and_misplacement() -> None:
    key = new_data_key()
    cipher = SegmentCipher(key, 5)
    ct = cipher.encrypt_block(9, b"hello block")
    for bit in range(len(ct) * 8):
        with pytest.raises(IntegrityError):
            cipher.decrypt_block(9, flip(ct, bit))
    with pytest.raises(IntegrityError):
        cipher.decrypt_block(10, ct)  # another position in the segment
    with pytest.raises(IntegrityError):
        SegmentCipher(key, 6).decrypt_block(9, ct)  # another segment
    with pytest.raises(IntegrityError):
        SegmentCipher(new_data_key(), 5).decrypt_block(9, ct)  # another object
    with pytest.raises(IntegrityError):
        cipher.decrypt_block(9, ct[: TAG_SIZE - 1])
    with pytest.raises(IntegrityError):
        cipher.decrypt_block_into(9, flip(ct, 3), bytearray(len(ct) - TAG_SIZE))


def test_segment_cipher_checks_key_and_block() -> None:
    with pytest.raises(CodecError):
        SegmentCipher(b"k" * 16, 0)
    with pytest.raises(ValueError):
        SegmentCipher(new_data_key(), -1)
    with pytest.raises(ValueError):
        SegmentCipher(new_data_key(), 0).encrypt_block(2**32, b"x")
