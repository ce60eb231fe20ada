"""Runs each of this coordinator's loops only while it holds the loop's lease.

The keeper gates every loop it keeps (:meth:`DrivenLoop.gate`) on :meth:`holds`,
and every ``ttl / 3`` seconds renews the leases it holds and tries to take the
others (one write transaction: :meth:`LeaseBook.acquire`). When it takes a lease it
triggers that loop, which runs a step soon; when it loses one (another coordinator
took it after a renewal failed) the loop stops stepping, though a step in progress
finishes. :meth:`start` takes the leases once before any loop starts, so a
coordinator alone on its database holds every lease when its start returns.

Why a lease renewed at ``t`` is trusted only until ``t + 2/3 ttl`` (monotonic
time, from the moment the renewal began, which is no later than the write):
another coordinator takes it once *its* clock passes ``expires_at``, that is
``ttl`` after the write by the holder's clock. The last third of ``ttl`` (3.3 s at
the default 10 s) is the disagreement between coordinator clocks the leases
tolerate without a step running on two coordinators at once. A healthy keeper
renews twice within that window, so a late round only ever delays a step.

A holder that dies stops renewing: its leases expire ``ttl`` after its last
renewal, and another coordinator's keeper takes them within ``ttl / 3`` more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from skymesh.coordinator.leases import Lease, LeaseBook
from skymesh.loops import DrivenLoop
from skymesh.wire.leases import LeaseInfo, LeaseList

log = logging.getLogger(__name__)

RENEW_FRACTION = 1 / 3  # of ttl, between rounds
TRUST_FRACTION = 2 / 3  # of ttl, how long a renewal is trusted here (see the module docs)


class LeaseKeeper:
    """Keeps the leases of the loops given to :meth:`keep`, for one coordinator process."""

    def __init__(self, book: LeaseBook, *, monotonic: Callable[[], float] = time.monotonic):
        self.book = book
        self._monotonic = monotonic
        self._loops: dict[str, DrivenLoop] = {}
        self._trusted_until: dict[str, float] = {}  # held leases: monotonic deadline
        self._abandoned = False
        self.loop = DrivenLoop("leases", self._round)  # not a chore: it holds no lease itself

    @property
    def holder(self) -> str:
        return self.book.holder

    @property
    def held(self) -> frozenset[str]:
        """The loops this coordinator holds the lease of, now."""
        return frozenset(name for name in self._loops if self.holds(name))

    def keep(self, loop: DrivenLoop) -> None:
        """Run ``loop`` only under its lease (its name); before :meth:`start`."""
        name = loop.name
        self._loops[name] = loop
        loop.gate(lambda: self.holds(name))

    def holds(self, name: str) -> bool:
        """Whether this coordinator holds ``name``'s lease (a renewal recent enough to trust)."""
        until = self._trusted_until.get(name)
        return until is not None and self._monotonic() < until

    async def start(self) -> None:
        """Take what leases are free (before the loops start), then keep them."""
        await self._round()
        self.loop.start()

    async def stop(self) -> None:
        """Stop renewing and release every lease held, so another coordinator takes them now.

        Call it after the loops stopped: a step must not run past the release.
        """
        await self.loop.stop()
        held, self._trusted_until = self._trusted_until, {}
        if self._abandoned or not self._loops:
            return
        try:
            await self.book.release(list(self._loops))
        except Exception:
            log.warning(
                "releasing the loop leases failed; they expire within %.0f s",
                self.book.ttl,
                exc_info=True,
            )
            return
        if held:
            log.info("released loop leases %s", ", ".join(sorted(held)))

    async def abandon(self) -> None:
        """Stop renewing without releasing anything: what a crash leaves behind (for tests)."""
        self._abandoned = True
        await self.loop.stop()
        self._trusted_until.clear()

    async def report(self) -> LeaseList:
        """Every lease in the database; this coordinator's own loops with their runs."""
        leases = await self.book.list()
        now = self.book.clock()
        return LeaseList(
            coordinator=self.holder,
            generated_at=now,
            leases=[self._info(lease, now) for lease in leases],
        )

    def _info(self, lease: Lease, now: float) -> LeaseInfo:
        loop = self._loops.get(lease.name)
        return LeaseInfo(
            name=lease.name,
            holder=lease.holder,
            acquired_at=lease.acquired_at,
            expires_at=lease.expires_at,
            held=lease.held_at(now),
            held_here=self.holds(lease.name),
            runs=loop.runs if loop is not None else None,
            last_run_at=loop.last_run_at if loop is not None else None,
            failures=loop.failures if loop is not None else 0,
            last_error=loop.last_error if loop is not None else "",
            last_error_at=loop.last_error_at if loop is not None else None,
        )

    async def _round(self) -> float:
        """Renew what is held and try to take the rest; the seconds until the next round."""
        ttl = self.book.ttl
        started = self._monotonic()
        lapsed = sorted(n for n in self._trusted_until if not self.holds(n))
        for name in lapsed:
            del self._trusted_until[name]
        if lapsed:
            log.info("lost loop leases %s: not renewed in time", ", ".join(lapsed))
        try:
            leases = await self.book.acquire(list(self._loops))
        except Exception:
            # The database is unreachable or busy: what is held lapses at its deadline.
            log.warning("renewing loop leases failed; next try in %.1f s", ttl / 3, exc_info=True)
            return ttl * RENEW_FRACTION
        taken: list[str] = []
        for lease in leases:
            if lease.holder != self.holder:
                if self._trusted_until.pop(lease.name, None) is not None:
                    log.info("lost the %s loop's lease to %s", lease.name, lease.holder)
                continue
            if lease.name not in self._trusted_until:
                taken.append(lease.name)
            self._trusted_until[lease.name] = started + ttl * TRUST_FRACTION
        if taken:
            log.info("took loop leases %s as %s", ", ".join(taken), self.holder)
            for name in taken:
                self._loops[name].trigger()
        return ttl * RENEW_FRACTION
