"""The durability subsystem: audits, repair, garbage collection and retain, and their loops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from skymesh.coordinator.durability.audit import Auditor
from skymesh.coordinator.durability.gc import GarbageCollector
from skymesh.coordinator.durability.repair.checker import RepairChecker
from skymesh.coordinator.durability.repair.drain import request_drain
from skymesh.coordinator.durability.repair.worker import RepairWorker
from skymesh.coordinator.durability.report import Tally, durability_report, object_pieces
from skymesh.coordinator.durability.retain import Reconciler
from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.lifecycle import Chore
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.overlay.reputation import ReputationBook
from skymesh.errors import BadRequest
from skymesh.loops import DrivenLoop
from skymesh.wire import routes
from skymesh.wire.durability import DrainStatus, DurabilityReport, ObjectPieces
from skymesh.wire.identity import Identity
from skymesh.wire.signing import Signed


class DurabilityService:
    """Keeps every segment's pieces healthy, and the nodes' disks free of garbage.

    Chores: ``gc`` deletes queued garbage pieces from their nodes; ``audit`` checks
    random chunks and scores nodes; ``repair-checker`` queues segments short of
    healthy pieces; ``repair`` rebuilds them; ``retain`` sends each node the filter
    of what it should keep (only with ``retain_interval > 0``). ``session`` carries
    every request to the nodes.
    """

    def __init__(
        self,
        m: Metainfo,
        reputation: ReputationBook,
        identity: Identity,
        session: aiohttp.ClientSession,
    ) -> None:
        cfg = m.config
        self.m = m
        self.reputation = reputation
        #: the last durability report, for the status route
        self.tally = Tally(lambda: durability_report(m, reputation.cached), m.clock)
        self.gc = GarbageCollector(
            m.db, m.registry, m.orders, session, grace=cfg.gc_grace, clock=m.clock
        )
        self.reconciler = Reconciler(
            m.db,
            m.registry,
            identity,
            session,
            grace=cfg.retain_grace,
            gc_grace=cfg.gc_grace,
            clock=m.clock,
        )
        self.auditor = Auditor(
            m,
            reputation,
            session,
            per_round=cfg.audits_per_round,
            timeout=cfg.audit_timeout,
            rng=m.rng,
            contained_retries=cfg.audit_contained_retries,
        )
        self.repair_checker = RepairChecker(
            m, reputation, full_scan_interval=cfg.repair_full_scan_interval
        )
        self.repair_worker = RepairWorker(
            m,
            reputation,
            session,
            idle_interval=cfg.repair_interval,
            retry_after=cfg.repair_retry_after,
            rng=m.rng,
        )
        self.chores = [
            Chore(DrivenLoop.periodic("gc", cfg.gc_interval, self.gc.run_once)),
            Chore(DrivenLoop.periodic("audit", cfg.audit_interval, self.auditor.step)),
            # The first scan waits one interval: nodes have rejoined by then, so a
            # restart does not queue every segment as lost.
            Chore(
                DrivenLoop(
                    "repair-checker",
                    _after_first_interval(cfg.repair_check_interval, self.repair_checker.step),
                )
            ),
            Chore(DrivenLoop("repair", self.repair_worker.step)),
            Chore(
                DrivenLoop(
                    "retain", _after_first_interval(cfg.retain_interval, self.reconciler.run_once)
                ),
                runs=cfg.retain_interval > 0,
            ),
        ]

    def add_routes(self, table: RouteTable) -> None:
        """The durability report and an object's pieces (admin), and graceful exit (signed
        by the leaving node)."""
        m, book, tally = self.m, self.reputation, self.tally

        async def report(_call: Call, _req: None) -> DurabilityReport:
            return await tally.fresh()

        async def pieces(call: Call, _req: None) -> ObjectPieces:
            query = call.request.query
            bucket, key = query.get("bucket", ""), query.get("key", "")
            if not bucket or not key:
                raise BadRequest("bucket and key are both required")
            return await object_pieces(m, bucket, key, book.cached)

        async def drain(_call: Call, signed: Signed) -> DrainStatus:
            return await request_drain(m.registry, book, signed)

        table.add(routes.DURABILITY, report)
        table.add(routes.OBJECT_PIECES, pieces)
        table.add(routes.DRAIN, drain)


def _after_first_interval(
    interval: float, work: Callable[[], Awaitable[object]]
) -> Callable[[], Awaitable[float]]:
    """A loop step that waits one ``interval`` before its first ``work``.

    Work right at start would find nodes not yet rejoined (reconciliation would
    send nothing, the checker would see pieces lost); the first round waits a
    whole interval instead.
    """
    first = True

    async def step() -> float:
        nonlocal first
        if first:
            first = False
        else:
            await work()
        return interval

    return step
