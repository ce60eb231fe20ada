"""How a segment reader cuts a range into parts (each one decode; a range is one request per node)."""

from __future__ import annotations

import pytest

from skymesh.client.download import PART_GROWTH, split_parts


@pytest.mark.parametrize(
    ("blocks", "parts"),
    [
        (range(0, 129), [(0, 4), (4, 36), (36, 68), (68, 100), (100, 129)]),  # boto3's 8 MiB
        (range(0, 3), [(0, 3)]),
        (range(0, 7), [(0, 4), (4, 7)]),
        (range(0, 36), [(0, 4), (4, 36)]),
        (range(0, 37), [(0, 4), (4, 36), (36, 37)]),
        (range(10, 80), [(10, 14), (14, 46), (46, 78), (78, 80)]),
        (range(5, 5), []),
    ],
)
def test_a_small_first_part_then_parts_of_the_largest_size(
    blocks: range, parts: list[tuple[int, int]]
) -> None:
    assert [(p.start, p.stop) for p in split_parts(blocks)] == parts


def test_parts_cover_the_range_and_stay_within_the_largest() -> None:
    largest = max(PART_GROWTH)
    for n in range(0, 700, 7):
        parts = split_parts(range(3, 3 + n))
        assert [b for p in parts for b in p] == list(range(3, 3 + n))
        assert all(len(p) <= largest for p in parts)
