"""A micro-batcher: requests that arrive while the engine is busy go together into its next call.

One small embedding request costs the engine little more as a row of a batch than on
its own (the fixed cost of a runtime call and a matrix-vector product become a share
of one matrix-matrix product), so concurrent callers each sending one text are served
in far fewer engine calls. The policy adds no wait when the node is idle:

- A request that finds no batch forming starts one, which asks the worker pool for a
  slot at once; with a free slot it runs alone, straight away.
- Requests that arrive while that batch waits for a slot (the engine is busy) join it;
  when the slot frees, the batch takes everything queued, up to ``max_items`` items
  (a request larger than that runs alone), first come first served. What is left
  starts the next batch.
- Each request waits at most for the batch ahead of it and its own: FIFO, bounded.

Admission keeps the pool's meaning of ``queue_limit``, counted in batches: a request
is refused with :class:`Overloaded` when every worker is busy and the queued items
already fill ``queue_limit`` batches. Each caller gets its own results back, or its
own error: when a batch call fails, its requests are run again one by one, so one
bad request (too long an input) fails alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from skymesh.compute.errors import Overloaded
from skymesh.compute.pool import WorkerPool

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass
class _Waiter(Generic[Req, Res]):
    request: Req
    size: int
    future: asyncio.Future[Res] = field(repr=False)


class MicroBatcher(Generic[Req, Res]):
    """Runs ``fn(requests) -> results`` (one result per request, in order) in the pool's
    worker threads, for as many queued requests at a time as fit ``max_items``."""

    def __init__(
        self,
        pool: WorkerPool,
        fn: Callable[[list[Req]], list[Res]],
        size: Callable[[Req], int],
        max_items: int,
        observe: Callable[[list[Res], float], None] | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.pool = pool
        self.fn = fn
        self.size = size
        self.max_items = max_items
        self.observe = observe  # called with each batch's results and its run seconds
        self._queue: deque[_Waiter[Req, Res]] = deque()
        self._queued_items = 0
        self._forming = False  # a batch task waits for a slot: new requests join its batch
        self._tasks: set[asyncio.Task[None]] = set()  # strong references to batch tasks
        self.calls = 0  # calls of fn (batches, and one-by-one reruns after a failed batch)
        self.slots = 0  # worker slots held (one per batch)
        self.ran = 0  # requests whose batch ran (a result or their own error)
        self.served = 0  # requests given a result
        self.asking = False  # a batch task waits in the pool's queue for a slot

    @property
    def queued(self) -> int:
        """Requests waiting for a batch."""
        return len(self._queue)

    async def submit(self, request: Req) -> Res:
        """``request``'s result once its batch has run (or its own error)."""
        size = max(1, self.size(request))
        pool = self.pool
        if (
            pool.running >= pool.concurrency
            and self._queued_items + size > self.max_items * pool.queue_limit
        ):
            pool.refused += 1
            raise Overloaded(
                f"this node is busy ({pool.running} running, {self.queued} queued):"
                " retry later or on another node",
                retry_after=pool.retry_after(),
            )
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiter(request, size, future))
        self._queued_items += size
        if not self._forming:
            self._start()
        return await future

    def _start(self) -> None:
        self._forming = True
        task = asyncio.get_running_loop().create_task(self._batch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self, limit: int) -> list[_Waiter[Req, Res]]:
        """The queue's head, as many live requests as fit ``limit`` items (at least one)."""
        batch: list[_Waiter[Req, Res]] = []
        items = 0
        while self._queue:
            w = self._queue[0]
            if batch and items + w.size > limit:
                break
            self._queue.popleft()
            self._queued_items -= w.size
            if not w.future.done():  # done: its caller went away while it waited
                batch.append(w)
                items += w.size
        return batch

    async def _batch(self) -> None:
        batch: list[_Waiter[Req, Res]] = []
        waiting = self.asking = True
        try:
            async with self.pool.slot():
                waiting = self.asking = self._forming = False
                self.slots += 1
                batch = self._take(self.max_items)
                self.ran += len(batch)
                if self._queue:  # more than one batch's worth: the rest forms the next
                    self._start()
                await self._run(batch)
        except BaseException as e:
            if waiting:  # refused by the pool (its queue is full) or cancelled while waiting:
                self.asking = self._forming = False  # every queued request was to join it
                batch = self._take(self._queued_items)
            for w in batch:
                if isinstance(e, Exception):
                    _settle(w, error=e)
                else:
                    w.future.cancel()
            if not isinstance(e, Exception):
                raise

    async def _run(self, batch: list[_Waiter[Req, Res]]) -> None:
        if not batch:
            return
        try:
            results = await self._call([w.request for w in batch])
        except Exception as e:
            if len(batch) == 1:
                _settle(batch[0], error=e)
                return
            # one request may have failed the batch: each alone, for its own answer
            for w in batch:
                if w.future.done():
                    continue
                try:
                    (result,) = await self._call([w.request])
                except Exception as e1:
                    _settle(w, error=e1)
                else:
                    _settle(w, result)
                    self.served += 1
            return
        for w, r in zip(batch, results, strict=True):
            _settle(w, r)
        self.served += len(batch)

    async def _call(self, requests: list[Req]) -> list[Res]:
        started = time.perf_counter()
        self.calls += 1
        results = await self.pool.run(self.fn, requests)
        if len(results) != len(requests):
            raise RuntimeError(f"{len(requests)} requests gave {len(results)} results")
        if self.observe is not None:
            self.observe(results, time.perf_counter() - started)
        return results


def _settle(
    w: _Waiter[Req, Res], result: Res | None = None, error: Exception | None = None
) -> None:
    if w.future.done():  # the caller went away
        return
    if error is not None:
        w.future.set_exception(error)
    else:
        w.future.set_result(result)  # type: ignore[arg-type]


def split_rows(sizes: Sequence[int], total: int) -> list[slice]:
    """The row slices of requests of ``sizes`` items concatenated into ``total`` rows."""
    if sum(sizes) != total:
        raise ValueError(f"{sum(sizes)} items in the requests but {total} rows")
    out, start = [], 0
    for n in sizes:
        out.append(slice(start, start + n))
        start += n
    return out
