"""Operator admission (issue 13 §1): only admitted operators' nodes join, where they may.

Refused joins (no token, forged, expired, replaced or revoked token, a region outside
the token's), revocation taking a revoked operator's nodes out of placement, audits,
compute routing and repair at once, node address checks, redirects never followed,
and stale nodes forgotten. Joins and heartbeats go over HTTP to a real coordinator,
signed as a node signs them; revocation and redirects run on a whole planet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
import sqlalchemy as sa
from aiohttp import web
from typer.testing import CliRunner

from skymesh.admin import AdminClient
from skymesh.cli import app
from skymesh.coordinator.db.schema import garbage_pieces, pieces
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.service import CoordinatorService
from skymesh.errors import BadRequest, Conflict, Forbidden, NotFound, SkymeshError
from skymesh.node.service import NodeService
from skymesh.rpc import RpcClient
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.wire import routes
from skymesh.wire.identity import Identity
from skymesh.wire.inference import ComputeAdvert, ModelOffer
from skymesh.wire.registry import (
    AdmitOperatorRequest,
    JoinToken,
    OperatorAdmission,
    OperatorList,
    decode_join_token,
    encode_join_token,
)
from skymesh.wire.signing import Signed, open_signed, sign
from tests.conftest import S3Client, random_bytes
from tests.planet._durability import pause_durability_loops
from tests.unit.test_coordinator_support import FakeNode, Harness, running

# ---------------------------------------------------------------- joins refused


async def _admit(h: Harness, name: str, regions: list[str], expires_in: float = 3600.0) -> str:
    req = AdmitOperatorRequest(name=name, regions=regions, expires_in=expires_in)
    return (await h.admin.send(routes.ADMIT_OPERATOR, req)).join_token


async def _refused(h: Harness, node: FakeNode, code: str, **overrides: object) -> None:
    """The join is refused with 403 ``code`` and the registry is as it was."""
    before = (await h.admin.send(routes.LIST_NODES, None)).nodes
    with pytest.raises(Forbidden) as e:
        await h.client.send(routes.JOIN, node.join_request(h.clock.now, **overrides))
    assert e.value.code == code, e.value
    assert (await h.admin.send(routes.LIST_NODES, None)).nodes == before


async def test_a_node_without_a_token_is_refused(tmp_path: Path, database_url: str) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await _refused(h, FakeNode(region="eu-west", operator="acme"), "JoinTokenRequired")


async def test_forged_and_tampered_tokens_are_refused(tmp_path: Path, database_url: str) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        good = await _admit(h, "acme", ["eu-west"])
        claims = open_signed(decode_join_token(good), JoinToken)
        node = FakeNode(region="eu-west", operator="acme")
        # the same claims signed by a key of the caller's own
        forged = encode_join_token(sign(Identity.generate(), claims))
        await _refused(h, node, "JoinTokenInvalid", join_token=forged)
        # the coordinator's signature kept over claims widened to another operator and region
        envelope = decode_join_token(good)
        wider = msgspec.structs.replace(claims, operator="victim", regions=["eu-west", "us-east"])
        tampered = Signed(
            body=msgspec.msgpack.encode(wider),
            signer=envelope.signer,
            signature=envelope.signature,
        )
        await _refused(h, node, "JoinTokenInvalid", join_token=encode_join_token(tampered))
        await _refused(h, node, "JoinTokenInvalid", join_token="smj1_garbage!")
        await _refused(h, node, "JoinTokenInvalid", join_token=good[:-8])
        await h.join(node, join_token=good)  # the genuine one admits it


async def test_an_expired_token_is_refused_but_admitted_nodes_keep_working(
    tmp_path: Path,
    database_url: str,
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        token = await _admit(h, "acme", ["eu-west"], expires_in=60)
        early = FakeNode(region="eu-west", operator="acme")
        await h.join(early, join_token=token)
        h.clock.advance(61)
        await _refused(
            h, FakeNode(region="eu-west", operator="acme"), "JoinTokenExpired", join_token=token
        )
        # the node admitted before the expiry heartbeats and rejoins (with or without it)
        beat = await h.client.send(routes.HEARTBEAT, early.heartbeat_request(h.clock.now))
        assert beat.known
        await h.join(early, join_token=token)
        await h.join(early, join_token="")
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert status.online and status.admitted and status.operator == "acme"


async def test_a_replaced_token_admits_no_new_node(tmp_path: Path, database_url: str) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        first = await _admit(h, "acme", ["eu-west"])
        old_node = FakeNode(region="eu-west", operator="acme")
        await h.join(old_node, join_token=first)
        second = await _admit(h, "acme", ["eu-west"])
        await _refused(
            h, FakeNode(region="eu-west", operator="acme"), "JoinTokenReplaced", join_token=first
        )
        await h.join(old_node, join_token=first)  # registered: still admitted
        await h.join(FakeNode(region="eu-west", operator="acme"), join_token=second)


async def test_a_revoked_operators_nodes_are_refused(tmp_path: Path, database_url: str) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        token = await _admit(h, "acme", ["eu-west"])
        member = FakeNode(region="eu-west", operator="acme")
        await h.join(member, join_token=token)
        revoked = await h.admin.send(routes.REVOKE_OPERATOR, None, params={"operator": "acme"})
        assert revoked.revoked_at is not None and revoked.nodes == 1
        await _refused(
            h, FakeNode(region="eu-west", operator="acme"), "OperatorRevoked", join_token=token
        )
        await _refused(h, member, "OperatorRevoked", join_token=token)
        with pytest.raises(Forbidden) as e:
            await h.client.send(routes.HEARTBEAT, member.heartbeat_request(h.clock.now))
        assert e.value.code == "OperatorRevoked"
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert not status.admitted
        # revocation is for good, and only the administrator may do it
        with pytest.raises(Conflict):
            await _admit(h, "acme", ["eu-west"])
        with pytest.raises(NotFound):
            await h.admin.send(routes.REVOKE_OPERATOR, None, params={"operator": "nobody"})
        with pytest.raises(SkymeshError) as denied:
            await h.client.send(routes.REVOKE_OPERATOR, None, params={"operator": "acme"})
        assert denied.value.status == 401
        with pytest.raises(SkymeshError) as denied:
            await h.client.send(
                routes.ADMIT_OPERATOR, AdmitOperatorRequest(name="x", regions=["a"])
            )
        assert denied.value.status == 401
        [listed] = (await h.admin.send(routes.LIST_OPERATORS, None)).operators
        assert (listed.name, listed.revoked_at, listed.nodes) == ("acme", revoked.revoked_at, 1)


async def test_the_token_not_the_node_says_operator_and_region(
    tmp_path: Path, database_url: str
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        token = await _admit(h, "acme", ["eu-west", "eu-central"])
        node = FakeNode(region="us-east", operator="acme")
        await _refused(h, node, "RegionNotAllowed", join_token=token)
        # claiming to be another operator changes nothing: the token's is recorded
        liar = FakeNode(region="eu-central", operator="victim-corp")
        await h.join(liar, join_token=token)
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert (status.operator, status.region) == ("acme", "eu-central")
        # a registered node cannot move out of its operator's regions either
        await _refused(h, liar, "RegionNotAllowed", join_token=token, region="ap-south")


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "address",
    [
        "file:///etc/passwd",
        "http://127.0.0.1",  # no port
        "http://admin:pw@127.0.0.1:80",
        "http://127.0.0.1:80/admin?x=1",
        "http://169.254.169.254:80",  # cloud metadata: link-local, not a node network
        "http://8.8.8.8:80",  # outside the default (local) networks
        "http://0.0.0.0:80",
        "http://no-such-host.invalid:80",
    ],
)
async def test_node_addresses_are_checked(tmp_path: Path, address: str) -> None:
    async with running(tmp_path) as h:
        node = FakeNode(region="eu-west", operator="acme", address=address)
        token = await h.admit("acme", "eu-west")
        with pytest.raises(BadRequest):
            await h.client.send(routes.JOIN, node.join_request(h.clock.now, join_token=token))
        assert (await h.admin.send(routes.LIST_NODES, None)).nodes == []


async def test_addresses_are_checked_on_heartbeats_and_names_resolved(tmp_path: Path) -> None:
    async with running(tmp_path, node_networks=["10.0.0.0/8"]) as h:
        # localhost resolves to loopback, outside the one network allowed here
        named = FakeNode(region="eu-west", operator="acme", address="http://localhost:7801")
        with pytest.raises(BadRequest, match="outside the networks"):
            await h.join(named)
        inside = FakeNode(region="eu-west", operator="acme", address="http://10.1.2.3:7801")
        await h.join(inside)
        inside.address = "http://169.254.169.254:80"
        with pytest.raises(BadRequest):
            await h.client.send(routes.HEARTBEAT, inside.heartbeat_request(h.clock.now))
        [status] = (await h.admin.send(routes.LIST_NODES, None)).nodes
        assert status.address == "http://10.1.2.3:7801"
    async with running(tmp_path / "any", node_networks=[]) as h:
        await h.join(FakeNode(region="eu-west", operator="acme", address="http://8.8.8.8:80"))


# ---------------------------------------------------------------- stale nodes


async def test_stale_unvetted_nodes_that_stored_nothing_expire(
    tmp_path: Path, database_url: str
) -> None:
    async with running(tmp_path, database_url=database_url, stale_node_after=3600.0) as h:
        nodes = await h.add_nodes(["eu-west", "us-east", "ap-south"], per_region=2)
        await h.create_bucket("bucket")
        await h.upload("bucket", "obj", [100_000])
        holding = {
            r.node_id
            for r in await h.service.db.read(
                lambda conn: conn.execute(sa.select(pieces.c.node_id)).all()
            )
        }
        empty = [n for n in nodes if n.id not in holding]
        assert empty, "a 6-node network places 5 pieces: one node holds none"
        h.clock.advance(3601)
        fresh = FakeNode(region="eu-west", operator="late")
        await h.join(fresh)
        loop = h.service.loops["expire-nodes"]
        await loop.run_once()
        listed = {n.node_id for n in (await h.admin.send(routes.LIST_NODES, None)).nodes}
        assert listed == holding | {fresh.id}
        registry = h.service.overlay.registry
        assert await registry.lookup([n.id for n in empty]) == {}
        # forgotten: it is a stranger again, and needs a token to come back
        gone = empty[0]
        beat = await h.client.send(routes.HEARTBEAT, gone.heartbeat_request(h.clock.now))
        assert not beat.known
        await _refused(h, gone, "JoinTokenRequired")


# ---------------------------------------------------------------- revocation on a planet


@pytest.fixture
def planet(own_planet: PlanetThread) -> PlanetThread:
    return own_planet


def _coordinator(planet: PlanetThread) -> CoordinatorService:
    c = planet.planet.coordinator
    assert c is not None
    return c


def _pieces_by_node(planet: PlanetThread) -> dict[str, int]:
    c = _coordinator(planet)
    q = sa.select(pieces.c.node_id, sa.func.count()).group_by(pieces.c.node_id)
    rows = planet.run(c.db.read(lambda conn: conn.execute(q).all()))
    return {r[0]: r[1] for r in rows}


ADVERT = ComputeAdvert(
    models=[ModelOffer(name="m", kind="embedding", context_length=8, dimensions=4)],
    cores=1,
    memory_bytes=1,
)


def test_revocation_stops_placement_audits_and_routing_and_repair_moves_pieces_away(
    planet: PlanetThread,
) -> None:
    s3: S3Client = planet.boto3()
    p = planet.planet
    c = _coordinator(planet)
    pause_durability_loops(planet)
    s3.create_bucket(Bucket="kept")
    data = random_bytes(400_000, seed=13)
    s3.put_object(Bucket="kept", Key="k", Body=data)
    held = _pieces_by_node(planet)
    operator = max(
        {n.config.operator for n in p.nodes},
        key=lambda op: sum(held.get(n.node_id, 0) for n in p.nodes if n.config.operator == op),
    )
    members = [n for n in p.nodes if n.config.operator == operator]
    ids = {n.node_id for n in members}
    assert sum(held.get(i, 0) for i in ids) > 0
    # its nodes advertise compute, as a compute node's heartbeats do, and it holds
    # compute admission, so they are listed for compute
    planet.run(p.admit(operator, members[0].config.region, compute=True))
    for n in members:
        n.link.advert = lambda: ADVERT
        planet.run(n.link.step())

    async def compute_listing() -> set[str]:
        assert p.credential is not None
        async with aiohttp.ClientSession() as session:
            rpc = RpcClient(c.url, session, {"Authorization": f"Bearer {p.credential.api_key}"})
            return {n.node_id for n in (await rpc.send(routes.COMPUTE_NODES, None)).nodes}

    assert ids <= planet.run(compute_listing())

    async def revoke() -> None:
        async with aiohttp.ClientSession() as session:
            await AdminClient(c.url, p.admin_token, session).revoke_operator(operator)

    planet.run(revoke())
    # routing: the compute listing drops them at once
    assert not ids & planet.run(compute_listing())
    # placement: new pieces never go to them
    barred, _ = planet.run(c.overlay.registry.placement_filters())
    assert ids <= barred
    s3.put_object(Bucket="kept", Key="new", Body=random_bytes(400_000, seed=14))
    assert _pieces_by_node(planet).keys() & ids == held.keys() & ids  # none added
    # audits: they are not audited (trusted) any more
    auditor = c.durability.auditor
    auditor.per_round = len(p.nodes)
    for _ in range(3):
        assert not {r.node_id for r in planet.run(auditor.step())} & ids
    # their heartbeats are refused
    for n in members:
        planet.run(n.link.step())
        assert n.link.last_error is not None and "revoked" in n.link.last_error
    # repair: their pieces count as lost, and are rebuilt on other nodes
    report = planet.run(c.durability.repair_checker.step())
    assert report.queued >= 1
    worker = c.durability.repair_worker
    for _ in range(20):
        if planet.run(worker.repair_next()) is None:
            break
    assert not _pieces_by_node(planet).keys() & ids
    assert s3.get_object(Bucket="kept", Key="k")["Body"].read() == data
    assert planet.run(c.durability.repair_checker.step()).queued == 0


def test_a_node_without_a_token_never_registers(planet: PlanetThread) -> None:
    p = planet.planet
    stranger = planet.run(p.add_node("eu-west", join_token=""))
    planet.run(stranger.link.step())
    assert stranger.link.last_error is not None and "join token" in stranger.link.last_error
    c = _coordinator(planet)
    listed = planet.run(c.overlay.registry.lookup([stranger.node_id]))
    assert listed == {}


def test_operator_commands_admit_list_and_revoke(tmp_path: Path) -> None:
    """`skymesh operator add/list/revoke` against a running network; a node joins with the
    printed token as the token's operator."""
    thread = PlanetThread(Planet(tmp_path / "planet", PlanetConfig(node_count=3))).start()
    try:
        p = thread.planet
        c = _coordinator(thread)
        token_file = tmp_path / "admin-token"
        token_file.write_text(p.admin_token + "\n")
        target = ["--coordinator", c.url, "--admin-token-file", str(token_file)]
        runner = CliRunner()

        def cli(*args: str, code: int = 0) -> str:
            result = runner.invoke(app, [*args, *target])
            assert result.exit_code == code, result.output
            return result.output

        out = cli(
            "operator",
            "add",
            "acme",
            "--regions",
            "eu-west,eu-central",
            "--compute",
            "--expires",
            "2h",
            "--json",
        )
        admission = msgspec.json.decode(out, type=OperatorAdmission)
        assert admission.operator.regions == ["eu-west", "eu-central"]
        assert admission.operator.compute
        assert (
            7100 < admission.operator.token_expires_at - admission.operator.token_issued_at <= 7200
        )
        node = thread.run(
            p.add_node("eu-central", operator="claims-other", join_token=admission.join_token)
        )
        thread.run(p.wait_online(4))
        record = thread.run(c.overlay.registry.lookup([node.node_id]))[node.node_id]
        assert record.operator == "acme"
        listed = msgspec.json.decode(cli("operator", "list", "--json"), type=OperatorList)
        acme = next(o for o in listed.operators if o.name == "acme")
        assert (acme.nodes, acme.revoked_at) == (1, None)
        assert "acme" in cli("operator", "list")
        assert "revoked" in cli("operator", "revoke", "acme")
        assert "was revoked" in cli("operator", "add", "acme", "--regions", "eu-west", code=2)
        assert "--expires" in cli(
            "operator", "add", "x", "--regions", "a", "--expires", "soon", code=2
        )
        wrong = tmp_path / "wrong-token"
        wrong.write_text("not-the-admin-token")
        bad = runner.invoke(
            app, ["operator", "list", "--coordinator", c.url, "--admin-token-file", str(wrong)]
        )
        assert bad.exit_code == 2 and "admin token" in bad.output
    finally:
        thread.stop()


# ---------------------------------------------------------------- redirects


class Redirector:
    """A "node" answering every request with a redirect to an internal URL, and that URL's
    server, which records every request that reaches it."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.redirects = 0
        self.internal = ""
        self.url = ""
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        async def internal(request: web.Request) -> web.Response:
            self.hits.append(f"{request.method} {request.path_qs}")
            return web.Response(text="internal secret")

        async def redirect(request: web.Request) -> web.Response:
            self.redirects += 1
            # 307 keeps a POST's method and body; aiohttp follows 302 for every method
            status = 307 if request.method == "POST" else 302
            location = f"{self.internal}/latest/meta-data"
            return web.Response(status=status, headers={"Location": location})

        for handler in (internal, redirect):
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self._runners.append(runner)
            url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            if handler is internal:
                self.internal = url
            else:
                self.url = url

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


@pytest.fixture
def small_planet(tmp_path: Path) -> Iterator[PlanetThread]:
    """Four nodes: a segment's pieces sit on three, and a download asks them all."""
    config = PlanetConfig(node_count=4, coordinator_overrides={"gc_grace": 0.0})
    thread = PlanetThread(Planet(tmp_path / "planet", config)).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def redirector(small_planet: PlanetThread) -> Iterator[Redirector]:
    r = Redirector()
    small_planet.run(r.start())
    try:
        yield r
    finally:
        small_planet.run(r.close())


async def _announce(c: CoordinatorService, node: NodeService, address: str) -> NodeRecord:
    """``node`` heartbeats ``address`` as its own; once the coordinator has it."""
    node.link.address = address
    node.heartbeat.trigger()
    for _ in range(400):
        record = (await c.overlay.registry.lookup([node.node_id])).get(node.node_id)
        if record is not None and record.address == address:
            return record
        await asyncio.sleep(0.025)
    raise TimeoutError(f"the coordinator never saw {address}")


def test_no_redirect_is_followed(small_planet: PlanetThread, redirector: Redirector) -> None:
    planet = small_planet
    p = planet.planet
    c = _coordinator(planet)
    pause_durability_loops(planet)
    s3: S3Client = planet.boto3()
    s3.create_bucket(Bucket="redirects")
    data = random_bytes(300_000, seed=5)
    s3.put_object(Bucket="redirects", Key="k", Body=data)
    # the node of the first data piece: a download asks it before any other
    q = sa.select(pieces.c.node_id).where(pieces.c.piece_num == 0)
    first = planet.run(c.db.read(lambda conn: conn.execute(q).scalar_one()))
    node = next(n for n in p.nodes if n.node_id == first)
    record = planet.run(_announce(c, node, redirector.url))

    def reached(step: str, before: int) -> None:
        assert redirector.hits == [], f"{step} followed a redirect to {redirector.hits}"
        assert redirector.redirects > before, f"{step} never asked the redirecting node"

    # the gateway: a download asks every piece's node, the redirector among them
    before = redirector.redirects
    assert s3.get_object(Bucket="redirects", Key="k")["Body"].read() == data
    reached("a download", before)
    # the coordinator: an audit, a garbage deletion, a reconciliation filter
    before = redirector.redirects
    result = planet.run(c.durability.auditor.audit_node(record))
    assert result is not None and result.outcome.value != "success"
    reached("an audit", before)
    row = {"node_id": node.node_id, "piece_id": "A" * 52, "queued_at": 0.0, "piece_size": 1}
    planet.run(c.db.write(lambda conn: conn.execute(garbage_pieces.insert(), row)))
    before = redirector.redirects
    planet.run(c.durability.gc.run_once())
    reached("garbage collection", before)
    before = redirector.redirects
    with pytest.raises(SkymeshError):
        planet.run(c.durability.reconciler.send(record, c.clock()))
    reached("a retain filter", before)
