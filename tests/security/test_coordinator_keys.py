"""Several coordinators, one set of keys (issue 14): nodes follow the network's key set.

Two real coordinators, each with its own identity (its own ``data_dir``), over one
SQLite database, and real nodes on loopback. A node that joined through coordinator
A honours orders signed by B after one heartbeat; once B's key is retired through
the admin API, B's orders (a GET allowance it already served under too) are refused
after the next heartbeat, with no restart; a key statement not signed by a trusted
key changes nothing; a join token of A admits a node through B; a retired
coordinator refuses to start, and the last key cannot be retired. The nodes' loops
are driven by hand: one ``link.step()`` is one join or heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec
import pytest
from typer.testing import CliRunner

from skymesh.admin import AdminClient
from skymesh.cli import app
from skymesh.config import NodeConfig
from skymesh.coordinator.orders import OrderSigner
from skymesh.coordinator.service import CoordinatorService
from skymesh.errors import ConfigError, Conflict
from skymesh.node.service import NodeService
from skymesh.node.trust import TRUST_FILE, read_trust_file
from skymesh.wire.identity import Identity
from skymesh.wire.keys import CoordinatorKey, CoordinatorKeyList, CoordinatorKeys
from skymesh.wire.node import PieceAction
from skymesh.wire.pieces import derive_piece_id, new_root_piece_id
from skymesh.wire.signing import ORDER_HEADER, Signed, encode_header, sign
from tests.unit.test_coordinator_support import ADMIN_TOKEN, coordinator_config

DATA = os.urandom(10_000)


@dataclass
class Network:
    a: CoordinatorService
    admin: AdminClient  # at A
    session: aiohttp.ClientSession
    tmp: Path
    token: str  # a join token of operator acme, issued (signed) by A
    coordinators: list[CoordinatorService]  # started here, stopped at the end

    @property
    def b(self) -> CoordinatorService:
        return self.coordinators[-1]

    async def add(self, name: str) -> CoordinatorService:
        """Another coordinator, with its own identity, over A's database."""
        self.coordinators.append(await _open(self.tmp, name, self.a.config.database_url))
        return self.b

    async def node(self, name: str, via: CoordinatorService) -> NodeService:
        config = msgspec.convert(
            {
                "data_dir": str(self.tmp / name),
                "port": 0,
                "region": "eu",
                "capacity_bytes": 1 << 30,
                "coordinator_url": via.url,
                "join_token": self.token,
            },
            NodeConfig,
        )
        node = NodeService(config, run_loops=False)
        await node.start()
        return node

    async def put(self, node: NodeService, signer: CoordinatorService) -> int:
        """PUT a fresh piece with an order ``signer`` signs; the node's HTTP status."""
        piece = derive_piece_id(new_root_piece_id(), 0)
        order = signer.orders.order(node.node_id, piece, PieceAction.PUT, len(DATA))
        return await self.call(node, "PUT", piece, encode_header(order), DATA)

    async def call(
        self, node: NodeService, method: str, piece: str, header: str, data: bytes = b""
    ) -> int:
        url = f"{node.address}/v1/pieces/{piece}"
        async with self.session.request(
            method, url, data=data, headers={ORDER_HEADER: header}
        ) as r:
            await r.read()
            return r.status


async def _open(tmp: Path, name: str, database_url: str) -> CoordinatorService:
    config = coordinator_config(tmp / name, database_url=database_url)
    service = await CoordinatorService.open(config)
    service.keyring.ttl = 0.0  # the test does not wait out the 2-second cache
    await service.start()
    return service


@contextlib.asynccontextmanager
async def network(
    tmp_path: Path, database_url: str, *, with_b: bool = True
) -> AsyncIterator[Network]:
    """Coordinator A (and B) over one database; operator acme admitted (token by A)."""
    a = await _open(tmp_path, "a", database_url)
    net: Network | None = None
    try:
        async with aiohttp.ClientSession() as session:
            admin = AdminClient(a.url, ADMIN_TOKEN, session)
            token = (await admin.admit_operator("acme", ["eu"])).join_token
            net = Network(a, admin, session, tmp_path, token, [])
            if with_b:
                await net.add("b")
            yield net
    finally:
        for c in reversed(net.coordinators if net is not None else []):
            await c.stop()
        await a.stop()


async def test_a_node_follows_keys_added_and_retired_without_a_restart(
    tmp_path: Path, database_url: str
) -> None:
    async with network(tmp_path, database_url, with_b=False) as net:
        node = await net.node("n1", via=net.a)
        try:
            await node.link.step()
            assert node.link.joined
            assert node.verifier.trusted_keys == {net.a.identity.public_key}  # pinned A
            await net.add("b")  # B is added after the node joined
            assert await net.put(node, net.b) == 403  # not trusted yet

            await node.link.step()  # one heartbeat through A
            assert node.verifier.trusted_keys == {
                net.a.identity.public_key,
                net.b.identity.public_key,
            }
            assert await net.put(node, net.b) == 201
            # B's GET allowance, served once (and so remembered as verified)
            piece = derive_piece_id(new_root_piece_id(), 0)
            put = net.b.orders.order(node.node_id, piece, PieceAction.PUT, len(DATA))
            assert await net.call(node, "PUT", piece, encode_header(put), DATA) == 201
            get = encode_header(net.b.orders.order(node.node_id, piece, PieceAction.GET, 1 << 20))
            assert await net.call(node, "GET", piece, get) == 200
            saved = read_trust_file(node.data_dir / TRUST_FILE)
            assert saved.keys == node.verifier.trusted_keys and saved.version == 2

            retired = await net.admin.retire_coordinator_key(net.b.identity.id)
            assert retired.retired_at is not None
            assert await net.put(node, net.b) == 201  # until the node hears of it
            await node.link.step()  # the next heartbeat
            assert node.verifier.trusted_keys == {net.a.identity.public_key}
            assert await net.put(node, net.b) == 403
            assert await net.call(node, "GET", piece, get) == 403  # not served from the cache
            assert await net.put(node, net.a) == 201
            assert node.link.last_error is None  # never restarted, never refused
            assert read_trust_file(node.data_dir / TRUST_FILE).version == 3
        finally:
            await node.stop()


async def test_a_forged_key_statement_changes_nothing(tmp_path: Path, database_url: str) -> None:
    async with network(tmp_path, database_url) as net:
        node = await net.node("n1", via=net.a)
        try:
            await node.link.step()
            before = node.verifier.trusted_keys
            assert before == {net.a.identity.public_key, net.b.identity.public_key}
            rogue = Identity.generate()
            keys = [CoordinatorKey(coordinator_id=rogue.id, public_key=rogue.public_key)]
            body = CoordinatorKeys(keys=keys, version=99, issued_at=time.time())
            honest = sign(rogue, body)
            for statement in (
                honest,  # signed by a key the node does not trust
                Signed(honest.body, net.a.identity.public_key, honest.signature),  # forged
            ):
                assert not node.trust.follow(statement, "http://rogue.invalid")
            assert node.verifier.trusted_keys == before
            piece = derive_piece_id(new_root_piece_id(), 0)
            rogue_order = OrderSigner(rogue, 60.0).order(node.node_id, piece, PieceAction.PUT, 9)
            assert await net.call(node, "PUT", piece, encode_header(rogue_order), b"x") == 403
            await node.link.step()  # the real statement (version 2) is still taken as current
            assert node.verifier.trusted_keys == before
            assert await net.put(node, net.b) == 201
        finally:
            await node.stop()


async def test_a_token_of_one_coordinator_admits_through_another(
    tmp_path: Path, database_url: str
) -> None:
    async with network(tmp_path, database_url) as net:
        node = await net.node("n1", via=net.b)  # the token is A's; the node pins B
        try:
            await node.link.step()
            assert node.link.joined, node.link.last_error
            assert node.link.coordinator_id == net.b.identity.id
            assert await net.put(node, net.a) == 201
        finally:
            await node.stop()


async def test_retirement_is_refused_for_the_last_key_and_a_retired_coordinator_stays_down(
    tmp_path: Path,
    database_url: str,
) -> None:
    async with network(tmp_path, database_url) as net:
        listed = await net.admin.coordinator_keys()
        assert [k.coordinator_id for k in listed.keys] == [net.a.identity.id, net.b.identity.id]
        assert listed.version == 2
        await net.admin.retire_coordinator_key(net.b.identity.id)
        again = await net.admin.retire_coordinator_key(net.b.identity.id)  # unchanged
        with pytest.raises(Conflict) as e:
            await net.admin.retire_coordinator_key(net.a.identity.id)
        assert e.value.code == "LastCoordinatorKey"
        listed = await net.admin.coordinator_keys()
        assert [k.retired_at for k in listed.keys] == [None, again.retired_at]
        assert listed.version == 3

        config = net.b.config
        await net.b.stop()
        with pytest.raises(ConfigError, match=r"retired.*new identity"):
            await CoordinatorService.open(config)
        await net.add("b2")  # a new identity joins
        assert (await net.admin.coordinator_keys()).version == 4


async def test_coordinator_keys_commands_list_and_retire(tmp_path: Path, database_url: str) -> None:
    async with network(tmp_path, database_url) as net:
        token_file = tmp_path / "admin-token"
        token_file.write_text(ADMIN_TOKEN + "\n")
        target = ["--coordinator", net.a.url, "--admin-token-file", str(token_file)]
        runner = CliRunner()

        async def cli(*args: str, code: int = 0) -> str:
            result = await asyncio.to_thread(runner.invoke, app, [*args, *target])
            assert result.exit_code == code, result.output
            return result.output

        out = await cli("coordinator-keys", "list", "--json")
        assert len(msgspec.json.decode(out, type=CoordinatorKeyList).keys) == 2
        assert net.b.identity.id in await cli("coordinator-keys", "list")
        assert "retired" in await cli("coordinator-keys", "retire", net.b.identity.id)
        assert "last current key" in await cli(
            "coordinator-keys", "retire", net.a.identity.id, code=2
        )
        assert "no coordinator key" in await cli("coordinator-keys", "retire", "nope", code=2)
