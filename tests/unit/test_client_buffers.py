"""BufferPool: segment buffers reused across uploads, within a memory budget."""

from __future__ import annotations

from skymesh.client.buffers import MIN_POOLED, BufferPool

MiB = 1024 * 1024


def test_reuses_a_given_buffer_of_the_same_size() -> None:
    pool = BufferPool(max_bytes=32 * MiB)
    a = pool.take(8 * MiB)
    pool.give(a)
    assert pool.held == 8 * MiB
    assert pool.take(8 * MiB) is a
    assert pool.held == 0
    assert len(pool.take(4 * MiB)) == 4 * MiB  # another size: a new one


def test_budget_drops_the_oldest() -> None:
    pool = BufferPool(max_bytes=16 * MiB)
    first, second, third = (bytearray(8 * MiB) for _ in range(3))
    for b in (first, second, third):
        pool.give(b)
    assert pool.held == 16 * MiB
    kept = {id(pool.take(8 * MiB)), id(pool.take(8 * MiB))}
    assert kept == {id(second), id(third)}


def test_small_and_oversized_buffers_are_not_kept() -> None:
    pool = BufferPool(max_bytes=4 * MiB)
    pool.give(bytearray(MIN_POOLED - 1))
    pool.give(bytearray(8 * MiB))
    assert pool.held == 0
