"""A worker pool with bounded concurrency and a bounded queue: backpressure, not collapse.

Inference is CPU-bound C code. Running more requests at once than there are
workers only makes each slower, and an unbounded queue turns overload into
timeouts for everybody. So at most ``concurrency`` requests run (each in a
worker thread), at most ``queue_limit`` wait, and the next one is refused at
once with :class:`Overloaded` and a Retry-After estimate, which the gateway
takes as a cue to try the next node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

from skymesh.compute.errors import Overloaded

T = TypeVar("T")
EWMA = 0.2  # weight of the newest sample in the recent latency and throughput


class WorkerPool:
    def __init__(self, concurrency: int = 1, queue_limit: int = 8) -> None:
        if concurrency < 1 or queue_limit < 0:
            raise ValueError("concurrency must be >= 1 and queue_limit >= 0")
        self.concurrency = concurrency
        self.queue_limit = queue_limit
        self._slots = asyncio.Semaphore(concurrency)
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="compute")
        self.running = 0
        self.waiting = 0
        self.served = 0
        self.refused = 0
        self.latency_s = 0.0  # recent mean service time (0: nothing served yet)
        self.tokens_per_second = 0.0

    @property
    def depth(self) -> int:
        return self.running + self.waiting

    def retry_after(self) -> float:
        """Seconds until a slot likely frees: the queue ahead times the recent service time."""
        per = self.latency_s or 1.0
        return max(1.0, (self.waiting + 1) * per / self.concurrency)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one worker slot for a request; refuse at once when the queue is full."""
        if self.running >= self.concurrency and self.waiting >= self.queue_limit:
            self.refused += 1
            raise Overloaded(
                f"this node is busy ({self.running} running, {self.waiting} waiting):"
                " retry later or on another node",
                retry_after=self.retry_after(),
            )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        started = time.perf_counter()
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
            self.served += 1
            self._sample(time.perf_counter() - started)

    def _sample(self, seconds: float) -> None:
        self.latency_s = (
            seconds if not self.latency_s else (1 - EWMA) * self.latency_s + EWMA * seconds
        )

    def record_tokens(self, tokens: int, seconds: float) -> None:
        if tokens > 0 and seconds > 0:
            rate = tokens / seconds
            self.tokens_per_second = (
                rate
                if not self.tokens_per_second
                else (1 - EWMA) * self.tokens_per_second + EWMA * rate
            )

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking ``fn`` in a worker thread (call inside :meth:`slot`)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
