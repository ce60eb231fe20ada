"""Group commit: SQLite writers that queue up behind one another commit together.

SQLite has one writer at a time, and every commit at ``synchronous=FULL`` waits for
an fsync; each write also pays a hop to a database thread, ``BEGIN IMMEDIATE`` and
``COMMIT``. Under load (16 clients putting small objects) writers queue, so the
writers that arrived while one batch ran are taken together as the next batch: one
thread hop, one transaction, one fsync, with each writer's function in a savepoint
of its own (``engine.Database._run_batch``). A function that raises rolls back to
its savepoint and only its caller gets the error; the others commit. Nothing is
answered before the COMMIT, so every caller sees exactly what it would have seen
had the functions run one transaction each, in queue order. A failure of the batch
as a whole (the connection lost, COMMIT refused) is every member's failure, with
the same meaning as for a transaction of its own (see ``engine``).

Pure asyncio: the batch runner is given, so this is tested without a database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

#: At most this many writers in one batch: a bound on how long one COMMIT holds them all.
MAX_BATCH = 64

#: What running one writer's function gave: (True, its result) or (False, its exception).
Outcome = tuple[bool, Any]
#: Runs a batch of functions in one transaction, one outcome per function, in order.
BatchRunner = Callable[[Sequence[Any]], Awaitable[list[Outcome]]]


class GroupCommit:
    """One writer's function at a time reaches ``run``, or a batch of those that waited."""

    def __init__(self, run: BatchRunner, max_batch: int = MAX_BATCH) -> None:
        self._run = run
        self._max = max_batch
        self._queue: list[tuple[Any, asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.batches = 0  # batches run, for tests and metrics

    async def submit(self, txn: Any) -> Any:
        """Run ``txn`` in the next batch; its result, or its exception raised here."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((txn, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._drain())
        # a caller that goes away leaves its function to run (or skipped, if not begun),
        # as a cancelled writer's thread runs on: the runner is nobody's to cancel
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Any, asyncio.Future[Any]]] = []
        try:
            while self._queue:
                taken, self._queue = self._queue[: self._max], self._queue[self._max :]
                batch = [(txn, f) for txn, f in taken if not f.cancelled()]
                if not batch:
                    continue
                self.batches += 1
                outcomes = await self._run([txn for txn, _ in batch])
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
                batch = []
        except BaseException as e:
            # the runner itself failed (or the loop is closing): no one is left waiting
            for _, future in batch + self._queue:
                if not future.done():
                    future.set_exception(e)
            self._queue = []
            if not isinstance(e, Exception):
                raise
        finally:
            self._runner = None
