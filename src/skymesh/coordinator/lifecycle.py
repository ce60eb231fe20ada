"""Starting a coordinator's parts in order and stopping them in reverse; its chores by name.

A coordinator is its subsystems (:class:`Subsystem`), each built with what it
needs, exposing its routes and its chores: the background loops it runs. The
:class:`Lifecycle` starts the parts in the order they were added and stops them
last first, also after a start that failed half way, and keeps every loop by its
name, so a loop can be found (and driven, or left to one coordinator of several)
without knowing which subsystem owns it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from skymesh.coordinator.endpoints import RouteTable
from skymesh.loops import DrivenLoop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chore:
    """A subsystem's background loop, and whether this coordinator runs it."""

    loop: DrivenLoop
    runs: bool = True


class Subsystem(Protocol):
    """One part of the coordinator: the routes it serves and the loops it runs."""

    @property
    def chores(self) -> Sequence[Chore]: ...

    def add_routes(self, table: RouteTable) -> None: ...


@dataclass
class _Part:
    name: str
    start: Callable[[], Awaitable[None]] | None
    stop: Callable[[], Awaitable[object]] | None
    live: bool  # open: started (or its start tried), or open from the moment it was added


class Lifecycle:
    """Starts parts in the order added and stops them in reverse."""

    def __init__(self) -> None:
        self._parts: list[_Part] = []
        self._loops: dict[str, DrivenLoop] = {}

    @property
    def loops(self) -> Mapping[str, DrivenLoop]:
        """Every chore's loop by name, whether this coordinator runs it or not."""
        return self._loops

    def add(
        self,
        name: str,
        *,
        start: Callable[[], Awaitable[None]] | None = None,
        stop: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """A part that :meth:`start` starts after those added before it.

        A part with no ``start`` is a resource already open: :meth:`stop` closes it
        even if :meth:`start` never ran. ``stop`` must also undo a ``start`` that
        failed half way.
        """
        self._parts.append(_Part(name, start, stop, live=start is None))

    def add_chores(self, chores: Iterable[Chore]) -> None:
        """Each chore's loop, started in turn if it ``runs``; its name must be new."""
        for chore in chores:
            loop = chore.loop
            if loop.name in self._loops:
                raise ValueError(f"two background loops are named {loop.name!r}")
            self._loops[loop.name] = loop
            self.add(
                f"loop {loop.name}", start=_starter(loop) if chore.runs else None, stop=loop.stop
            )

    async def start(self) -> None:
        """Start every part in order; when one fails, stop those before it and raise."""
        try:
            for part in self._parts:
                if not part.live and part.start is not None:
                    part.live = True
                    await part.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every open part, the last added first; one failing does not keep the rest open."""
        failed: Exception | None = None
        for part in reversed(self._parts):
            if not part.live:
                continue
            part.live = False
            if part.stop is None:
                continue
            try:
                await part.stop()
            except Exception as e:
                log.exception("stopping the coordinator's %s failed", part.name)
                failed = failed or e
        if failed is not None:
            raise failed


def _starter(loop: DrivenLoop) -> Callable[[], Awaitable[None]]:
    async def start() -> None:
        loop.start()

    return start
