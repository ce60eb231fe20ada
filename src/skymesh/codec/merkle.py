"""BLAKE3 Merkle trees over fixed-size chunks of a piece.

The coordinator keeps each piece's root; a node proves it holds chunk i by sending
the chunk and a log-sized inclusion proof, and readers check every chunk they use.

The tree has RFC 6962's shape (split at the largest power of two below n), with
0x00/0x01 prefixes on leaf and inner hashes so a leaf can never pass for an inner
node (second-preimage attack on unbalanced trees). Built bottom-up, carrying an odd
last node up unchanged, which gives exactly the RFC 6962 tree.
"""

from __future__ import annotations

from collections.abc import Sequence

from blake3 import blake3

from skymesh.errors import CodecError

DEFAULT_CHUNK_SIZE = 64 * 1024
HASH_SIZE = 32

Buffer = bytes | bytearray | memoryview

_LEAF = b"\x00"
_NODE = b"\x01"
EMPTY_ROOT: bytes = blake3(b"").digest()


def leaf_hash(chunk: Buffer) -> bytes:
    # One call over prefix + chunk, copy and all, is 25 % faster than hashing the
    # prefix and then the chunk: BLAKE3 hashes 1 KiB chunks of its input 16 at a
    # time (AVX-512) only where they start at a multiple of their count, and the
    # chunk streamed in after one byte starts each at one off, so the first few
    # KiB of every leaf went through one lane at a time. A 64 KiB copy costs less.
    digest: bytes = blake3(_LEAF + chunk).digest()
    return digest


def _node(left: bytes, right: bytes) -> bytes:
    digest: bytes = blake3(_NODE + left + right).digest()
    return digest


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [_node(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(above)
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    return _levels(leaves)[-1][0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from the leaf up (RFC 6962 audit path order)."""
    if not 0 <= index < len(leaves):
        raise CodecError(f"leaf {index} out of range for {len(leaves)} leaves")
    proof = []
    for level in _levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):  # else this node is carried up unpaired
            proof.append(level[sibling])
        index //= 2
    return proof


def verify_inclusion(
    root: bytes, index: int, leaf_count: int, leaf: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.3.2, with our hash prefixes; ``leaf`` is the leaf hash."""
    if not 0 <= index < leaf_count:
        return False
    fn, sn, r = index, leaf_count - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def _byte_view(data: Buffer) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def chunk_hashes(data: Buffer, chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[bytes]:
    _check_chunk_size(chunk_size)
    view = _byte_view(data)
    return [leaf_hash(view[i : i + chunk_size]) for i in range(0, len(view), chunk_size)]


def _check_chunk_size(chunk_size: int) -> None:
    if chunk_size < 1:
        raise CodecError(f"chunk size must be positive, got {chunk_size}")


class MerkleBuilder:
    """Leaf hashes of a piece as it streams past, in slices of any size."""

    __slots__ = ("_open", "chunk_size", "leaves", "size")

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        _check_chunk_size(chunk_size)
        self.chunk_size = chunk_size
        self.leaves: list[bytes] = []
        self.size = 0
        # The open chunk (size % chunk_size bytes so far) behind the leaf prefix,
        # hashed in one call once whole (see leaf_hash for why not incrementally).
        self._open = bytearray(_LEAF)

    def update(self, data: Buffer) -> None:
        view = _byte_view(data)
        n = len(view)
        pos = 0
        cs = self.chunk_size
        filled = len(self._open) - 1
        if filled:
            take = min(cs - filled, n)
            self._open += view[:take]
            pos = take
            if filled + take == cs:
                self.leaves.append(blake3(self._open).digest())
                del self._open[1:]
        while n - pos >= cs:
            self.leaves.append(leaf_hash(view[pos : pos + cs]))
            pos += cs
        if pos < n:
            self._open += view[pos:]
        self.size += n

    def finish(self) -> tuple[bytes, list[bytes]]:
        """Close the last (short) chunk; returns (root, leaf hashes)."""
        if len(self._open) > 1:
            self.leaves.append(blake3(self._open).digest())
            del self._open[1:]
        return merkle_root(self.leaves), list(self.leaves)


def verify_chunks(
    root: bytes, leaves: Sequence[bytes], chunk_size: int, offset: int, data: Buffer
) -> bool:
    """Check that ``leaves`` make ``root`` and that ``data`` (starting at the
    chunk-aligned ``offset`` of the piece) matches the leaves it covers.

    Only the piece's last chunk may be short, so a short tail elsewhere fails.
    """
    _check_chunk_size(chunk_size)
    if offset < 0 or offset % chunk_size:
        return False
    if merkle_root(leaves) != root:
        return False
    view = _byte_view(data)
    first = offset // chunk_size
    for n, pos in enumerate(range(0, len(view), chunk_size)):
        index = first + n
        if index >= len(leaves):
            return False
        chunk = view[pos : pos + chunk_size]
        if len(chunk) < chunk_size and index != len(leaves) - 1:
            return False
        if leaf_hash(chunk) != leaves[index]:
            return False
    return True
