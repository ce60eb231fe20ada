"""A whole skymesh network in one process: real servers on loopback, real SQLite, real disk.

Like Storj's testplanet: a test gets a live coordinator, N nodes and a gateway
as real aiohttp servers on ephemeral ports, and holds a handle to every part.
:class:`PlanetThread` runs it on its own event loop in a background thread, so
synchronous clients (boto3, the AWS CLI) can talk to it from the test.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from skymesh.admin import AdminClient
from skymesh.client.client import Client
from skymesh.config import CoordinatorConfig, Credential, GatewayConfig, NodeConfig
from skymesh.coordinator.service import CoordinatorService
from skymesh.gateway.service import GatewayService
from skymesh.node.service import NodeService

T = TypeVar("T")

DEFAULT_REGIONS = ("eu-west", "us-east", "ap-south")


@dataclass
class Planet:
    root: Path
    node_count: int = 12
    regions: Sequence[str] = DEFAULT_REGIONS
    heartbeat_interval: float = 0.5
    node_capacity: int = 10 * 1024**3
    coordinator_overrides: dict[str, Any] = field(default_factory=dict)
    gateway_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. tls_cert, tls_key
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    coordinator: CoordinatorService | None = None
    nodes: list[NodeService] = field(default_factory=list)
    gateway: GatewayService | None = None
    credential: Credential | None = None
    # ---- inference slice: the first compute_nodes nodes also run `--compute`
    compute_nodes: int = 0
    compute_overrides: dict[str, Any] = field(default_factory=dict)  # NodeConfig fields
    # ---- end inference slice

    async def start(self) -> None:
        settings: dict[str, Any] = {
            "heartbeat_interval": self.heartbeat_interval,
            "offline_after": self.heartbeat_interval * 4,
            **self.coordinator_overrides,  # an override may replace any of the above
        }
        cfg = CoordinatorConfig(
            data_dir=str(self.root / "coordinator"),
            port=0,
            admin_token=self.admin_token,
            **settings,
        )
        self.coordinator = await CoordinatorService.open(cfg)
        await self.coordinator.start()
        for i in range(self.node_count):
            await self.add_node(self.regions[i % len(self.regions)])
        await self.wait_online(self.node_count)
        self.credential = await self.create_credential("default")
        self.gateway = GatewayService(
            GatewayConfig(
                data_dir=str(self.root / "gateway"),
                port=0,
                coordinator_url=self.coordinator.url,
                **self.gateway_overrides,
            ),
            credentials=[self.credential],
        )
        await self.gateway.start()

    async def add_node(
        self, region: str, capacity: int | None = None, **overrides: Any
    ) -> NodeService:
        assert self.coordinator is not None
        i = len(self.nodes)
        if i < self.compute_nodes:  # inference slice
            overrides = {"compute": True, **self.compute_overrides, **overrides}
        node = NodeService(
            NodeConfig(
                data_dir=str(self.root / f"node-{i:02d}"),
                port=0,
                region=region,
                operator=f"op-{i % 5}",
                capacity_bytes=capacity or self.node_capacity,
                coordinator_url=self.coordinator.url,
                heartbeat_interval=self.heartbeat_interval,
                fsync=False,
                **overrides,
            )
        )
        await node.start()
        self.nodes.append(node)
        return node

    async def wait_online(self, count: int, timeout: float = 20.0) -> None:
        """Until the coordinator counts ``count`` nodes online."""
        assert self.coordinator is not None
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as s:
            admin = AdminClient(self.coordinator.url, self.admin_token, s)
            while True:
                online = await admin.online_count()
                if online >= count:
                    return
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{online} of {count} nodes online")
                await asyncio.sleep(0.05)

    async def create_credential(self, name: str) -> Credential:
        """A new project with one S3 access key, as ``skymesh up`` makes one."""
        assert self.coordinator is not None
        async with aiohttp.ClientSession() as s:
            return await AdminClient(self.coordinator.url, self.admin_token, s).create_credential(
                name
            )

    def client(self, credential: Credential | None = None) -> Client:
        """A data-path client for a project (the library users embed)."""
        assert self.coordinator is not None
        cred = credential or self.credential
        assert cred is not None
        return Client.for_project(
            self.coordinator.url,
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
            await node.stop()
        if self.coordinator is not None:
            await self.coordinator.stop()


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
