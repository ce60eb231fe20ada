"""The last warnings and errors a coordinator logged, kept in memory for ``skymesh status``.

A :class:`RecentEvents` handler on the ``skymesh`` logger keeps the newest ``size``
records at WARNING or above in a ring; nothing is written anywhere and a restart
forgets them (the log file keeps them all). It holds what the whole process logged:
in production that is one coordinator; a test process running several coordinators
sees each one's ring hold all of theirs.
"""

from __future__ import annotations

import collections
import logging

from skymesh.wire.status import RecentEvent

RING_SIZE = 50  # events kept
MESSAGE_LIMIT = 500  # characters kept of each


class RecentEvents(logging.Handler):
    """A bounded ring of recent WARNING+ records; :meth:`attach` it, :meth:`detach` it."""

    def __init__(self, size: int = RING_SIZE, logger: str = "skymesh") -> None:
        super().__init__(logging.WARNING)
        self._ring: collections.deque[RecentEvent] = collections.deque(maxlen=size)
        self._logger = logging.getLogger(logger)

    async def attach(self) -> None:
        """Start keeping records (async: a coordinator lifecycle's start)."""
        self._logger.addHandler(self)

    async def detach(self) -> None:
        self._logger.removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = (record.getMessage().splitlines() or [""])[0]
            if record.exc_info and record.exc_info[1] is not None:
                e = record.exc_info[1]
                message += f" ({type(e).__name__}: {e})"
            self._ring.append(
                RecentEvent(
                    at=record.created,
                    level=record.levelname,
                    logger=record.name,
                    message=message[:MESSAGE_LIMIT],
                )
            )
        except Exception:  # a logging handler never raises into the code that logs
            self.handleError(record)

    def events(self) -> list[RecentEvent]:
        """Newest last."""
        return list(self._ring)
