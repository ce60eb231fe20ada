"""How a segment reader cuts a range into windows (each costs every node it reads a request)."""

from __future__ import annotations

import pytest

from skymesh.client.download import TAIL_JOIN, WINDOW_GROWTH, split_windows


@pytest.mark.parametrize(
    ("blocks", "windows"),
    [
        (range(0, 129), [(0, 4), (4, 68), (68, 129)]),  # boto3's 8 MiB part
        (range(0, 3), [(0, 3)]),
        (range(0, 7), [(0, 7)]),  # a short tail joins the window before it, even the first
        (range(0, 12), [(0, 12)]),
        (range(0, 14), [(0, 4), (4, 14)]),
        (range(0, 76), [(0, 4), (4, 76)]),  # 64 + a tail of 8
        (range(0, 77), [(0, 4), (4, 68), (68, 77)]),
        (range(10, 200), [(10, 14), (14, 78), (78, 142), (142, 200)]),
        (range(5, 5), []),
    ],
)
def test_only_a_short_tail_joins_the_window_before_it(
    blocks: range, windows: list[tuple[int, int]]
) -> None:
    assert [(w.start, w.stop) for w in split_windows(blocks)] == windows


def test_windows_cover_the_range_and_stay_within_the_largest_and_a_tail() -> None:
    largest = max(WINDOW_GROWTH)
    for n in range(0, 700, 7):
        windows = split_windows(range(3, 3 + n))
        assert [b for w in windows for b in w] == list(range(3, 3 + n))
        assert all(len(w) <= largest + TAIL_JOIN for w in windows)
