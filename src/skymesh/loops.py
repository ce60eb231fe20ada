"""Background loops that tests drive instead of sleeping.

A :class:`DrivenLoop` runs an async ``step`` that returns how long to wait before
the next one. Tests :meth:`~DrivenLoop.pause` it and call
:meth:`~DrivenLoop.run_once` themselves, or :meth:`~DrivenLoop.trigger` an early
run (after Storj's chores: ``Pause()``, ``TriggerWait()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

ERROR_DELAY = 5.0  # after a step raised something it did not handle itself


class DrivenLoop:
    """Calls ``step`` again and again; ``step`` returns the seconds until the next call."""

    def __init__(self, name: str, step: Callable[[], Awaitable[float]]):
        self.name = name
        self._step = step
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._task: asyncio.Task[None] | None = None
        self.runs = 0  # completed steps, by the loop or run_once
        self.failures = 0  # steps that raised
        self.last_result: Any = None  # what the work of the last periodic step returned

    @classmethod
    def periodic(cls, name: str, interval: float, work: Callable[[], Awaitable[Any]]) -> DrivenLoop:
        """A loop that does ``work`` every ``interval`` seconds; ``last_result`` keeps its answer."""

        async def step() -> float:
            loop.last_result = await work()
            return interval

        loop = cls(name, step)
        return loop

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def pause(self) -> None:
        """No new steps until :meth:`resume` (a step in progress finishes)."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def trigger(self) -> None:
        """Run the next step now instead of after the wait (once resumed)."""
        self._wake.set()

    async def run_once(self) -> float:
        """Run one step now (never at the same time as the loop's own); its delay."""
        async with self._lock:
            delay = await self._step()
            self.runs += 1
            return delay

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"loop:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await self._resumed.wait()
            self._wake.clear()
            try:
                delay = await self.run_once()
            except Exception:
                self.failures += 1
                log.exception("%s loop step failed; next try in %.0f s", self.name, ERROR_DELAY)
                delay = ERROR_DELAY
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
