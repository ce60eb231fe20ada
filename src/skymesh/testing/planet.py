"""A whole skymesh network in one process: real servers on loopback, real SQLite, real disk.

Like Storj's testplanet: a test describes the network in a :class:`PlanetConfig`
and gets a live coordinator, N nodes and a gateway as real aiohttp servers on
ephemeral ports, and holds a handle to every part. Faults have names on the
planet: :meth:`Planet.fault` makes a node's store lie or fill up,
:meth:`Planet.lie` makes a compute node answer a model wrongly,
:meth:`Planet.hang` makes it unreachable while it stays online,
:meth:`Planet.heal` undoes the store fault and the hang, and :meth:`Planet.stop_node` and
:meth:`Planet.start_node` take it down and bring it back. With
``PlanetConfig.coordinators`` above one, several coordinators share one database,
every node and the gateway get all their URLs, and :meth:`Planet.stop_coordinator`
(clean or crash-like) and :meth:`Planet.start_coordinator` take one down and bring
it back. :class:`PlanetThread`
runs a planet on its own event loop in a background thread, so synchronous
clients (boto3, the AWS CLI) can talk to it from the test.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

from skymesh.admin import AdminClient, InferenceKeys
from skymesh.client.client import Client
from skymesh.config import CoordinatorConfig, Credential, GatewayConfig, NodeConfig
from skymesh.coordinator.db.engine import DB_FILE
from skymesh.coordinator.service import CoordinatorService
from skymesh.gateway.service import GatewayService
from skymesh.node.diskstore import DiskPieceStore
from skymesh.node.service import NodeService
from skymesh.testing import sqlite_template
from skymesh.testing.faults import Fault, FaultyStore, Hang, WriteGate
from skymesh.testing.lying_compute import lie
from skymesh.wire.registry import NodeStatus

T = TypeVar("T")

DEFAULT_REGIONS = ("eu-west", "us-east", "ap-south")


@dataclass(frozen=True)
class PlanetConfig:
    """The shape of a test network.

    Overrides are config fields of one role each. They win over the planet's own
    settings (heartbeats, liveness, operators, ``fsync`` off; compute without vetting
    audits, ``compute_vetting_audits`` 0, as on ``skymesh up``; no spot checks,
    ``spot_check_fraction`` 0, so a test sees only the requests it makes) but not over
    where a part lives and whom it talks to (data directory, port, region,
    coordinator URL).
    """

    node_count: int = 12
    # coordinators over one database: a SQLite file under the planet's root (WAL works
    # across engines) unless database_url names one; nodes follow the key set
    coordinators: int = 1
    regions: Sequence[str] = DEFAULT_REGIONS  # node i is in regions[i % len(regions)]
    heartbeat_interval: float = 0.5  # nodes count as offline after four missed
    node_capacity: int = 10 * 1024**3
    compute_nodes: int = 0  # the first compute_nodes nodes also run `--compute`
    coordinator_overrides: Mapping[str, Any] = field(default_factory=dict)
    gateway_overrides: Mapping[str, Any] = field(default_factory=dict)  # e.g. tls_cert, tls_key
    node_overrides: Mapping[str, Any] = field(default_factory=dict)  # every node
    compute_overrides: Mapping[str, Any] = field(default_factory=dict)  # compute nodes
    fault_hooks: bool = True  # nodes store through FaultyStore; benchmarks measure DiskPieceStore
    # the coordinators' metadata database; "" is SQLite (in the coordinator's folder, or
    # shared under the root by several)
    database_url: str = ""


class Planet:
    """A network on this event loop: :meth:`start` it, :meth:`stop` it."""

    def __init__(self, root: Path, config: PlanetConfig | None = None):
        self.root = root
        self.config = config or PlanetConfig()
        self.admin_token = secrets.token_urlsafe(16)
        self.coordinator: CoordinatorService | None = None  # the first of coordinators
        self.coordinators: list[CoordinatorService] = []
        self._coordinator_configs: list[CoordinatorConfig] = []
        self.nodes: list[NodeService] = []
        self.gateway: GatewayService | None = None
        self.credential: Credential | None = None
        self.inference_key = ""  # an inference API key of the default project (OpenAI API)
        self._hangs: dict[str, Hang] = {}  # by node id
        # operator -> (regions, compute) it is admitted with, and its latest join token
        self._operators: dict[str, tuple[frozenset[str], bool, str]] = {}

    async def start(self) -> None:
        config = self.config
        settings: dict[str, Any] = {
            "heartbeat_interval": config.heartbeat_interval,
            "offline_after": config.heartbeat_interval * 4,
            "compute_vetting_audits": 0,
            **config.coordinator_overrides,
        }
        database_url = config.database_url
        if config.coordinators > 1 and not database_url:
            shared = sqlite_template.seed(self.root / "coordinators.sqlite3")
            database_url = f"sqlite:///{shared.resolve()}"
        for i in range(config.coordinators):
            data_dir = self.root / ("coordinator" if i == 0 else f"coordinator-{i}")
            if not database_url:  # SQLite in its folder: a copy of a migrated database
                sqlite_template.seed(data_dir / DB_FILE)
            cfg = CoordinatorConfig(
                data_dir=str(data_dir),
                port=0,
                admin_token=self.admin_token,
                database_url=database_url,
                **settings,
            )
            self._coordinator_configs.append(cfg)
            service = await CoordinatorService.open(cfg)  # one at a time: each migrates
            await service.start()
            # a restart (start_coordinator) comes back on the same port: URLs stay valid
            self._coordinator_configs[i] = msgspec.structs.replace(cfg, port=service.port)
            self.coordinators.append(service)
        self.coordinator = self.coordinators[0]
        # Each operator admitted once for every region, before any node joins: admitting
        # again replaces the token, and a node not yet joined with the old one is refused.
        # Operators of compute nodes hold compute admission, the others do not.
        computes: dict[str, bool] = {}
        for i in range(config.node_count):
            node = self._settings(i)
            computes[node["operator"]] = computes.get(node["operator"], False) or bool(
                node.get("compute")
            )
        for op, compute in sorted(computes.items()):
            for region in config.regions:
                await self.admit(op, region, compute=compute)
        for i in range(config.node_count):
            await self.add_node(config.regions[i % len(config.regions)])
        await self.wait_online(config.node_count)
        self.credential = await self.create_credential("default")
        self.inference_key = await self.create_inference_key(self.credential)
        self.gateway = GatewayService(
            GatewayConfig(
                data_dir=str(self.root / "gateway"),
                port=0,
                coordinator_url=self.coordinator.url,
                coordinator_urls=self.coordinator_urls,
                **{"spot_check_fraction": 0.0, **config.gateway_overrides},
            ),
            credentials=[self.credential],
        )
        await self.gateway.start()

    async def admit(self, operator: str, region: str, compute: bool = False) -> str:
        """A join token of ``operator`` for ``region``: the administrator admits it (again,
        with the region or compute added, when its admission lacks them)."""
        assert self.coordinator is not None
        regions, computes, token = self._operators.get(operator, (frozenset(), False, ""))
        if region not in regions or (compute and not computes):
            regions, computes = regions | {region}, computes or compute
            async with aiohttp.ClientSession() as s:
                admin = AdminClient(self.coordinator_urls, self.admin_token, s)
                admission = await admin.admit_operator(operator, sorted(regions), compute=computes)
            token = admission.join_token
            self._operators[operator] = (regions, computes, token)
        return token

    async def add_node(
        self, region: str, capacity: int | None = None, **overrides: Any
    ) -> NodeService:
        """Start one more node, with a join token of its operator for its region;
        ``overrides`` are NodeConfig fields (``join_token`` among them)."""
        assert self.coordinator is not None
        i = len(self.nodes)
        # every coordinator, unless the test names the ones this node reaches
        settings = {"coordinator_urls": self.coordinator_urls, **self._settings(i), **overrides}
        if "join_token" not in settings:
            compute = bool(settings.get("compute"))
            settings["join_token"] = await self.admit(settings["operator"], region, compute)
        node = NodeService(
            NodeConfig(
                data_dir=str(self.root / f"node-{i:02d}"),
                port=0,
                region=region,
                capacity_bytes=capacity or self.config.node_capacity,
                coordinator_url=self.coordinator.url,
                **settings,
            ),
            open_store=FaultyStore.open if self.config.fault_hooks else DiskPieceStore.open,
        )
        await node.start()
        self.nodes.append(node)
        return node

    @property
    def coordinator_urls(self) -> list[str]:
        """Every coordinator's URL, running or stopped (a stopped one keeps its port)."""
        return [f"http://127.0.0.1:{c.port}" for c in self._coordinator_configs]

    async def stop_coordinator(self, i: int, *, crash: bool = False) -> None:
        """Stop coordinator ``i``: cleanly (in-flight calls finish), or with ``crash`` as a
        killed process looks to its callers (connections reset, calls unanswered)."""
        service = self.coordinators[i]
        await (service.crash() if crash else service.stop())

    async def start_coordinator(self, i: int) -> CoordinatorService:
        """Start stopped coordinator ``i`` again: its identity, the shared database and its
        port, so every node and gateway reaches it at the URL they were given."""
        service = await CoordinatorService.open(self._coordinator_configs[i])
        await service.start()
        self.coordinators[i] = service
        if i == 0:
            self.coordinator = service
        return service

    def _settings(self, i: int) -> dict[str, Any]:
        """The NodeConfig fields the planet gives its ``i``-th node."""
        settings: dict[str, Any] = {
            "operator": f"op-{i % 5}",
            "heartbeat_interval": self.config.heartbeat_interval,
            "fsync": False,
            **self.config.node_overrides,
        }
        if i < self.config.compute_nodes:
            settings.update(compute=True, **self.config.compute_overrides)
        return settings

    async def wait_online(self, count: int, timeout: float = 20.0) -> None:
        """Until the coordinator counts ``count`` nodes online."""
        await self._wait_nodes(
            lambda nodes: sum(n.online for n in nodes.values()) >= count,
            f"{count} nodes online",
            timeout,
        )

    async def wait_offline(self, nodes: Collection[NodeService], timeout: float = 15.0) -> None:
        """Until the coordinator counts every one of ``nodes`` offline."""
        ids = {n.node_id for n in nodes}
        await self._wait_nodes(
            lambda listed: not any(listed[i].online for i in ids if i in listed),
            f"nodes {sorted(ids)} offline",
            timeout,
        )

    async def _wait_nodes(
        self, done: Callable[[dict[str, NodeStatus]], bool], what: str, timeout: float
    ) -> None:
        """Until ``done`` holds of the coordinator's node list (as its admin API gives it)."""
        assert self.coordinator is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as s:
            admin = AdminClient(self.coordinator_urls, self.admin_token, s)
            while True:
                listed = {n.node_id: n for n in (await admin.nodes()).nodes}
                if done(listed):
                    return
                if loop.time() > deadline:
                    raise TimeoutError(f"the coordinator never saw {what}")
                await asyncio.sleep(0.05)

    async def _wait_address(self, node: NodeService, address: str, timeout: float = 10.0) -> None:
        """Until the coordinator lists ``node`` online at ``address``."""
        await self._wait_nodes(
            lambda listed: (
                node.node_id in listed
                and listed[node.node_id].online
                and listed[node.node_id].address == address
            ),
            f"node {node.node_id} online at {address}",
            timeout,
        )

    # ------------------------------------------------------------ faults

    def store(self, node: NodeService) -> FaultyStore:
        """The piece store of a node of this planet, on which faults are set."""
        store = node.store
        if not isinstance(store, FaultyStore):
            raise TypeError(f"node {node.node_id} has no fault hooks (PlanetConfig.fault_hooks)")
        return store

    def fault(self, node: NodeService, fault: Fault) -> FaultyStore:
        """From now on ``node``'s store misbehaves as ``fault`` says (see
        :mod:`skymesh.testing.faults`), until :meth:`heal`."""
        store = self.store(node)
        store.fault = fault
        return store

    async def lie(self, node: NodeService, model: str) -> None:
        """From now on compute node ``node`` answers ``model`` wrongly (embeddings off by
        noise, chats with other tokens: :mod:`skymesh.testing.lying_compute`), for good."""
        if node.compute is None:
            raise TypeError(f"node {node.node_id} runs no compute")
        await lie(node.compute, model)

    def hold_writes(self, nodes: Collection[NodeService] | None = None) -> WriteGate:
        """Hold every piece write on ``nodes`` (all by default) until the gate is opened.

        Call it on the planet's loop (inside :meth:`PlanetThread.run`)."""
        return WriteGate([self.store(n) for n in (self.nodes if nodes is None else nodes)])

    async def hang(self, node: NodeService) -> Hang:
        """Make ``node`` unreachable but online, and wait until the coordinator hands
        out its black-hole address; until :meth:`heal`."""
        if node.node_id in self._hangs:
            raise RuntimeError(f"node {node.node_id} is already hung")
        h = self._hangs[node.node_id] = Hang(node)
        await self._wait_address(node, h.address)
        return h

    async def heal(self, node: NodeService) -> None:
        """Undo :meth:`fault` and :meth:`hang` on ``node``; a hung node is healed once
        the coordinator hands out its real address again."""
        self.store(node).fault = None
        h = self._hangs.pop(node.node_id, None)
        if h is not None:
            h.close()
            await self._wait_address(node, h.real_address)

    async def stop_node(self, node: NodeService) -> None:
        """Stop ``node`` as a crash would look to others (they learn it from missed
        heartbeats: see :meth:`wait_offline`)."""
        h = self._hangs.pop(node.node_id, None)
        if h is not None:
            h.close()
        await node.stop()

    async def start_node(self, node: NodeService) -> None:
        """Start a stopped node again: the same identity and pieces, a new port. Returns
        once the coordinator lists it online at its new address."""
        await node.start()
        await self._wait_address(node, node.address)

    # ------------------------------------------------------------ clients

    async def create_credential(self, name: str) -> Credential:
        """A new project with one S3 access key, as ``skymesh up`` makes one."""
        assert self.coordinator is not None
        async with aiohttp.ClientSession() as s:
            return await AdminClient(self.coordinator_urls, self.admin_token, s).create_credential(
                name
            )

    async def create_inference_key(self, credential: Credential, name: str = "test") -> str:
        """A new inference API key of ``credential``'s project: the OpenAI API's bearer key."""
        assert self.coordinator is not None
        async with aiohttp.ClientSession() as s:
            keys = InferenceKeys(self.coordinator_urls, credential.api_key, s)
            return (await keys.create(name)).key

    def client(self, credential: Credential | None = None) -> Client:
        """A data-path client for a project (the library users embed)."""
        assert self.coordinator is not None
        cred = credential or self.credential
        assert cred is not None
        return Client.for_project(
            self.coordinator_urls,
            cred.api_key,
            cred.project_id,
            bytes.fromhex(cred.encryption_secret),
        )

    @property
    def endpoint(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        for node in self.nodes:
            await self.stop_node(node)
        for coordinator in self.coordinators:
            await coordinator.stop()  # (a stopped one again: its lifecycle makes it a no-op)


class PlanetThread:
    """Runs a :class:`Planet` on an event loop in a background thread."""

    def __init__(self, planet: Planet):
        self.planet = planet
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="planet", daemon=True)

    def start(self) -> PlanetThread:
        self._thread.start()
        self.run(self.planet.start())
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 300) -> T:
        """Run ``coro`` on the planet's loop and wait for its result."""
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop(self) -> None:
        try:
            self.run(self.planet.stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    def boto3(
        self, credential: Credential | None = None, verify: str | bool | None = None, **config: Any
    ) -> Any:
        """A boto3 S3 client for the planet's gateway (path-style, like most S3-compatible use).

        ``verify``: over HTTPS, the CA bundle to trust (boto3's own argument)."""
        import boto3
        from botocore.config import Config

        cred = credential or self.planet.credential
        assert cred is not None
        return boto3.client(
            "s3",
            endpoint_url=self.planet.endpoint,
            aws_access_key_id=cred.access_key_id,
            aws_secret_access_key=cred.secret_access_key,
            region_name="us-east-1",
            verify=verify,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1, "mode": "standard"},
                **config,
            ),
        )
