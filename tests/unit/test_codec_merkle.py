from __future__ import annotations

import hashlib
import itertools

import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.codec import (
    DEFAULT_CHUNK_SIZE,
    MerkleBuilder,
    chunk_hashes,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    verify_chunks,
    verify_inclusion,
)
from skymesh.errors import CodecError


def h(data: bytes) -> bytes:
    digest: bytes = blake3(data).digest()
    return digest


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH, recursive, straight from the text."""
    n = len(leaves)
    if n == 0:
        return h(b"")
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return h(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:]))


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n <= 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*reference_path(m, leaves[:k]), reference_root(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), reference_root(leaves[:k])]


def make_leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_hash_prefixes() -> None:
    assert leaf_hash(b"abc") == h(b"\x00abc")
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert merkle_root([a, b]) == h(b"\x01" + a + b)
    assert merkle_root([]) == h(b"")
    assert merkle_root([a]) == a


def test_root_and_proofs_match_rfc6962_for_every_size() -> None:
    for n in range(0, 70):
        leaves = make_leaves(n)
        root = merkle_root(leaves)
        assert root == reference_root(leaves), n
        for i in range(n):
            proof = inclusion_proof(leaves, i)
            assert proof == reference_path(i, leaves), (n, i)
            assert len(proof) <= max(0, (n - 1).bit_length())
            assert verify_inclusion(root, i, n, leaves[i], proof)


def test_proofs_fail_for_wrong_leaf_index_size_or_root() -> None:
    for n in [1, 2, 3, 5, 8, 13, 33]:
        leaves = make_leaves(n)
        root = merkle_root(leaves)
        other = leaf_hash(b"not a leaf")
        for i in range(n):
            proof = inclusion_proof(leaves, i)
            assert not verify_inclusion(root, i, n, other, proof)
            assert not verify_inclusion(h(b"other root"), i, n, leaves[i], proof)
            for j in range(n):
                if j != i and leaves[j] != leaves[i]:
                    assert not verify_inclusion(root, j, n, leaves[i], proof)
            # (A wrong leaf_count can still verify where both trees share the
            # leaf's path, e.g. leaf 0 of 3 or 4: the root is what binds.)
            assert not verify_inclusion(root, i, n, leaves[i], [*proof, other])
            if proof:
                assert not verify_inclusion(root, i, n, leaves[i], proof[:-1])
            assert not verify_inclusion(root, n, n, leaves[i], proof)
            assert not verify_inclusion(root, -1, n, leaves[i], proof)
    with pytest.raises(CodecError):
        inclusion_proof(make_leaves(3), 3)


def test_chunk_hashes() -> None:
    data = bytes(range(256)) * 10
    assert chunk_hashes(data, 1000) == [
        leaf_hash(data[:1000]),
        leaf_hash(data[1000:2000]),
        leaf_hash(data[2000:]),
    ]
    assert chunk_hashes(b"", 1000) == []
    assert chunk_hashes(data, 2560) == [leaf_hash(data)]
    with pytest.raises(CodecError):
        chunk_hashes(data, 0)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(0, 5000),
    chunk_size=st.integers(1, 700),
    cuts=st.lists(st.integers(0, 5000), max_size=12),
)
def test_builder_equals_one_shot_for_any_split(size: int, chunk_size: int, cuts: list[int]) -> None:
    data = hashlib.shake_256(b"merkle").digest(size)
    builder = MerkleBuilder(chunk_size)
    bounds = sorted({0, size, *(c % (size + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        piece = data[start:end]
        builder.update(memoryview(piece) if start % 2 else bytearray(piece))
    builder.update(b"")
    assert builder.size == size
    leaves = chunk_hashes(data, chunk_size)
    assert builder.finish() == (merkle_root(leaves), leaves)


def test_builder_default_chunk() -> None:
    builder = MerkleBuilder()
    assert builder.chunk_size == DEFAULT_CHUNK_SIZE
    assert builder.finish() == (merkle_root([]), [])


def test_verify_chunks() -> None:
    cs = 100
    data = hashlib.shake_256(b"piece").digest(950)
    leaves = chunk_hashes(data, cs)
    root = merkle_root(leaves)
    assert verify_chunks(root, leaves, cs, 0, data)
    assert verify_chunks(root, leaves, cs, 200, data[200:500])
    assert verify_chunks(root, leaves, cs, 900, data[900:])  # short chunk at the piece end
    assert verify_chunks(root, leaves, cs, 300, memoryview(data)[300:])
    assert verify_chunks(root, leaves, cs, 400, b"")
    # A short chunk anywhere but the end.
    assert not verify_chunks(root, leaves, cs, 200, data[200:450])
    # Unaligned offset, data past the end, wrong bytes, wrong root, tampered leaves.
    assert not verify_chunks(root, leaves, cs, 150, data[150:250])
    assert not verify_chunks(root, leaves, cs, 900, data[900:] + b"x" * 60)
    assert not verify_chunks(root, leaves, cs, 1000, data[:100])
    tampered = bytearray(data[200:500])
    tampered[123] ^= 0x10
    assert not verify_chunks(root, leaves, cs, 200, tampered)
    assert not verify_chunks(h(b"x"), leaves, cs, 0, data)
    assert not verify_chunks(root, [*leaves[:-1], leaves[0]], cs, 0, data[:100])
    assert not verify_chunks(root, leaves, cs, -100, data)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 3000), bit=st.integers(0, 2**20))
def test_any_flipped_bit_changes_the_root(size: int, bit: int) -> None:
    data = bytearray(hashlib.shake_256(b"flip").digest(size))
    builder = MerkleBuilder(256)
    builder.update(data)
    root, _ = builder.finish()
    bit %= size * 8
    data[bit // 8] ^= 1 << (bit % 8)
    builder = MerkleBuilder(256)
    builder.update(data)
    assert builder.finish()[0] != root
