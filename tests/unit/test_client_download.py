"""How a segment reader cuts a range into windows (each costs every node it reads a request)."""

from __future__ import annotations

import pytest

from skymesh.client.download import WINDOW_GROWTH, split_windows


@pytest.mark.parametrize(
    ("blocks", "windows"),
    [
        (range(0, 129), [(0, 4), (4, 129)]),  # boto3's 8 MiB part: 2 requests per node, not 3
        (range(0, 3), [(0, 3)]),
        (range(0, 7), [(0, 7)]),  # a tail under a window joins it, even the first
        (range(0, 8), [(0, 4), (4, 8)]),
        (range(10, 200), [(10, 14), (14, 78), (78, 200)]),
        (range(5, 5), []),
    ],
)
def test_a_short_tail_joins_the_window_before_it(
    blocks: range, windows: list[tuple[int, int]]
) -> None:
    assert [(w.start, w.stop) for w in split_windows(blocks)] == windows


def test_windows_cover_the_range_and_stay_under_twice_the_largest() -> None:
    largest = max(WINDOW_GROWTH)
    for n in range(0, 700, 7):
        windows = split_windows(range(3, 3 + n))
        assert [b for w in windows for b in w] == list(range(3, 3 + n))
        assert all(len(w) < 2 * largest for w in windows)
