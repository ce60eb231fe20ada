"""A provider node process: one lifecycle for the HTTP server and background loops.

``data_dir`` holds everything the node keeps::

    identity.key            the node's Ed25519 seed (its id derives from the key)
    trusted_coordinators    coordinator keys trusted: pinned on first use, then the
                            network's latest key statement (see node.trust)
    orders.sqlite3          spent order serials, get allowances, orders to settle
    lock, pieces/, tmp/     the piece store (see node.diskstore)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from skymesh.codec.merkle import DEFAULT_CHUNK_SIZE as MERKLE_CHUNK_SIZE
from skymesh.config import NodeConfig
from skymesh.failover import Endpoints
from skymesh.loops import DrivenLoop
from skymesh.metrics import MetricsListener
from skymesh.node.api import NODE, NodeCounters, create_app
from skymesh.node.batch import NodeBatches
from skymesh.node.compute import NodeCompute
from skymesh.node.diskstore import DiskPieceStore
from skymesh.node.front import FrontSite, PieceFront
from skymesh.node.heartbeat import CoordinatorLink
from skymesh.node.metrics import node_registry
from skymesh.node.orders import OrderVerifier, SerialStore
from skymesh.node.retain import RetainSweeper, install_retain
from skymesh.node.settlement import OrderSettler
from skymesh.node.store import PieceStore, StoreOpener
from skymesh.node.trust import TRUST_FILE, CoordinatorTrust, load_trust
from skymesh.private import private_dir
from skymesh.rpc import NO_REDIRECTS, STREAM_BUFSIZE, RpcClient
from skymesh.wire.identity import Identity

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL = 600.0  # purge expired serials this often
SHUTDOWN_TIMEOUT = 10.0
RPC_TIMEOUT = aiohttp.ClientTimeout(total=15.0, sock_connect=5.0)
RPC_ATTEMPT = 10.0  # seconds one coordinator has to answer before the next is asked


class NodeService:
    """A node: piece store, order verifier, HTTP API and coordinator link.

    ``run_loops=False`` starts the background loops paused, for tests that drive
    them with ``run_once()``. ``open_store`` opens the piece store under
    ``data_dir`` (the test harness opens one it can make faulty). Attributes other
    than ``config`` exist once :meth:`start` has run.
    """

    identity: Identity
    store: PieceStore
    serials: SerialStore
    verifier: OrderVerifier
    trust: CoordinatorTrust  # the trusted coordinator keys, following key statements
    app: web.Application
    session: aiohttp.ClientSession
    link: CoordinatorLink
    heartbeat: DrivenLoop  # join + heartbeats
    maintenance: DrivenLoop  # serial purge
    retainer: RetainSweeper  # reconciliation filters from the coordinator
    retain: DrivenLoop  # applies them
    settler: OrderSettler  # served get orders, settled with the coordinator
    settle: DrivenLoop  # sends them
    port: int  # bound HTTP port
    front: PieceFront  # the connections not (yet) handed to aiohttp
    metrics: CollectorRegistry  # every node metric (docs/operations.md "Metrics")
    address: str  # base URL others use to reach this node

    def __init__(
        self,
        config: NodeConfig,
        *,
        run_loops: bool = True,
        clock: Callable[[], float] = time.time,
        open_store: StoreOpener = DiskPieceStore.open,
    ):
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.run_loops = run_loops
        self.clock = clock
        self.open_store = open_store
        self._runner: web.AppRunner | None = None
        self._loops: list[DrivenLoop] = []
        self._closers: list[Callable[[], object]] = []
        self.metrics_listener: MetricsListener | None = None  # GET /metrics when configured
        self.started = False

    @property
    def node_id(self) -> str:
        return self.identity.id

    @property
    def counters(self) -> NodeCounters:
        return self.app[NODE].counters

    async def start(self) -> None:
        if self.started:
            raise RuntimeError("node already started")
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        self.started = True

    async def _start(self) -> None:
        config = self.config
        private_dir(self.data_dir)
        self.identity = Identity.load_or_create(self.data_dir / "identity.key")
        self.store = await self.open_store(
            self.data_dir, config.capacity_bytes, MERKLE_CHUNK_SIZE, config.fsync
        )
        self._closers.append(self.store.close)
        self.serials = SerialStore(self.data_dir / "orders.sqlite3")
        self._closers.append(self.serials.close)
        trust_file = self.data_dir / TRUST_FILE
        state, may_pin = load_trust(config, trust_file)
        if state.version > 0:
            log.info(
                "trusting %d coordinator key(s) of key statement version %d in %s",
                len(state.keys),
                state.version,
                trust_file,
            )
        elif state.keys and not config.trusted_coordinators:
            log.info("trusting %d coordinator key(s) pinned in %s", len(state.keys), trust_file)
        elif may_pin:
            log.info(
                "no coordinator trusted yet: will pin the key of %s on first contact",
                ", ".join(config.coordinators),
            )
        self.verifier = OrderVerifier(self.identity.id, state.keys, self.serials)
        self.trust = CoordinatorTrust(self.verifier, trust_file, state, may_pin)
        self.app = create_app(self.store, self.verifier, self.identity, clock=self.clock)
        self.retainer = RetainSweeper(self.identity.id, self.store, self.verifier, self.clock)
        install_retain(self.app, self.retainer)
        self.compute: NodeCompute | None = None
        self.batches: NodeBatches | None = None
        if config.compute:
            self.compute = NodeCompute(
                config, self.identity.id, self.verifier, self.clock, identity=self.identity
            )
            self.compute.install(self.app)
            self._closers.append(self.compute.close)
            self.batches = NodeBatches(self.compute, self.clock)
            self.batches.install(self.app)
            self._closers.append(self.batches.close)  # closed first: runs stop before the pool

        self._runner = web.AppRunner(
            self.app,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            access_log=None,
            read_bufsize=STREAM_BUFSIZE,
        )
        await self._runner.setup()
        # piece PUT and GET straight off the socket, the rest by aiohttp (node/front.py)
        site = FrontSite(self._runner, config.host, config.port)
        await site.start()
        self.front = site.front
        self.port = int(self._runner.addresses[0][1])
        self.address = config.public_address.rstrip("/") or _base_url(config.host, self.port)
        if not config.public_address and config.host in ("0.0.0.0", "::", ""):
            log.warning("listening on all interfaces: set public_address so others can reach us")

        self.session = aiohttp.ClientSession(timeout=RPC_TIMEOUT, middlewares=NO_REDIRECTS)
        self.link = CoordinatorLink(
            config=config,
            identity=self.identity,
            store=self.store,
            verifier=self.verifier,
            rpc=RpcClient(
                Endpoints.failover(config.coordinators, RPC_ATTEMPT, sticky=True), self.session
            ),
            address=self.address,
            trust=self.trust,
            clock=self.clock,
        )
        if self.compute is not None:  # adverts ride on heartbeats
            await self.compute.prepare(self.session)
            self.link.advert = self.compute.advert
        self.heartbeat = DrivenLoop("heartbeat", self.link.step)
        self.maintenance = DrivenLoop("maintenance", self._maintain)
        self.retain = DrivenLoop("retain", self.retainer.step)
        self.retainer.wake = self.retain.trigger
        self.settler = OrderSettler(self.identity, self.serials, self.link.rpc, clock=self.clock)
        self.settle = DrivenLoop("settle", self.settler.step)
        self._loops = [self.heartbeat, self.maintenance, self.retain, self.settle]
        loops = list(self._loops)
        self.metrics = node_registry(
            self.counters, self.store, self.verifier, self.retainer, lambda: loops, self.compute
        )
        if config.metrics_address:
            self.metrics_listener = MetricsListener(
                self.metrics, config.metrics_address, "node metrics_address"
            )
            await self.metrics_listener.start()
        for loop in self._loops:
            if not self.run_loops:
                loop.pause()
            loop.start()
        log.info(
            "node %s serving %s from %s (region %s, capacity %d bytes)",
            self.identity.id,
            self.address,
            self.data_dir,
            config.region,
            config.capacity_bytes,
        )

    async def _maintain(self) -> float:
        removed = await asyncio.to_thread(self.serials.purge, self.clock())
        if removed:
            log.debug("purged %d expired order serials", removed)
        return MAINTENANCE_INTERVAL

    async def stop(self) -> None:
        """Stop loops, then the HTTP server, then close the session and stores. Idempotent."""
        loops, self._loops = self._loops, []
        for loop in loops:
            await loop.stop()
        listener, self.metrics_listener = self.metrics_listener, None
        if listener is not None:
            await listener.stop()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        session = getattr(self, "session", None)
        if session is not None and not session.closed:
            await session.close()
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            close()
        if self.started:
            log.info("node %s stopped", self.identity.id)
        self.started = False


def _base_url(host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def run_node(config: NodeConfig) -> None:
    """Run a node until cancelled."""
    service = NodeService(config)
    await service.start()
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()
