"""DrivenLoop: stopping always ends the loop, whatever it was doing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from skymesh.loops import DrivenLoop


def _long_wait(stepped: asyncio.Event) -> Callable[[], Awaitable[float]]:
    async def step() -> float:
        stepped.set()
        return 3600.0

    return step


@pytest.mark.parametrize("ticks", [0, 1, 2, 3])
async def test_a_loop_triggered_just_before_stop_still_stops(ticks: int) -> None:
    # asyncio.wait_for on Python 3.11 swallowed the cancellation when the wake event was
    # set in the same few ticks, and the loop went on for ever (a coordinator's stop hung).
    stepped = asyncio.Event()
    loop = DrivenLoop("x", _long_wait(stepped))
    loop.start()
    await stepped.wait()
    await asyncio.sleep(0)  # waiting for the next step now
    loop.trigger()
    for _ in range(ticks):
        await asyncio.sleep(0)
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == "loop:x"]
    await asyncio.wait([asyncio.create_task(loop.stop())], timeout=5)
    assert task.done()


async def test_stop_cancelled_by_its_caller_is_not_swallowed() -> None:
    started = asyncio.Event()

    async def stubborn() -> float:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)  # a step slow to end
        return 1.0

    loop = DrivenLoop("x", stubborn)
    loop.start()
    await started.wait()
    stopping = asyncio.create_task(loop.stop())
    await asyncio.sleep(0.01)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping


async def test_a_failed_step_is_recorded_for_the_status_screen() -> None:
    async def step() -> float:
        raise RuntimeError("disk gone")

    loop = DrivenLoop("x", step)
    loop.start()
    for _ in range(200):
        if loop.failures:
            break
        await asyncio.sleep(0.01)
    await loop.stop()
    assert (loop.failures, loop.runs, loop.last_error) == (1, 0, "RuntimeError: disk gone")
    assert loop.last_error_at is not None
