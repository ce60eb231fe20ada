"""The coordinator peer: its subsystems, one route table and one lifecycle."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import sqlalchemy as sa
from aiohttp import web

import skymesh
from skymesh import console
from skymesh.codec import RedundancyScheme
from skymesh.config import CoordinatorConfig
from skymesh.coordinator.accounting.service import AccountingService
from skymesh.coordinator.auth import Auth
from skymesh.coordinator.db.engine import Database, default_url
from skymesh.coordinator.durability.service import DurabilityService
from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.events import RecentEvents
from skymesh.coordinator.inference.compute import ComputeAdverts
from skymesh.coordinator.inference.service import InferenceService
from skymesh.coordinator.keyring import Keyring, register_key
from skymesh.coordinator.lease_keeper import LeaseKeeper
from skymesh.coordinator.leases import LeaseBook, holder_id
from skymesh.coordinator.lifecycle import Lifecycle, Subsystem
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.roots import RootKey, load_root_key
from skymesh.coordinator.metainfo.service import MetainfoService
from skymesh.coordinator.metrics import CoordinatorMetrics, Watched
from skymesh.coordinator.orders import OrderSigner
from skymesh.coordinator.overlay.service import OverlayService
from skymesh.coordinator.projects import ProjectAdmin, add_project_routes
from skymesh.coordinator.status import StatusReport
from skymesh.errors import ConfigError, SchemeError
from skymesh.private import private_dir
from skymesh.rpc import NO_REDIRECTS
from skymesh.wire import routes
from skymesh.wire.base import Health
from skymesh.wire.identity import Identity
from skymesh.wire.keys import CoordinatorKeyInfo, CoordinatorKeyList
from skymesh.wire.leases import LeaseList
from skymesh.wire.registry import PeerIdentity

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.key"
NODE_RPC_TIMEOUT = aiohttp.ClientTimeout(total=60.0, sock_connect=5.0)  # gc deletes, retain posts


class CoordinatorService:
    """One coordinator: ``await open(config)``, ``await start()``, serve at ``url``, ``await stop()``.

    Built of five subsystems, each constructed with what it needs: ``overlay``
    (nodes and their reputation), ``metainfo`` (projects and the metadata API),
    ``durability`` (audit, repair, garbage collection, retain), ``inference``
    (compute, batch orders, metering) and ``accounting`` (settled orders, hourly
    rollups, payouts). ``loops`` holds every background loop by name;
    each runs only while this coordinator holds its lease (``leases``), so several
    coordinators can share one database and any of them answers any call.
    """

    @classmethod
    async def open(
        cls,
        config: CoordinatorConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> CoordinatorService:
        """Load the identity, open (and migrate) the database, register the identity's key
        among the network's coordinator keys, and build; nothing runs yet.

        Raises :class:`ConfigError` when the key was retired (``coordinator/keyring.py``).
        ``clock`` and ``rng`` are for tests (expiry, offline nodes, placement).
        """
        try:
            fixed_scheme = RedundancyScheme.parse(config.scheme) if config.scheme else None
        except SchemeError as e:
            raise ConfigError(f"coordinator scheme: {e}") from e
        data_dir = private_dir(Path(config.data_dir))
        identity = Identity.load_or_create(data_dir / IDENTITY_FILE)
        db = await Database.open(config.database_url or default_url(data_dir))
        try:
            await register_key(db, identity, _configured_url(config), clock())
            roots = await load_root_key(db, clock())
            return cls(
                config,
                identity,
                db,
                roots,
                fixed_scheme=fixed_scheme,
                clock=clock,
                rng=rng or random.Random(),
            )
        except BaseException:
            await db.close()
            raise

    def __init__(
        self,
        config: CoordinatorConfig,
        identity: Identity,
        db: Database,
        roots: RootKey,
        *,
        fixed_scheme: RedundancyScheme | None,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.config = config
        self.identity = identity
        self.db = db
        self.clock = clock
        self.port = 0
        self.url = ""
        self.metrics = CoordinatorMetrics()  # GET /metrics (admin)
        db.observer = self.metrics
        self.session = aiohttp.ClientSession(  # to nodes: redirects never followed
            timeout=NODE_RPC_TIMEOUT, middlewares=NO_REDIRECTS
        )
        self.auth = Auth(db, config.admin_token, clock)
        self.orders = OrderSigner(identity, config.order_ttl, clock)
        self.keyring = Keyring(db, identity, clock=clock)  # the network's coordinator keys
        adverts = ComputeAdverts(db, clock=clock)
        self.overlay = OverlayService(
            config, db, identity, self.keyring, clock=clock, on_heartbeat=adverts.observe
        )
        context = Metainfo(
            config=config,
            db=db,
            registry=self.overlay.registry,
            orders=self.orders,
            roots=roots,
            fixed_scheme=fixed_scheme,
            clock=clock,
            rng=rng,
        )
        self.metainfo = MetainfoService(context, self.auth)
        self.durability = DurabilityService(
            context, self.overlay.reputation, identity, self.session
        )
        self.inference = InferenceService(
            context, adverts, identity, self.keyring, self.overlay.compute
        )
        self.accounting = AccountingService(context, self.keyring)
        subsystems: tuple[Subsystem, ...] = (
            self.overlay,
            self.metainfo,
            self.durability,
            self.inference,
            self.accounting,
        )

        book = LeaseBook(db, holder_id(identity.id), config.lease_ttl, clock)
        self.leases = LeaseKeeper(book)

        self.table = RouteTable(
            self.auth, self.inference.check_order, observe=self.metrics.api_request
        )
        self._add_routes(self.table)
        for subsystem in subsystems:
            subsystem.add_routes(self.table)
        # the administrator's projects and keys (`skymesh project`, `skymesh keys`)
        add_project_routes(self.table, ProjectAdmin(db, self.inference.keys, clock))
        self.events = RecentEvents()  # this process's last warnings, for GET /v1/admin/status
        StatusReport(
            identity.id,
            self.keyring,
            self.overlay,
            self.durability,
            self.inference,
            self.leases,
            self.events,
        ).add_routes(self.table)
        self._runner: web.AppRunner | None = None

        self.lifecycle = Lifecycle()
        self.lifecycle.add("recent warnings", start=self.events.attach, stop=self.events.detach)
        self.lifecycle.add("database", stop=db.close)
        self.lifecycle.add("session to nodes", stop=self.session.close)
        # stopped after the HTTP server (no new status call), before the database closes
        self.lifecycle.add("durability tally", stop=self.durability.tally.close)
        self.lifecycle.add("node and reputation caches", start=self.overlay.load)
        self.lifecycle.add("HTTP server", start=self._serve, stop=self._unserve)
        self.lifecycle.add("coordinator key's URL", start=self._register_url)
        # Started before the loops (each holds its lease before its first step) and
        # stopped after them (released only once no step of ours can be running).
        self.lifecycle.add("loop leases", start=self.leases.start, stop=self.leases.stop)
        for subsystem in subsystems:
            for chore in subsystem.chores:
                if chore.runs:
                    self.leases.keep(chore.loop)
            self.lifecycle.add_chores(subsystem.chores)
        self.loops = self.lifecycle.loops
        self.metrics.watch(
            Watched(
                loops=self.loops,
                leases=self.leases,
                overlay=self.overlay,
                durability=self.durability,
                orders=self.orders,
                meter=self.inference.meter,
                settlements=self.accounting.settlements,
            )
        )

    async def start(self) -> None:
        """Serve, then run the loops; a start that fails stops everything (the database too)."""
        await self.lifecycle.start()
        log.info("coordinator %s serving at %s", self.identity.id, self.url)

    async def stop(self) -> None:
        await self.lifecycle.stop()

    async def crash(self) -> None:
        """Stop as a crash looks to callers (tests): the port closes and every connection
        is reset at once, mid-request ones unanswered; then the rest stops as usual
        (what a handler already sent to the database still commits, as a killed
        process's last transaction may)."""
        runner = self._runner
        if runner is not None:
            for site in list(runner.sites):
                await site.stop()
            server = runner.server
            for handler in list(server.connections if server is not None else []):
                if handler.transport is not None:
                    handler.transport.abort()
        await self.leases.abandon()  # a dead process releases nothing: its leases expire
        await self.stop()

    def _add_routes(self, table: RouteTable) -> None:
        """The peer's own: health (the database answers), identity, the network's
        coordinator keys (admin), its loops' leases (admin), its metrics (admin) and the
        admin web console's pages."""
        peer = PeerIdentity(
            id=self.identity.id,
            public_key=self.identity.public_key,
            role="coordinator",
            version=skymesh.__version__,
        )
        db = self.db
        keyring = self.keyring

        async def healthz(_call: Call, _req: None) -> Health:
            await db.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
            return Health(status="ok")

        async def identity(_call: Call, _req: None) -> PeerIdentity:
            return peer

        async def list_keys(_call: Call, _req: None) -> CoordinatorKeyList:
            return await keyring.list()

        async def retire_key(call: Call, _req: None) -> CoordinatorKeyInfo:
            return await keyring.retire(call.request.match_info["coordinator_id"])

        async def leases(_call: Call, _req: None) -> LeaseList:
            return await self.leases.report()

        async def metrics(_call: Call, _req: None) -> bytes:
            return await self.metrics.exposition()

        table.add(routes.HEALTHZ, healthz)
        table.add(routes.IDENTITY, identity)
        table.add(routes.LIST_COORDINATOR_KEYS, list_keys)
        table.add(routes.RETIRE_COORDINATOR_KEY, retire_key)
        table.add(routes.LIST_LEASES, leases)
        table.add(routes.METRICS, metrics)
        table.add_pages(routes.CONSOLE_PATH, console.handler("admin"))

    async def _register_url(self) -> None:
        """Record the URL now served at with this coordinator's key (informative to nodes)."""
        await register_key(self.db, self.identity, self.url, self.clock())
        await self.keyring.load()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.table.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port).start()
        self.port = int(self._runner.addresses[0][1])
        self.url = f"http://{_url_host(self.config.host)}:{self.port}"

    async def _unserve(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _configured_url(config: CoordinatorConfig) -> str:
    """Where the config says this coordinator serves; "" for an ephemeral port."""
    return f"http://{_url_host(config.host)}:{config.port}" if config.port else ""


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


async def run_coordinator(config: CoordinatorConfig) -> None:
    """Run a coordinator until cancelled."""
    service = await CoordinatorService.open(config)
    try:
        await service.start()
        await asyncio.Event().wait()
    finally:
        await service.stop()
