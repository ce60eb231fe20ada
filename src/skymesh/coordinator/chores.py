"""Background loops behind one lifecycle, which tests drive instead of sleeping.

A :class:`Chore` runs its work every ``interval`` seconds once started; tests
call :meth:`Chore.run_once` directly, or :meth:`Chore.pause` it and
:meth:`Chore.trigger` a round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Chore:
    def __init__(self, name: str, interval: float, work: Callable[[], Awaitable[int]]) -> None:
        self.name = name
        self.interval = interval
        self._work = work
        self._wake = asyncio.Event()
        self._paused = False
        self._task: asyncio.Task[None] | None = None
        self.runs = 0  # completed rounds (for metrics)
        self.last_count = 0  # what the last round did
        self.failures = 0

    async def run_once(self) -> int:
        count = await self._work()
        self.runs += 1
        self.last_count = count
        return count

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def trigger(self) -> None:
        """Run a round now instead of waiting for the interval."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"chore:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            if self._paused:
                continue
            try:
                await self.run_once()
            except Exception:
                self.failures += 1
                log.exception("chore %s failed", self.name)
