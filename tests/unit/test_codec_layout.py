from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.codec import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_SCHEME,
    TAG_SIZE,
    ErasureCoder,
    RedundancyScheme,
    SegmentLayout,
    locate,
)
from skymesh.errors import CodecError

SMALL = RedundancyScheme(3, 4, 5, 5)


def test_default_segment_shape() -> None:
    layout = SegmentLayout(64 * 1024 * 1024, DEFAULT_BLOCK_SIZE, DEFAULT_SCHEME)
    assert DEFAULT_BLOCK_SIZE + TAG_SIZE == 65536
    assert layout.block_count == 1025  # 64 MiB is not a multiple of 65520
    assert layout.stripe_len(0) == 65536
    assert layout.fragment_size(0) == 80 + 65536 // 8
    last = 64 * 1024 * 1024 - 1024 * DEFAULT_BLOCK_SIZE
    assert layout.block_range(1024) == (1024 * DEFAULT_BLOCK_SIZE, 64 * 1024 * 1024)
    assert layout.stripe_len(1024) == last + TAG_SIZE
    assert layout.piece_size == 1024 * 8272 + 80 + -(-(last + TAG_SIZE) // 8)


def test_empty_segment() -> None:
    layout = SegmentLayout(0, 100, SMALL)
    assert layout.block_count == 0
    assert layout.piece_size == 0
    assert layout.blocks_for(0, 0) == range(0)
    assert layout.piece_range(range(0)) == (0, 0)
    assert layout.stripe_lens(range(0)) == []
    with pytest.raises(CodecError):
        layout.block_range(0)


@pytest.mark.parametrize(
    "plain_size, block_size", [(1, 100), (99, 100), (100, 100), (101, 100), (1000, 100), (1001, 7)]
)
def test_layout_matches_real_encoding(plain_size: int, block_size: int) -> None:
    layout = SegmentLayout(plain_size, block_size, SMALL)
    coder = ErasureCoder(SMALL)
    blocks = range(layout.block_count)
    lens = layout.stripe_lens(blocks)
    assert sum(n - TAG_SIZE for n in lens) == plain_size
    pieces = coder.encode_stripes([bytes(n) for n in lens])
    assert len(pieces[0]) == layout.piece_size
    for i in blocks:
        assert layout.piece_offset(i + 1) - layout.piece_offset(i) == layout.fragment_size(i)
        assert layout.fragment_size(i) == coder.fragment_size(layout.stripe_len(i))
    assert layout.piece_offset(layout.block_count) == layout.piece_size


@settings(max_examples=60, deadline=None)
@given(
    plain_size=st.integers(0, 5000),
    block_size=st.integers(1, 600),
    a=st.integers(0, 5000),
    b=st.integers(0, 5000),
)
def test_blocks_for_covers_exactly_the_range(
    plain_size: int, block_size: int, a: int, b: int
) -> None:
    layout = SegmentLayout(plain_size, block_size, SMALL)
    start, end = sorted((a % (plain_size + 1), b % (plain_size + 1)))
    blocks = layout.blocks_for(start, end)
    if start == end:
        assert len(blocks) == 0
        return
    first, last = layout.block_range(blocks.start), layout.block_range(blocks.stop - 1)
    assert first[0] <= start < first[1]
    assert last[0] < end <= last[1]
    assert layout.plain_range(blocks) == (first[0], last[1])
    p0, p1 = layout.piece_range(blocks)
    assert p1 - p0 == sum(layout.fragment_size(i) for i in blocks)


def test_range_errors() -> None:
    layout = SegmentLayout(1000, 100, SMALL)
    for start, end in [(-1, 5), (5, 4), (0, 1001)]:
        with pytest.raises(CodecError):
            layout.blocks_for(start, end)
    for blocks in [range(0, 11), range(-1, 2), range(0, 10, 2)]:
        with pytest.raises(CodecError):
            layout.piece_range(blocks)
    with pytest.raises(CodecError):
        layout.piece_offset(11)
    with pytest.raises(CodecError):
        SegmentLayout(-1, 100, SMALL)
    with pytest.raises(CodecError):
        SegmentLayout(10, 0, SMALL)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300), max_size=8),
    a=st.integers(0, 3000),
    b=st.integers(0, 3000),
)
def test_locate_covers_exactly_the_range(sizes: list[int], a: int, b: int) -> None:
    total = sum(sizes)
    start, end = sorted((a % (total + 1), b % (total + 1)))
    parts = locate(sizes, start, end)
    bases = [sum(sizes[:i]) for i in range(len(sizes))]
    covered = [bases[seg] + i for seg, s, e in parts for i in range(s, e)]
    assert covered == list(range(start, end))
    for seg, s, e in parts:
        assert 0 <= s < e <= sizes[seg]  # never an empty or overflowing part
    assert [seg for seg, _, _ in parts] == sorted({seg for seg, _, _ in parts})


def test_locate_examples_and_errors() -> None:
    assert locate([10, 10, 5], 5, 22) == [(0, 5, 10), (1, 0, 10), (2, 0, 2)]
    assert locate([10, 0, 10], 10, 11) == [(2, 0, 1)]
    assert locate([1, 0, 1], 0, 2) == [(0, 0, 1), (2, 0, 1)]
    assert locate([10], 3, 3) == []
    assert locate([], 0, 0) == []
    with pytest.raises(CodecError):
        locate([10, 10], 5, 21)
    with pytest.raises(CodecError):
        locate([10, -1], 0, 5)
