"""A Bloom filter of piece ids: what a node should keep, in about 10 bits a piece.

The coordinator builds one per node from its metadata and the node deletes what
the filter does not contain (``coordinator/retain.py``, ``node/retain.py``), as
Storj's garbage collection does. A Bloom filter never answers "no" for a member,
so a piece the coordinator references is never deleted; about ``fp_rate`` of
the garbage survives each round. Every filter has its own random ``seed``, so
the pieces that survive one round by chance are not the ones that survive the
next.

Indexes are ``h1 + i * h2 mod m`` (Kirsch and Mitzenmacher's double hashing)
from one keyed BLAKE3 of the piece id. Pure: no I/O, usable by every role.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable

import blake3

from skymesh.errors import CodecError

BLOOM_DOMAIN = b"skymesh/bloom/v1"
DEFAULT_FP_RATE = 0.01
MAX_HASHES = 32
MAX_BITS = 8 * 256 * 1024 * 1024  # 256 MiB of filter: ~200 million pieces at 1%


def optimal_size(count: int, fp_rate: float) -> tuple[int, int]:
    """(bits, hashes) for ``count`` members at false-positive rate ``fp_rate``."""
    if not 0 < fp_rate < 1:
        raise CodecError(f"false-positive rate must be in (0, 1), not {fp_rate}")
    n = max(1, count)
    bits = math.ceil(-n * math.log(fp_rate) / (math.log(2) ** 2))
    bits = max(64, (bits + 7) // 8 * 8)
    hashes = max(1, min(MAX_HASHES, round(bits / n * math.log(2))))
    return bits, hashes


class BloomFilter:
    """A set of piece ids (64 hex chars) that may answer "yes" for a non-member."""

    __slots__ = ("_key", "bits", "hashes", "num_bits", "seed")

    def __init__(self, num_bits: int, hashes: int, seed: bytes, bits: bytes | None = None):
        if not 8 <= num_bits <= MAX_BITS or num_bits % 8:
            raise CodecError(f"filter of {num_bits} bits: need a multiple of 8 in 8..{MAX_BITS}")
        if not 1 <= hashes <= MAX_HASHES:
            raise CodecError(f"filter with {hashes} hashes: need 1..{MAX_HASHES}")
        if len(seed) != 32:
            raise CodecError("filter seed must be 32 bytes")
        if bits is not None and len(bits) != num_bits // 8:
            raise CodecError(f"filter of {num_bits} bits needs {num_bits // 8} bytes")
        self.num_bits = num_bits
        self.hashes = hashes
        self.seed = seed
        self.bits = bytearray(bits) if bits is not None else bytearray(num_bits // 8)
        self._key = blake3.blake3(BLOOM_DOMAIN + seed).digest()

    @classmethod
    def for_count(
        cls, count: int, fp_rate: float = DEFAULT_FP_RATE, seed: bytes | None = None
    ) -> BloomFilter:
        """An empty filter sized for ``count`` members at ``fp_rate``."""
        bits, hashes = optimal_size(count, fp_rate)
        return cls(bits, hashes, seed if seed is not None else secrets.token_bytes(32))

    def _indexes(self, piece_id: str) -> Iterable[int]:
        try:
            raw = bytes.fromhex(piece_id)
        except ValueError:
            raw = piece_id.encode()
        d = blake3.blake3(raw, key=self._key).digest(16)
        h1 = int.from_bytes(d[:8], "little")
        h2 = int.from_bytes(d[8:], "little") | 1
        m = self.num_bits
        return ((h1 + i * h2) % m for i in range(self.hashes))

    def add(self, piece_id: str) -> None:
        bits = self.bits
        for i in self._indexes(piece_id):
            bits[i >> 3] |= 1 << (i & 7)

    def update(self, piece_ids: Iterable[str]) -> None:
        for piece_id in piece_ids:
            self.add(piece_id)

    def __contains__(self, piece_id: str) -> bool:
        bits = self.bits
        return all(bits[i >> 3] & (1 << (i & 7)) for i in self._indexes(piece_id))

    def to_bytes(self) -> bytes:
        return bytes(self.bits)
