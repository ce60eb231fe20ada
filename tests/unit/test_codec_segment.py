from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.codec import (
    FRAGMENT_HEADER_SIZE,
    ErasureCoder,
    MerkleBuilder,
    RedundancyScheme,
    SegmentCipher,
    SegmentLayout,
    decode_blocks,
    decode_blocks_into,
    encode_blocks,
    encode_blocks_into,
    new_data_key,
)
from skymesh.errors import CodecError, IntegrityError


@st.composite
def schemes(draw: st.DrawFn) -> RedundancyScheme:
    total = draw(st.integers(2, 20))
    k = draw(st.integers(1, total - 1))
    return RedundancyScheme(k, k, total, total)


@st.composite
def segments(draw: st.DrawFn) -> tuple[RedundancyScheme, int, bytes]:
    scheme = draw(schemes())
    block_size = draw(st.integers(1, 400))
    plain_size = draw(
        st.sampled_from([0, 1, block_size - 1, block_size, block_size + 1, 3 * block_size])
        | st.integers(0, 8 * block_size)
    )
    seed = draw(st.integers(0, 2**32))
    plaintext = hashlib.shake_256(seed.to_bytes(8, "big")).digest(max(plain_size, 0))
    return scheme, block_size, plaintext


def encode_in_batches(
    cipher: SegmentCipher,
    coder: ErasureCoder,
    layout: SegmentLayout,
    plaintext: bytes,
    rng: random.Random,
) -> list[bytearray]:
    pieces = [bytearray() for _ in range(layout.scheme.total)]
    block = 0
    view = memoryview(plaintext)
    while block < layout.block_count:
        count = rng.randint(1, 4)
        blocks = range(block, min(block + count, layout.block_count))
        start, end = layout.plain_range(blocks)
        for piece, part in zip(
            pieces, encode_blocks(cipher, coder, layout, block, view[start:end]), strict=True
        ):
            piece += part
        block = blocks.stop
    return pieces


@settings(max_examples=40, deadline=None)
@given(segment=segments(), seed=st.integers(0, 2**32))
def test_any_k_pieces_give_back_the_plaintext(
    segment: tuple[RedundancyScheme, int, bytes], seed: int
) -> None:
    scheme, block_size, plaintext = segment
    rng = random.Random(seed)
    layout = SegmentLayout(len(plaintext), block_size, scheme)
    coder = ErasureCoder(scheme)
    cipher = SegmentCipher(new_data_key(), rng.randrange(2**20))
    pieces = encode_in_batches(cipher, coder, layout, plaintext, rng)
    assert all(len(p) == layout.piece_size for p in pieces)
    blocks = range(layout.block_count)
    for _ in range(3):
        chosen = rng.sample(range(scheme.total), rng.randint(scheme.k, scheme.total))
        given_ = {i: memoryview(pieces[i]) for i in chosen}
        assert decode_blocks(cipher, coder, layout, blocks, given_) == plaintext
        out = bytearray(len(plaintext) + 5)
        assert decode_blocks_into(cipher, coder, layout, blocks, given_, out) == len(plaintext)
        assert out[: len(plaintext)] == plaintext
        # each piece as a reader takes it off the network: in parts cut anywhere
        # (inside headers and payloads, some empty), read where they lie
        in_parts = {i: _cut(pieces[i], rng) for i in chosen}
        out = bytearray(len(plaintext))
        assert decode_blocks_into(cipher, coder, layout, blocks, in_parts, out) == len(plaintext)
        assert out == plaintext


def _cut(piece: bytes | bytearray, rng: random.Random) -> list[memoryview]:
    view = memoryview(piece)
    cuts = sorted(rng.randint(0, len(view)) for _ in range(rng.randint(0, 6)))
    return [view[a:b] for a, b in zip([0, *cuts], [*cuts, len(view)], strict=True)]


@settings(max_examples=40, deadline=None)
@given(segment=segments(), seed=st.integers(0, 2**32))
def test_ranged_reads(segment: tuple[RedundancyScheme, int, bytes], seed: int) -> None:
    scheme, block_size, plaintext = segment
    rng = random.Random(seed)
    layout = SegmentLayout(len(plaintext), block_size, scheme)
    coder = ErasureCoder(scheme)
    cipher = SegmentCipher(new_data_key(), 0)
    pieces = encode_blocks(cipher, coder, layout, 0, plaintext)
    for _ in range(4):
        start, end = sorted(rng.randint(0, len(plaintext)) for _ in range(2))
        blocks = layout.blocks_for(start, end)
        p0, p1 = layout.piece_range(blocks)
        chosen = rng.sample(range(scheme.total), scheme.k)
        got = decode_blocks(
            cipher, coder, layout, blocks, {i: memoryview(pieces[i])[p0:p1] for i in chosen}
        )
        first = layout.plain_range(blocks)[0]
        assert got[start - first : end - first] == plaintext[start:end]


def piece_roots(pieces: list[bytearray]) -> list[bytes]:
    roots = []
    for piece in pieces:
        builder = MerkleBuilder(128)
        builder.update(piece)
        roots.append(builder.finish()[0])
    return roots


@settings(max_examples=40, deadline=None)
@given(segment=segments(), seed=st.integers(0, 2**32))
def test_a_flipped_bit_is_never_wrong_data(
    segment: tuple[RedundancyScheme, int, bytes], seed: int
) -> None:
    scheme, block_size, plaintext = segment
    if not plaintext:
        return
    rng = random.Random(seed)
    layout = SegmentLayout(len(plaintext), block_size, scheme)
    coder = ErasureCoder(scheme)
    cipher = SegmentCipher(new_data_key(), 1)
    pieces = encode_blocks(cipher, coder, layout, 0, plaintext)
    roots = piece_roots(pieces)
    victim = rng.randrange(scheme.total)
    bit = rng.randrange(len(pieces[victim]) * 8)
    pieces[victim][bit // 8] ^= 1 << (bit % 8)
    # The piece's Merkle root always catches it.
    assert piece_roots(pieces)[victim] != roots[victim]
    # Decoding through the corrupt piece raises or, where the bit was never used
    # (a header field, padding), returns the exact plaintext: never wrong bytes.
    others = [i for i in range(scheme.total) if i != victim]
    chosen = [victim, *rng.sample(others, scheme.k - 1)]
    blocks = range(layout.block_count)
    try:
        got = decode_blocks(cipher, coder, layout, blocks, {i: pieces[i] for i in chosen})
    except IntegrityError:
        return
    assert got == plaintext


@pytest.mark.parametrize("k, total", [(1, 2), (2, 3), (4, 6), (8, 14)])
def test_flipped_payload_bits_raise(k: int, total: int) -> None:
    """Every bit that carries stripe data is covered by the tag, through either
    decode path (data pieces directly, or RS with a parity piece)."""
    scheme = RedundancyScheme(k, k, total, total)
    block_size = 300
    plaintext = hashlib.shake_256(b"payload").digest(3 * block_size + 50)
    layout = SegmentLayout(len(plaintext), block_size, scheme)
    coder = ErasureCoder(scheme)
    cipher = SegmentCipher(new_data_key(), 2)
    pieces = encode_blocks(cipher, coder, layout, 0, plaintext)
    blocks = range(layout.block_count)
    rng = random.Random(k)
    for victim in range(total):
        # Piece 0 holds no padding, so with it missing every parity byte is used.
        chosen = list(range(k)) if victim < k else [victim, *range(1, k)]
        for _ in range(20):
            stripe = rng.randrange(layout.block_count)
            offset = layout.piece_offset(stripe) + FRAGMENT_HEADER_SIZE
            payload = layout.fragment_size(stripe) - FRAGMENT_HEADER_SIZE
            pos = rng.randrange(payload)
            if victim < k and victim * payload + pos >= layout.stripe_len(stripe):
                continue  # zero padding of the last data fragment: carries nothing
            broken = {i: bytearray(pieces[i]) for i in chosen}
            broken[victim][offset + pos] ^= 1 << rng.randrange(8)
            with pytest.raises(IntegrityError):
                decode_blocks(cipher, coder, layout, blocks, broken)


def test_swapped_or_foreign_pieces_raise() -> None:
    scheme = RedundancyScheme(3, 3, 5, 5)
    plaintext = hashlib.shake_256(b"swap").digest(1000)
    layout = SegmentLayout(len(plaintext), 256, scheme)
    coder = ErasureCoder(scheme)
    cipher = SegmentCipher(new_data_key(), 0)
    pieces = encode_blocks(cipher, coder, layout, 0, plaintext)
    blocks = range(layout.block_count)
    with pytest.raises(IntegrityError):
        decode_blocks(cipher, coder, layout, blocks, {0: pieces[1], 1: pieces[0], 2: pieces[2]})
    other = encode_blocks(SegmentCipher(new_data_key(), 0), coder, layout, 0, plaintext)
    with pytest.raises(IntegrityError):
        decode_blocks(cipher, coder, layout, blocks, {0: pieces[0], 1: other[1], 2: pieces[2]})
    with pytest.raises(IntegrityError):
        decode_blocks(
            SegmentCipher(new_data_key(), 0), coder, layout, blocks, dict(enumerate(pieces))
        )
    with pytest.raises(IntegrityError):  # same key, another segment number
        decode_blocks(SegmentCipher(b"\0" * 32, 1), coder, layout, blocks, dict(enumerate(pieces)))


def test_encode_blocks_into_reuses_buffers() -> None:
    scheme = RedundancyScheme(4, 5, 6, 6)
    plaintext = hashlib.shake_256(b"into").digest(5000)
    layout = SegmentLayout(len(plaintext), 1000, scheme)
    coder = ErasureCoder(scheme)
    cipher = SegmentCipher(new_data_key(), 0)
    expected = encode_blocks(cipher, coder, layout, 0, plaintext)
    outs = [bytearray(layout.piece_size + 10) for _ in range(6)]
    for first in range(0, 5, 2):
        blocks = range(first, min(first + 2, 5))
        s, e = layout.plain_range(blocks)
        p0, p1 = layout.piece_range(blocks)
        n = encode_blocks_into(cipher, coder, layout, first, plaintext[s:e], outs)
        assert n == p1 - p0
        assert [bytes(o[:n]) for o in outs] == [bytes(p[p0:p1]) for p in expected]
    with pytest.raises(CodecError):
        encode_blocks_into(cipher, coder, layout, 0, plaintext, outs[:5])
    with pytest.raises(CodecError):
        encode_blocks_into(cipher, coder, layout, 0, plaintext, [bytearray(10)] * 6)


def test_encode_blocks_rejects_partial_blocks_and_bad_arguments() -> None:
    scheme = RedundancyScheme(2, 2, 3, 3)
    layout = SegmentLayout(250, 100, scheme)
    coder = ErasureCoder(scheme)
    cipher = SegmentCipher(new_data_key(), 0)
    data = bytes(250)
    with pytest.raises(CodecError):
        encode_blocks(cipher, coder, layout, 0, data[:150])  # cut mid-block
    with pytest.raises(CodecError):
        encode_blocks(cipher, coder, layout, 1, data[:100] + b"x")  # block 2 is 50 bytes
    with pytest.raises(CodecError):
        encode_blocks(cipher, coder, layout, 3, data[:1])  # past the segment
    with pytest.raises(CodecError):
        encode_blocks(cipher, ErasureCoder(RedundancyScheme(2, 2, 4, 4)), layout, 0, data)
    whole = encode_blocks(cipher, coder, layout, 0, data)
    p0, p1 = layout.piece_range(range(2, 3))
    assert encode_blocks(cipher, coder, layout, 2, data[200:]) == [p[p0:p1] for p in whole]
    empty = encode_blocks(cipher, coder, layout, 0, b"")
    assert empty == [bytearray(), bytearray(), bytearray()]


def test_decode_blocks_rejects_wrong_piece_ranges() -> None:
    scheme = RedundancyScheme(2, 2, 3, 3)
    plaintext = bytes(range(250))
    layout = SegmentLayout(250, 100, scheme)
    coder = ErasureCoder(scheme)
    cipher = SegmentCipher(new_data_key(), 0)
    pieces = encode_blocks(cipher, coder, layout, 0, plaintext)
    p0, p1 = layout.piece_range(range(1, 3))
    with pytest.raises(IntegrityError):  # bytes of the whole piece for two blocks
        decode_blocks(cipher, coder, layout, range(1, 3), {0: pieces[0], 1: pieces[1]})
    with pytest.raises(IntegrityError):  # right length, wrong place: block 0's fragments
        shifted = {i: pieces[i][: p1 - p0] for i in (0, 1)}
        decode_blocks(cipher, coder, layout, range(1, 3), shifted)
    with pytest.raises(CodecError):
        decode_blocks(cipher, coder, layout, range(1, 3), {0: pieces[0][p0:p1]})
    assert decode_blocks(cipher, coder, layout, range(0), {}) == b""
    assert decode_blocks_into(cipher, coder, layout, range(0), {}, bytearray()) == 0
    got = decode_blocks(cipher, coder, layout, range(1, 3), {i: pieces[i][p0:p1] for i in (0, 2)})
    assert got == plaintext[100:]
