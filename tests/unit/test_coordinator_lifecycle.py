"""The coordinator's lifecycle: parts start in order and stop in reverse; loops by name."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from skymesh.coordinator import CoordinatorService
from skymesh.coordinator.lifecycle import Chore, Lifecycle
from skymesh.loops import DrivenLoop
from tests.unit.test_coordinator_support import coordinator_config

LOOPS = {
    "expire-nodes",
    "expire-uploads",
    "lifecycle-rules",
    "gc",
    "audit",
    "repair-checker",
    "repair",
    "retain",
    "accounting",
}


def _recorder(lifecycle: Lifecycle, log: list[str], name: str, *, fail: bool = False) -> None:
    async def start() -> None:
        log.append(f"start {name}")
        if fail:
            raise RuntimeError(f"{name} failed")

    async def stop() -> None:
        log.append(f"stop {name}")

    lifecycle.add(name, start=start, stop=stop)


def _resource(lifecycle: Lifecycle, log: list[str], name: str) -> None:
    async def close() -> None:
        log.append(f"close {name}")

    lifecycle.add(name, stop=close)


async def _idle() -> float:
    return 3600.0


async def test_parts_start_in_order_and_stop_in_reverse() -> None:
    log: list[str] = []
    lc = Lifecycle()
    _resource(lc, log, "db")
    _recorder(lc, log, "a")
    _recorder(lc, log, "b")
    await lc.start()
    assert log == ["start a", "start b"]
    await lc.stop()
    assert log[2:] == ["stop b", "stop a", "close db"]
    await lc.stop()  # twice: nothing more
    assert len(log) == 5


async def test_a_failed_start_stops_what_came_before_and_raises() -> None:
    log: list[str] = []
    lc = Lifecycle()
    _resource(lc, log, "db")
    _recorder(lc, log, "a")
    _recorder(lc, log, "b", fail=True)
    _recorder(lc, log, "c")
    with pytest.raises(RuntimeError, match="b failed"):
        await lc.start()
    # b's stop runs too: a stop must undo a start that failed half way
    assert log == ["start a", "start b", "stop b", "stop a", "close db"]


async def test_resources_close_without_a_start() -> None:
    log: list[str] = []
    lc = Lifecycle()
    _resource(lc, log, "db")
    _recorder(lc, log, "a")
    await lc.stop()
    assert log == ["close db"]


async def test_a_part_that_fails_to_stop_does_not_keep_the_others_open() -> None:
    log: list[str] = []
    lc = Lifecycle()
    _resource(lc, log, "db")

    async def broken() -> None:
        raise OSError("stuck")

    lc.add("broken", stop=broken)
    with pytest.raises(OSError, match="stuck"):
        await lc.stop()
    assert log == ["close db"]


async def test_loops_by_name_and_only_running_chores_start() -> None:
    lc = Lifecycle()
    on, off = DrivenLoop("on", _idle), DrivenLoop("off", _idle)
    lc.add_chores([Chore(on), Chore(off, runs=False)])
    assert dict(lc.loops) == {"on": on, "off": off}
    with pytest.raises(ValueError, match="'on'"):
        lc.add_chores([Chore(DrivenLoop("on", _idle))])
    await lc.start()
    assert (on.running, off.running) == (True, False)
    off.start()  # a test may run it by hand; stop() stops it too
    await lc.stop()
    assert (on.running, off.running) == (False, False)


async def test_coordinator_lists_its_loops_and_runs_them_after_binding(
    database_url: str, tmp_path: Path
) -> None:
    service = await CoordinatorService.open(
        coordinator_config(tmp_path, database_url=database_url, retain_interval=0)
    )
    try:
        assert set(service.loops) == LOOPS
        assert not any(loop.running for loop in service.loops.values())
        assert service.url == ""
        await service.start()
        assert service.url.endswith(f":{service.port}") and service.port > 0
        running = {name for name, loop in service.loops.items() if loop.running}
        assert running == LOOPS - {"retain"}  # retain_interval 0: reconciliation is off
    finally:
        await service.stop()
    assert not any(loop.running for loop in service.loops.values())
    assert service.session.closed


async def test_retain_runs_when_it_has_an_interval(database_url: str, tmp_path: Path) -> None:
    service = await CoordinatorService.open(
        coordinator_config(tmp_path, database_url=database_url, retain_interval=60.0)
    )
    try:
        await service.start()
        assert service.loops["retain"].running
    finally:
        await service.stop()


async def test_a_coordinator_that_cannot_bind_closes_everything(
    database_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = await CoordinatorService.open(
            coordinator_config(tmp_path, database_url=database_url, port=port)
        )
        with pytest.raises(OSError):
            await service.start()
    assert not any(loop.running for loop in service.loops.values())
    assert service.session.closed
    await service.stop()  # stopping again is harmless
