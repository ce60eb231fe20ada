"""The worker pool's bounds, the embedding micro-batcher, and the chat engine's stop-string
scanner."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from skymesh.compute.batcher import MicroBatcher
from skymesh.compute.engines import EmbeddingEngine, StopScanner
from skymesh.compute.errors import ContextTooLong, Overloaded
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


# ---------------------------------------------------------------- micro-batcher


class _FakeEngine:
    """Answers each request (a list of numbers) with its numbers times ten; a call
    holding a negative number fails; the first call waits for ``gate``."""

    def __init__(self) -> None:
        self.calls: list[list[list[int]]] = []
        self.gate = threading.Event()

    def __call__(self, requests: list[list[int]]) -> list[list[int]]:
        self.calls.append(requests)
        if len(self.calls) == 1:
            self.gate.wait(5)
        if any(x < 0 for r in requests for x in r):
            raise ContextTooLong("negative")
        return [[x * 10 for x in r] for r in requests]


async def _batching(
    max_items: int, queue_limit: int = 8
) -> tuple[WorkerPool, _FakeEngine, MicroBatcher[list[int], list[int]]]:
    pool = WorkerPool(concurrency=1, queue_limit=queue_limit)
    fake = _FakeEngine()
    return pool, fake, MicroBatcher(pool, fake, len, max_items)


async def test_batcher_joins_requests_queued_while_busy_and_maps_rows_back() -> None:
    pool, fake, batcher = await _batching(max_items=4)
    try:
        first = asyncio.create_task(batcher.submit([1]))  # idle: runs at once, alone
        await asyncio.sleep(0.05)
        assert fake.calls == [[[1]]]
        queued = [asyncio.create_task(batcher.submit(r)) for r in ([2, 3], [4], [5], [6, 7])]
        await asyncio.sleep(0.05)
        assert batcher.queued == 4 and len(fake.calls) == 1 and batcher.asking
        fake.gate.set()
        assert await first == [10]
        assert [await t for t in queued] == [[20, 30], [40], [50], [60, 70]]
        # FIFO, at most 4 items a call: [2,3],[4],[5] together, then [6,7]
        assert fake.calls[1:] == [[[2, 3], [4], [5]], [[6, 7]]]
        assert (batcher.calls, batcher.served, pool.depth) == (3, 5, 0)
        assert (batcher.slots, batcher.ran, pool.served) == (3, 5, 3)
    finally:
        fake.gate.set()
        pool.close()


async def test_batcher_gives_a_failing_request_its_own_error() -> None:
    pool, fake, batcher = await _batching(max_items=8)
    try:
        busy = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0.05)
        tasks = [asyncio.create_task(batcher.submit(r)) for r in ([1], [-1], [2])]
        await asyncio.sleep(0.05)
        fake.gate.set()
        await busy
        good1, bad, good2 = await asyncio.gather(*tasks, return_exceptions=True)
        assert (good1, good2) == ([10], [20]) and isinstance(bad, ContextTooLong)
        # the batch failed as a whole, then each request ran alone
        assert fake.calls[1:] == [[[1], [-1], [2]], [[1]], [[-1]], [[2]]]
    finally:
        fake.gate.set()
        pool.close()


async def test_batcher_refuses_past_queue_limit_batches() -> None:
    pool, fake, batcher = await _batching(max_items=2, queue_limit=1)
    try:
        busy = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0.05)
        fits = asyncio.create_task(batcher.submit([1, 2]))  # one batch's worth may wait
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await batcher.submit([3])
        fake.gate.set()
        assert (await busy, await fits) == ([0], [10, 20])
        assert pool.refused == 1
    finally:
        fake.gate.set()
        pool.close()


def test_embed_requests_splits_one_call_into_each_requests_rows() -> None:
    np = pytest.importorskip("numpy")

    class Fake(EmbeddingEngine):
        def __init__(self) -> None:  # no model: embed is faked
            pass

        def embed(self, texts: Sequence[str]) -> tuple[Any, list[int]]:
            rows = np.array([[float(len(t))] for t in texts], dtype=np.float32)
            return rows, [len(t) for t in texts]

    out = Fake().embed_requests([["a", "bb"], ["ccc"], ["dddd", "e", "ff"]])
    assert [(rows[:, 0].tolist(), tokens) for rows, tokens in out] == [
        ([1.0, 2.0], 3),
        ([3.0], 3),
        ([4.0, 1.0, 2.0], 7),
    ]
