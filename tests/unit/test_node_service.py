"""NodeService lifecycle and its coordinator link, against a stand-in coordinator."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiohttp import web

from skymesh.config import NodeConfig
from skymesh.loops import DrivenLoop
from skymesh.node.diskstore import DiskPieceStore
from skymesh.node.service import NodeService, run_node
from skymesh.node.trust import TRUST_FILE
from skymesh.rpc import json_response, read_json
from skymesh.wire.identity import Identity
from skymesh.wire.node import Order, PieceAction
from skymesh.wire.pieces import new_serial
from skymesh.wire.registry import Heartbeat, HeartbeatResponse, JoinResponse, NodeInfo, PeerIdentity
from skymesh.wire.signing import ORDER_HEADER, Signed, encode_header, open_signed, sign


class FakeCoordinator:
    """Just enough of a coordinator: identity, join, heartbeat. Verifies what nodes sign."""

    def __init__(self, identity: Identity | None = None, interval: float = 0.05):
        self.identity = identity or Identity.generate()
        self.interval = interval
        self.nodes: dict[str, NodeInfo] = {}
        self.heartbeats: list[Heartbeat] = []
        self.down = False
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/identity", self._identity)
        app.router.add_post("/v1/nodes/join", self._join)
        app.router.add_post("/v1/nodes/heartbeat", self._heartbeat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _check_up(self) -> None:
        if self.down:
            raise web.HTTPServiceUnavailable()

    async def _identity(self, request: web.Request) -> web.Response:
        self._check_up()
        ident = self.identity
        return json_response(
            PeerIdentity(id=ident.id, public_key=ident.public_key, role="coordinator")
        )

    async def _join(self, request: web.Request) -> web.Response:
        self._check_up()
        signed = await read_json(request, Signed)
        info = open_signed(signed, NodeInfo)
        assert signed.signer_id == info.node_id
        self.nodes[info.node_id] = info
        return json_response(
            JoinResponse(
                coordinator_id=self.identity.id,
                coordinator_public_key=self.identity.public_key,
                heartbeat_interval=self.interval,
            )
        )

    async def _heartbeat(self, request: web.Request) -> web.Response:
        self._check_up()
        signed = await read_json(request, Signed)
        beat = open_signed(signed, Heartbeat)
        assert signed.signer_id == beat.node_id
        self.heartbeats.append(beat)
        return json_response(
            HeartbeatResponse(heartbeat_interval=self.interval, known=beat.node_id in self.nodes)
        )

    def order(self, node_id: str, piece_id: str, action: PieceAction) -> dict[str, str]:
        now = time.time()
        order = Order(
            serial=new_serial(),
            coordinator_id=self.identity.id,
            node_id=node_id,
            piece_id=piece_id,
            action=action,
            max_bytes=1 << 20,
            expires_at=now + 60,
            issued_at=now,
        )
        return {ORDER_HEADER: encode_header(sign(self.identity, order))}


@pytest.fixture
async def coordinator() -> AsyncIterator[FakeCoordinator]:
    c = FakeCoordinator()
    await c.start()
    yield c
    await c.stop()


def config(data_dir: Path, coordinator_url: str, **overrides: object) -> NodeConfig:
    values: dict[str, object] = {
        "data_dir": str(data_dir),
        "port": 0,
        "region": "eu-west",
        "capacity_bytes": 1 << 30,
        "coordinator_url": coordinator_url,
        "heartbeat_interval": 0.05,
        "fsync": False,
    }
    values.update(overrides)
    return msgspec.convert(values, NodeConfig)


async def put(service: NodeService, headers: dict[str, str], piece_id: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.put(f"{service.address}/v1/pieces/{piece_id}", data=b"p" * 100, headers=headers) as r,
    ):
        return r.status


async def test_trust_on_first_use_join_and_heartbeat(
    tmp_path: Path, coordinator: FakeCoordinator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="skymesh.node")
    service = NodeService(config(tmp_path, coordinator.url), run_loops=False)
    await service.start()
    try:
        assert service.address == f"http://127.0.0.1:{service.port}"
        piece = "cd" * 32
        headers = coordinator.order(service.node_id, piece, PieceAction.PUT)
        assert await put(service, headers, piece) == 403  # nobody trusted yet

        assert await service.heartbeat.run_once() == pytest.approx(0.05)
        assert (service.link.joined, service.link.coordinator_id) == (True, coordinator.identity.id)
        info = coordinator.nodes[service.node_id]
        assert (info.address, info.region, info.capacity_bytes) == (
            service.address,
            "eu-west",
            1 << 30,
        )
        assert coordinator.identity.public_key.hex() in (tmp_path / TRUST_FILE).read_text()
        assert "trust on first use: pinned coordinator" in caplog.text
        assert f"as node {service.node_id} in region eu-west" in caplog.text
        assert await put(service, headers, piece) == 201

        await service.heartbeat.run_once()
        assert coordinator.heartbeats[-1].used_bytes == 100

        coordinator.nodes.clear()  # the coordinator forgets us: join again
        assert await service.heartbeat.run_once() == 0
        assert not service.link.joined
        await service.heartbeat.run_once()
        assert service.node_id in coordinator.nodes
    finally:
        await service.stop()


async def test_pinned_key_is_kept_across_restarts(
    tmp_path: Path, coordinator: FakeCoordinator
) -> None:
    service = NodeService(config(tmp_path, coordinator.url), run_loops=False)
    await service.start()
    await service.heartbeat.run_once()
    await service.stop()

    impostor = FakeCoordinator()
    await impostor.start()
    service = NodeService(config(tmp_path, impostor.url), run_loops=False)
    await service.start()
    try:
        assert service.verifier.trusted_keys == {coordinator.identity.public_key}
        delay = await service.heartbeat.run_once()
        assert delay > 0 and not service.link.joined and not impostor.nodes
        assert "does not trust" in (service.link.last_error or "")
        piece = "ef" * 32
        assert (
            await put(service, impostor.order(service.node_id, piece, PieceAction.PUT), piece)
            == 403
        )
        assert (
            await put(service, coordinator.order(service.node_id, piece, PieceAction.PUT), piece)
            == 201
        )
    finally:
        await service.stop()
        await impostor.stop()


async def test_configured_keys_win(tmp_path: Path, coordinator: FakeCoordinator) -> None:
    other = Identity.generate()
    cfg = config(tmp_path, coordinator.url, trusted_coordinators=[other.public_key.hex()])
    service = NodeService(cfg, run_loops=False)
    await service.start()
    try:
        await service.heartbeat.run_once()
        assert not service.link.joined and not (tmp_path / TRUST_FILE).exists()
        cfg2 = config(
            tmp_path,
            coordinator.url,
            trusted_coordinators=[other.public_key.hex(), coordinator.identity.public_key.hex()],
        )
    finally:
        await service.stop()
    service = NodeService(cfg2, run_loops=False)
    await service.start()
    try:
        await service.heartbeat.run_once()
        assert service.link.joined
    finally:
        await service.stop()


async def test_unreachable_coordinator(
    tmp_path: Path, coordinator: FakeCoordinator, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    cfg = config(tmp_path, dead, trusted_coordinators=[coordinator.identity.public_key.hex()])
    service = NodeService(cfg, run_loops=False)
    await service.start()
    try:
        caplog.set_level(logging.WARNING, logger="skymesh.node")
        delays = [await service.heartbeat.run_once() for _ in range(4)]
        assert all(d > 0 for d in delays) and delays[-1] > delays[0]  # backing off
        assert caplog.text.count("still serving pieces") == 1  # one warning per outage
        assert service.link.failures == 4
        piece = "12" * 32  # still serving pieces
        assert (
            await put(service, coordinator.order(service.node_id, piece, PieceAction.PUT), piece)
            == 201
        )
    finally:
        await service.stop()


async def test_outage_and_recovery(
    tmp_path: Path, coordinator: FakeCoordinator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="skymesh.node")
    service = NodeService(config(tmp_path, coordinator.url), run_loops=False)
    await service.start()
    try:
        await service.heartbeat.run_once()
        coordinator.down = True
        assert await service.heartbeat.run_once() >= 0.25
        assert await service.heartbeat.run_once() >= 0.5
        assert caplog.text.count("still serving pieces") == 1
        coordinator.down = False
        assert await service.heartbeat.run_once() == pytest.approx(0.05)
        assert "reachable again" in caplog.text and service.link.failures == 0
    finally:
        await service.stop()


async def test_background_loop_joins_and_beats(
    tmp_path: Path, coordinator: FakeCoordinator
) -> None:
    service = NodeService(config(tmp_path, coordinator.url))
    await service.start()
    try:
        for _ in range(200):
            if len(coordinator.heartbeats) >= 2:
                break
            await asyncio.sleep(0.01)
        assert service.node_id in coordinator.nodes and len(coordinator.heartbeats) >= 2
        service.heartbeat.pause()
        await asyncio.sleep(0.1)
        seen = len(coordinator.heartbeats)
        await asyncio.sleep(0.15)
        assert len(coordinator.heartbeats) == seen
    finally:
        await service.stop()
    assert not service.heartbeat.running


async def test_driven_loop() -> None:
    calls: list[int] = []

    async def step() -> float:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("a bug in a step")
        return 3600.0

    loop = DrivenLoop("test", step)
    loop.start()
    try:
        await asyncio.sleep(0.01)
        assert calls == [0] and loop.runs == 1
        loop.pause()
        loop.trigger()
        await asyncio.sleep(0.01)
        assert calls == [0]  # paused: the trigger waits
        loop.resume()
        await asyncio.sleep(0.01)
        assert calls == [0, 1]  # raised; the loop lives on
        assert await loop.run_once() == 3600.0
        assert calls == [0, 1, 2]
    finally:
        await loop.stop()
    assert not loop.running


async def test_run_node_until_cancelled(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config(tmp_path, "http://127.0.0.1:9", port=port, public_address="http://node.example:1")
    task = asyncio.create_task(run_node(cfg))
    for _ in range(200):
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/healthz") as r,
            ):
                assert r.status == 200
                break
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.02)
    else:
        pytest.fail("node did not come up")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    DiskPieceStore(tmp_path, 1 << 20, 4096).close()  # its lock was released
    assert (tmp_path / "identity.key").is_file()
