"""The worker pool's bounds, and the stop-string scanner of the chat engine."""

from __future__ import annotations

import asyncio
import threading

import pytest

from skymesh.compute.engines import StopScanner
from skymesh.compute.errors import Overloaded
from skymesh.compute.pool import WorkerPool


async def test_pool_runs_at_most_concurrency_and_refuses_past_the_queue() -> None:
    pool = WorkerPool(concurrency=1, queue_limit=1)
    gate = threading.Event()
    try:

        async def job() -> str:
            async with pool.slot():
                return await pool.run(lambda: "done" if gate.wait(5) else "timeout")

        running = asyncio.create_task(job())
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(job())
        await asyncio.sleep(0.05)
        assert (pool.running, pool.waiting, pool.depth) == (1, 1, 2)
        with pytest.raises(Overloaded) as refused:
            await job()
        assert refused.value.status == 429 and refused.value.retry_after >= 1
        gate.set()
        assert await running == "done" and await waiting == "done"
        assert (pool.depth, pool.served, pool.refused) == (0, 2, 1)
        assert pool.latency_s > 0
    finally:
        gate.set()
        pool.close()


def test_pool_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        WorkerPool(concurrency=0)


@pytest.mark.parametrize(
    ("pieces", "stops", "emitted", "hit"),
    [
        (["Hel", "lo wor", "ld"], [], "Hello world", False),
        (["Hello", " EN", "D more"], ["END"], "Hello ", True),
        (["a<", "|x", "y"], ["<|stop|>"], "a<|xy", False),  # a partial match is released
        (["one", "\n\n", "two"], ["\n\n", "two"], "one", True),
    ],
)
def test_stop_scanner_cuts_at_the_first_stop(
    pieces: list[str], stops: list[str], emitted: str, hit: bool
) -> None:
    scanner = StopScanner(stops)
    out = ""
    for piece in pieces:
        ready, reached = scanner.feed(piece)
        out += ready
        if reached:
            break
    else:
        out += scanner.flush()
    assert (out, scanner.hit) == (emitted, hit)
