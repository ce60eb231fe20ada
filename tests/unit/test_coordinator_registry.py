"""Node registry: signed joins and heartbeats, the online set, the admin node list."""

from __future__ import annotations

from pathlib import Path

import pytest

from skymesh.errors import BadRequest, Forbidden, Unauthorized
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.identity import Identity
from skymesh.wire.keys import CoordinatorKeys
from skymesh.wire.metainfo import CreateProjectRequest
from skymesh.wire.registry import (
    Heartbeat,
    JoinResponse,
    NodeInfo,
)
from skymesh.wire.signing import Signed, open_signed, sign
from tests.unit.test_coordinator_support import FakeNode, running


async def test_identity_and_health(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        peer = await h.client.send(routes.IDENTITY, None)
        assert peer.role == "coordinator"
        assert peer.id == h.service.identity.id
        assert peer.public_key == h.service.identity.public_key
        assert await h.client.request("GET", "/healthz", dict) == {"status": "ok"}


async def test_join_heartbeat_and_offline(database_url: str, tmp_path: Path) -> None:
    async with running(
        tmp_path, database_url=database_url, offline_after=10.0, heartbeat_interval=3.0
    ) as h:
        node = FakeNode(region="eu", operator="acme", capacity=1000, used=10)
        joined = await h.join(node)
        assert joined == JoinResponse(
            coordinator_id=h.service.identity.id,
            coordinator_public_key=h.service.identity.public_key,
            heartbeat_interval=3.0,
            keys=joined.keys,
        )
        assert joined.keys is not None
        statement = open_signed(joined.keys, CoordinatorKeys, [h.coordinator_key])
        assert [k.public_key for k in statement.keys] == [h.coordinator_key]
        assert statement.version == 1 and statement.keys[0].url == h.service.url
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert (status.node_id, status.region, status.operator) == (node.id, "eu", "acme")
        assert status.online and status.capacity_bytes == 1000 and status.used_bytes == 10

        h.clock.advance(11)
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert not status.online

        node.used, node.address = 500, "http://127.0.0.1:7999"
        beat = await h.client.send(routes.HEARTBEAT, node.heartbeat_request(h.clock.now))
        assert beat.known and beat.heartbeat_interval == 3.0
        assert beat.keys == joined.keys  # the same set: the same signed statement
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert status.online and status.used_bytes == 500
        assert status.address == "http://127.0.0.1:7999"
        assert status.last_seen == h.clock.now


async def test_rejoin_updates_the_node(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        node = FakeNode(region="eu", operator="acme")
        await h.join(node)
        h.clock.advance(5)
        node.address = "http://127.0.0.1:8123"
        await h.join(node, region="us", capacity_bytes=77)
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert (status.address, status.region, status.capacity_bytes) == (
            "http://127.0.0.1:8123",
            "us",
            77,
        )
        assert status.joined_at == status.last_seen - 5
        # the energy profile: NodeConfig's defaults until declared, then as declared
        assert (status.pue, status.grid_gco2_kwh, status.storage_watts_per_tb) == (1.2, 300, 2)
        await h.join(node, pue=1.1, grid_gco2_kwh=45.0, storage_watts_per_tb=0.8)
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert (status.pue, status.grid_gco2_kwh, status.storage_watts_per_tb) == (1.1, 45, 0.8)
        record = (await h.service.overlay.registry.lookup([node.id]))[node.id]
        assert record.carbon_intensity == pytest.approx(1.1 * 45)
        for bad in ({"pue": 0.9}, {"grid_gco2_kwh": -1.0}, {"storage_watts_per_tb": 1e9}):
            with pytest.raises(BadRequest, match="energy profile"):
                await h.client.send(routes.JOIN, node.join_request(h.clock.now, **bad))


async def test_unknown_node_heartbeat_asks_to_join(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        stranger = FakeNode(region="eu", operator="x")
        beat = await h.client.send(routes.HEARTBEAT, stranger.heartbeat_request(h.clock.now))
        assert not beat.known


async def test_forged_and_stale_joins_are_refused(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        victim = FakeNode(region="eu", operator="a")
        forger = Identity.generate()
        info = NodeInfo(
            node_id=victim.id,
            address="http://127.0.0.1:1",
            region="eu",
            operator="evil",
            capacity_bytes=1,
            used_bytes=0,
            version="x",
            timestamp=h.clock.now,
        )
        with pytest.raises(Forbidden):  # signed by a key whose id is not node_id
            await h.client.send(routes.JOIN, sign(forger, info))
        with pytest.raises(Forbidden, match="timestamp"):
            await h.client.send(routes.JOIN, victim.join_request(h.clock.now - 600))
        with pytest.raises(BadRequest):
            await h.client.send(
                routes.JOIN, victim.join_request(h.clock.now, address="file:///etc")
            )
        # A join body tampered after signing fails the signature.
        good = victim.join_request(h.clock.now)
        tampered = Signed(
            body=good.body[:-1] + b"\x00", signer=good.signer, signature=good.signature
        )
        with pytest.raises(Forbidden):
            await h.client.send(routes.JOIN, tampered)
        # A heartbeat naming a registered node but signed by another key changes nothing.
        await h.join(victim)
        forged_beat = sign(
            forger,
            Heartbeat(
                node_id=victim.id,
                address=victim.address,
                capacity_bytes=1,
                used_bytes=0,
                timestamp=h.clock.now,
            ),
        )
        beat = await h.client.send(routes.HEARTBEAT, forged_beat)
        assert not beat.known  # it is verified as the forger's, whose id is unknown
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert status.capacity_bytes == victim.capacity


async def test_admin_api(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        with pytest.raises(Unauthorized):  # a project key is not the admin token
            await h.client.send(routes.LIST_NODES, None)
        nobody = RpcClient(h.service.url, h.session)
        with pytest.raises(Unauthorized):
            await nobody.send(routes.LIST_NODES, None)
    async with running(tmp_path / "2", admin_token="", with_project=False) as h:
        with pytest.raises(Forbidden, match="disabled"):
            await h.admin.send(routes.LIST_NODES, None)
        with pytest.raises(Forbidden, match="disabled"):
            await h.admin.send(routes.CREATE_PROJECT, CreateProjectRequest(name="x"))
