"""Background loops that tests drive instead of sleeping.

A :class:`DrivenLoop` runs an async ``step`` that returns how long to wait before
the next one. Tests :meth:`~DrivenLoop.pause` it and call
:meth:`~DrivenLoop.run_once` themselves, or :meth:`~DrivenLoop.trigger` an early
run (after Storj's chores: ``Pause()``, ``TriggerWait()``).

A loop may be gated (:meth:`~DrivenLoop.gate`): it then steps on its own only while
the gate is open, as a coordinator runs a loop only while it holds the loop's lease
(``coordinator/lease_keeper.py``). :meth:`~DrivenLoop.run_once` is an explicit drive
and runs whatever the gate says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

ERROR_DELAY = 5.0  # after a step raised something it did not handle itself
GATE_RECHECK = 1.0  # seconds between looks at a shut gate (trigger() looks at once)


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
        self._is_open: Callable[[], bool] = _always
        self.runs = 0  # completed steps, by the loop or run_once
        self.last_run_at: float | None = None  # wall clock when the last step completed
        self.failures = 0  # steps that raised
        self.last_error = ""  # the last failed step's exception, as "Type: message"
        self.last_error_at: float | None = None  # wall clock when it failed
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
        """Run the next step now instead of after the wait (once resumed, and the gate open)."""
        self._wake.set()

    def gate(self, is_open: Callable[[], bool]) -> None:
        """Step on its own only while ``is_open()``, asked right before each step.

        A step that comes due while the gate is shut waits until it opens (looking
        every ``GATE_RECHECK`` seconds, or at :meth:`trigger`), so a gate shut for a
        moment delays a step and never brings one forward. A step in progress
        finishes whatever the gate does meanwhile.
        """
        self._is_open = is_open

    async def run_once(self) -> float:
        """Run one step now (never at the same time as the loop's own); its delay.

        An explicit drive, for tests and tools: it runs whether the gate is open or not.
        """
        async with self._lock:
            return await self._run_step()

    async def _step_if_open(self) -> float | None:
        """One step if the gate is open (asked under the lock, right before it); else None."""
        async with self._lock:
            if not self._is_open():
                return None
            return await self._run_step()

    async def _run_step(self) -> float:
        delay = await self._step()
        self.runs += 1
        self.last_run_at = time.time()
        return delay

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"loop:{self.name}")

    async def stop(self) -> None:
        """Cancel the loop (a step in progress is cancelled too) and wait until it ended."""
        task, self._task = self._task, None
        if task is None:
            return
        current = asyncio.current_task()
        cancelled_before = current.cancelling() if current is not None else 0
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if current is not None and current.cancelling() > cancelled_before:
                raise  # the caller was cancelled while it waited: not ours to swallow

    async def _run(self) -> None:
        while True:
            await self._resumed.wait()
            self._wake.clear()
            try:
                ran = await self._step_if_open()
            except Exception as e:
                self.failures += 1
                self.last_error = f"{type(e).__name__}: {e}"[:500]
                self.last_error_at = time.time()
                log.exception("%s loop step failed; next try in %.0f s", self.name, ERROR_DELAY)
                ran = ERROR_DELAY
            delay = GATE_RECHECK if ran is None else ran
            if delay > 0:
                await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        """Until :meth:`trigger` or ``delay`` seconds, whichever comes first.

        Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancellation that arrives
        as the wake event is set, and :meth:`stop` would then wait for ever on a loop
        triggered just before (gh-86296). ``asyncio.timeout`` tells the two apart.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()


def _always() -> bool:
    return True
