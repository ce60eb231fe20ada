"""The coordinator process: database, registry, metadata operations and HTTP API."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from skymesh.codec import RedundancyScheme
from skymesh.config import CoordinatorConfig
from skymesh.coordinator.auth import Auth
from skymesh.coordinator.db.engine import Database, default_url
from skymesh.coordinator.durability.audit import Auditor
from skymesh.coordinator.durability.gc import GarbageCollector
from skymesh.coordinator.durability.repair.checker import RepairChecker
from skymesh.coordinator.durability.repair.worker import RepairWorker
from skymesh.coordinator.durability.report import add_durability_routes
from skymesh.coordinator.durability.retain import Reconciler
from skymesh.coordinator.endpoints import RouteTable
from skymesh.coordinator.inference.batch import add_batch_routes
from skymesh.coordinator.inference.compute import ComputeBook, add_compute_routes
from skymesh.coordinator.inference.metering import Meter, add_metering_routes
from skymesh.coordinator.metainfo.api import add_metainfo_routes, add_registry_routes
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.expire_uploads import expire_uploads
from skymesh.coordinator.metainfo.roots import load_root_key
from skymesh.coordinator.orders import OrderSigner
from skymesh.coordinator.overlay.registry import Registry
from skymesh.coordinator.overlay.reputation import ReputationBook, ReputationParams
from skymesh.errors import ConfigError, SchemeError
from skymesh.loops import DrivenLoop
from skymesh.wire.identity import Identity

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.key"
EXPIRE_UPLOADS_INTERVAL = 600.0
NODE_RPC_TIMEOUT = aiohttp.ClientTimeout(total=60.0, sock_connect=5.0)  # gc deletes, retain posts


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class CoordinatorService:
    """One coordinator: ``await start()``, then serve at ``url`` until ``await stop()``.

    ``clock`` and ``rng`` are for tests (expiry, offline nodes, placement).
    """

    def __init__(
        self,
        config: CoordinatorConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self.data_dir = Path(config.data_dir)
        try:
            self.fixed_scheme = RedundancyScheme.parse(config.scheme) if config.scheme else None
        except SchemeError as e:
            raise ConfigError(f"coordinator scheme: {e}") from e
        self.identity = Identity.load_or_create(self.data_dir / IDENTITY_FILE)
        self.port = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.db: Database
        self.registry: Registry
        self.metainfo: Metainfo
        self.auth: Auth
        self.expire_uploads: DrivenLoop
        # durability slice A: garbage collection and reconciliation
        self.session: aiohttp.ClientSession | None = None  # to nodes
        self.gc: GarbageCollector
        self.gc_loop: DrivenLoop
        self.reconciler: Reconciler
        self.retain_loop: DrivenLoop
        # durability slice B: audits, reputation, repair, graceful exit
        self.reputation: ReputationBook
        self.auditor: Auditor
        self.audit_loop: DrivenLoop
        self.repair_checker: RepairChecker
        self.checker_loop: DrivenLoop
        self.repair_worker: RepairWorker
        self.repair_loop: DrivenLoop

    async def start(self) -> None:
        cfg = self.config
        self.db = await Database.open(cfg.database_url or default_url(self.data_dir))
        try:
            self.registry = Registry(
                self.db,
                self.identity,
                heartbeat_interval=cfg.heartbeat_interval,
                offline_after=cfg.offline_after,
                clock=self.clock,
            )
            await self.registry.load()
            self.metainfo = Metainfo(
                config=cfg,
                db=self.db,
                registry=self.registry,
                orders=OrderSigner(self.identity, cfg.order_ttl, self.clock),
                roots=await load_root_key(self.db, self.clock()),
                fixed_scheme=self.fixed_scheme,
                clock=self.clock,
                rng=self.rng,
            )
            self.auth = Auth(self.db, cfg.admin_token, self.clock)
            self.expire_uploads = DrivenLoop.periodic(
                "expire-uploads",
                min(EXPIRE_UPLOADS_INTERVAL, cfg.pending_upload_ttl),
                lambda: expire_uploads(self.metainfo),
            )
            # ---- durability slice A: garbage collection and reconciliation
            self.session = aiohttp.ClientSession(timeout=NODE_RPC_TIMEOUT)
            self.gc = GarbageCollector(
                self.db,
                self.registry,
                self.metainfo.orders,
                self.session,
                grace=cfg.gc_grace,
                clock=self.clock,
            )
            self.gc_loop = DrivenLoop.periodic("gc", cfg.gc_interval, self.gc.run_once)
            self.reconciler = Reconciler(
                self.db,
                self.registry,
                self.identity,
                self.session,
                grace=cfg.retain_grace,
                gc_grace=cfg.gc_grace,
                clock=self.clock,
            )
            self.retain_loop = DrivenLoop(
                "retain", _after_first_interval(cfg.retain_interval, self.reconciler.run_once)
            )
            # ---- end durability slice A
            # ---- durability slice B: audits, reputation, repair, graceful exit
            self.reputation = ReputationBook(
                self.db,
                ReputationParams(
                    audit_lambda=cfg.audit_lambda,
                    audit_dq_threshold=cfg.audit_dq_threshold,
                    unknown_lambda=cfg.unknown_lambda,
                    unknown_suspend_threshold=cfg.unknown_suspend_threshold,
                    vetting_audits=cfg.vetting_audits,
                ),
                clock=self.clock,
            )
            await self.reputation.load()
            self.registry.reputation = self.reputation
            self.auditor = Auditor(
                self.metainfo,
                self.reputation,
                self.session,
                per_round=cfg.audits_per_round,
                timeout=cfg.audit_timeout,
                rng=self.rng,
                contained_retries=cfg.audit_contained_retries,  # placement: containment
            )
            self.audit_loop = DrivenLoop.periodic("audit", cfg.audit_interval, self.auditor.step)
            self.repair_checker = RepairChecker(
                self.metainfo,
                self.reputation,
                full_scan_interval=cfg.repair_full_scan_interval,  # placement: incremental
            )
            # First scan one interval after start: nodes have rejoined by then, so a
            # restart does not queue every segment as lost.
            self.checker_loop = DrivenLoop(
                "repair-checker",
                _after_first_interval(cfg.repair_check_interval, self.repair_checker.step),
            )
            self.repair_worker = RepairWorker(
                self.metainfo,
                self.reputation,
                self.session,
                idle_interval=cfg.repair_interval,
                retry_after=cfg.repair_retry_after,
                rng=self.rng,
            )
            self.repair_loop = DrivenLoop("repair", self.repair_worker.step)
            # ---- end durability slice B
            table = RouteTable(self.auth)
            add_registry_routes(table, self.registry, self.auth, self.identity)
            add_metainfo_routes(table, self.metainfo)
            add_durability_routes(table, self.registry, self.reputation, self.metainfo)
            self.compute = ComputeBook(self.registry, self.identity, clock=self.clock)
            self.registry.on_heartbeat = self.compute.observe
            add_compute_routes(table, self.compute)
            self.meter = Meter(self.db, self.identity, clock=self.clock)
            add_batch_routes(table, self.auth, self.compute, self.metainfo, self.meter)
            add_metering_routes(table, self.meter)
            self.table = table
            app = table.app
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, cfg.host, cfg.port)
            await site.start()
        except BaseException:
            await self.stop()
            raise
        self.port = int(self._runner.addresses[0][1])
        self.url = f"http://{_url_host(cfg.host)}:{self.port}"
        self.expire_uploads.start()
        self.gc_loop.start()
        for loop in self.durability_loops:  # durability slice B
            loop.start()
        if cfg.retain_interval > 0:
            self.retain_loop.start()
        log.info("coordinator %s serving at %s", self.identity.id, self.url)

    @property
    def durability_loops(self) -> list[DrivenLoop]:
        """Audit, repair checker and repair worker loops (durability slice B)."""
        return [self.audit_loop, self.checker_loop, self.repair_loop]

    async def stop(self) -> None:
        if hasattr(self, "expire_uploads"):
            await self.expire_uploads.stop()
        for name in ("gc_loop", "retain_loop", "audit_loop", "checker_loop", "repair_loop"):
            if hasattr(self, name):
                await getattr(self, name).stop()
        if self.session is not None:
            await self.session.close()
            self.session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if hasattr(self, "db"):
            await self.db.close()


def _after_first_interval(
    interval: float, work: Callable[[], Awaitable[object]]
) -> Callable[[], Awaitable[float]]:
    """A loop step that waits one ``interval`` before its first ``work``.

    Reconciliation right at start would find nodes not yet rejoined and send
    nothing; the first round waits a whole interval instead.
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


async def run_coordinator(config: CoordinatorConfig) -> None:
    """Run a coordinator until cancelled."""
    service = CoordinatorService(config)
    await service.start()
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()
