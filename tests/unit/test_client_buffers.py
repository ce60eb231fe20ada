"""BufferPool: segment buffers lent under one memory budget, and reused across uploads;
ReusedBuffer: a reader's output buffer, written again only once nothing holds a view of it."""

from __future__ import annotations

import asyncio

import pytest

from skymesh.client.buffers import MIN_POOLED, BufferPool, ReusedBuffer, SlowDown, unshared

MiB = 1024 * 1024


async def test_reuses_a_given_buffer_of_the_same_size() -> None:
    pool = BufferPool(keep_bytes=32 * MiB)
    a = await pool.take(8 * MiB)
    pool.give(a)
    assert pool.held == 8 * MiB and pool.lent == 0
    assert await pool.take(8 * MiB) is a
    assert pool.held == 0 and pool.lent == 8 * MiB
    assert len(await pool.take(4 * MiB)) == 4 * MiB  # another size: a new one


async def test_kept_buffers_drop_the_oldest() -> None:
    pool = BufferPool(keep_bytes=16 * MiB)
    taken = [await pool.take(8 * MiB) for _ in range(3)]
    for b in taken:
        pool.give(b)
    assert pool.held == 16 * MiB
    kept = {id(await pool.take(8 * MiB)), id(await pool.take(8 * MiB))}
    assert kept == {id(taken[1]), id(taken[2])}


async def test_small_and_oversized_buffers_are_not_kept() -> None:
    pool = BufferPool(keep_bytes=4 * MiB)
    pool.give(await pool.take(MIN_POOLED - 1))
    pool.give(await pool.take(8 * MiB))
    assert pool.held == 0 and pool.lent == 0


async def test_a_buffer_that_may_still_be_read_is_not_reused() -> None:
    pool = BufferPool(budget=16 * MiB)
    a = await pool.take(8 * MiB)
    pool.give(a, reuse=False)
    assert pool.held == 0 and pool.lent == 0  # its bytes are back in the budget
    assert await pool.take(8 * MiB) is not a


async def test_past_the_budget_a_loan_waits_then_is_refused() -> None:
    pool = BufferPool(budget=16 * MiB, wait=0.1)
    held = [await pool.take(8 * MiB), await pool.take(8 * MiB)]
    assert pool.try_take(1) is None
    with pytest.raises(SlowDown) as e:
        await pool.take(8 * MiB)
    assert e.value.status == 503 and e.value.code == "SlowDown"
    assert pool.lent == 16 * MiB and pool.refused == 1
    with pytest.raises(SlowDown):
        await pool.take(17 * MiB)  # never fits: refused without waiting
    pool.give(held.pop())
    assert len(await pool.take(8 * MiB)) == 8 * MiB


async def test_a_waiting_loan_gets_a_returned_buffer() -> None:
    pool = BufferPool(budget=16 * MiB, wait=5.0)
    held = await pool.take(16 * MiB)
    waiting = asyncio.create_task(pool.take(8 * MiB))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    pool.give(held)
    assert len(await asyncio.wait_for(waiting, 1.0)) == 8 * MiB
    assert pool.lent == 8 * MiB


async def test_kept_buffers_make_room_for_loans() -> None:
    pool = BufferPool(budget=16 * MiB, keep_bytes=16 * MiB)
    pool.give(await pool.take(8 * MiB))
    pool.give(await pool.take(4 * MiB))
    assert pool.held == 12 * MiB
    await pool.take(16 * MiB)  # the kept ones are dropped to stay within the budget
    assert pool.held == 0 and pool.lent == 16 * MiB


def test_a_buffer_is_unshared_only_once_every_view_of_it_is_gone() -> None:
    buf = bytearray(b"abc")
    view = memoryview(buf)[1:]
    derived = memoryview(view)  # as a transport's queue keeps a slice of what it got
    view.release()
    assert not unshared(buf)
    derived.release()
    assert unshared(buf) and buf == b"abc"  # the test leaves the bytes as they were


def test_a_reused_buffer_kept_by_a_view_is_never_written_again() -> None:
    pool = BufferPool()
    out = ReusedBuffer(pool)
    first = out.take(MIN_POOLED)
    first[:3] = b"one"
    kept = first[:3]  # a consumer (or a transport) still holds the first part
    first.release()
    second = out.take(MIN_POOLED)
    second[:3] = b"two"
    assert bytes(kept) == b"one" and out.replaced == 1
    second.release()
    out.close()
    assert pool.held == MIN_POOLED and pool.lent == 0  # the unshared one went back
