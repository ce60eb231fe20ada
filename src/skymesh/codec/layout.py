"""Where every byte of a segment lives, by arithmetic alone.

Plaintext is cut into blocks; block i encrypts to stripe i (block + tag); stripe
i's fragment sits at the same offset in every piece. So any plaintext range maps
to one contiguous byte range of each piece, and a ranged read fetches from k nodes
only the fragments of the blocks it needs. Ranges are half-open [start, end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from skymesh.codec.crypto import TAG_SIZE
from skymesh.codec.erasure import fragment_size_for
from skymesh.codec.scheme import RedundancyScheme
from skymesh.errors import CodecError

#: Plaintext per AES-GCM block: with its tag, a stripe of exactly 64 KiB.
DEFAULT_BLOCK_SIZE = 64 * 1024 - TAG_SIZE


def _check_range(start: int, end: int, size: int) -> None:
    if not 0 <= start <= end <= size:
        raise CodecError(f"range [{start}, {end}) is outside [0, {size})")


@dataclass(frozen=True)
class SegmentLayout:
    plain_size: int
    block_size: int
    scheme: RedundancyScheme

    def __post_init__(self) -> None:
        if self.plain_size < 0:
            raise CodecError(f"segment size must not be negative, got {self.plain_size}")
        if self.block_size < 1:
            raise CodecError(f"block size must be positive, got {self.block_size}")

    @property
    def block_count(self) -> int:
        return -(-self.plain_size // self.block_size)

    def _check_block(self, i: int) -> None:
        if not 0 <= i < self.block_count:
            raise CodecError(f"block {i} out of range for {self.block_count} blocks")

    def block_range(self, i: int) -> tuple[int, int]:
        self._check_block(i)
        start = i * self.block_size
        return start, min(start + self.block_size, self.plain_size)

    def stripe_len(self, i: int) -> int:
        start, end = self.block_range(i)
        return end - start + TAG_SIZE

    def fragment_size(self, i: int) -> int:
        return fragment_size_for(self.scheme.k, self.stripe_len(i))

    @property
    def _full_fragment(self) -> int:
        return fragment_size_for(self.scheme.k, self.block_size + TAG_SIZE)

    @property
    def piece_size(self) -> int:
        return self.piece_offset(self.block_count)

    def piece_offset(self, i: int) -> int:
        """Start of stripe i's fragment in every piece; ``block_count`` gives the end."""
        if i == self.block_count:
            if i == 0:
                return 0
            return (i - 1) * self._full_fragment + self.fragment_size(i - 1)
        self._check_block(i)
        return i * self._full_fragment  # all blocks before the last are full

    def blocks_for(self, start: int, end: int) -> range:
        """The blocks that plaintext [start, end) touches."""
        _check_range(start, end, self.plain_size)
        if start == end:
            return range(0)
        return range(start // self.block_size, (end - 1) // self.block_size + 1)

    def _check_blocks(self, blocks: range) -> None:
        if blocks.step != 1:
            raise CodecError("blocks must be a contiguous range")
        if len(blocks) and not 0 <= blocks.start < blocks.stop <= self.block_count:
            raise CodecError(f"blocks {blocks} out of range for {self.block_count} blocks")

    def plain_range(self, blocks: range) -> tuple[int, int]:
        """Plaintext bytes of ``blocks``: where decode_blocks' output starts and ends."""
        self._check_blocks(blocks)
        if not blocks:
            return 0, 0
        return self.block_range(blocks.start)[0], self.block_range(blocks.stop - 1)[1]

    def piece_range(self, blocks: range) -> tuple[int, int]:
        """The bytes of each piece that hold ``blocks``' fragments."""
        self._check_blocks(blocks)
        if not blocks:
            return 0, 0
        return self.piece_offset(blocks.start), self.piece_offset(blocks.stop)

    def stripe_lens(self, blocks: range) -> list[int]:
        self._check_blocks(blocks)
        if not blocks:
            return []
        full = self.block_size + TAG_SIZE
        lens = [full] * len(blocks)
        lens[-1] = self.stripe_len(blocks.stop - 1)
        return lens


def locate(segment_sizes: Sequence[int], start: int, end: int) -> list[tuple[int, int, int]]:
    """Segments that object range [start, end) touches: (segment, start, end) within each."""
    for number, size in enumerate(segment_sizes):
        if size < 0:
            raise CodecError(f"segment {number} has negative size {size}")
    _check_range(start, end, sum(segment_sizes))
    out: list[tuple[int, int, int]] = []
    if start == end:
        return out
    base = 0
    for number, size in enumerate(segment_sizes):
        seg_end = base + size
        lo, hi = max(start, base), min(end, seg_end)
        if lo < hi:  # empty segments and untouched ones contribute nothing
            out.append((number, lo - base, hi - base))
        if seg_end >= end:
            break
        base = seg_end
    return out
