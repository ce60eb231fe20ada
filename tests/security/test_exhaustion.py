"""A node's ``POST /v1/retain`` cannot be used to exhaust it.

The body (a Bloom filter, megabytes) is read only after the signed ``RetainOrder``
in its header shows a trusted coordinator sent it, for this node, recently, and of
a size this node's filter can need; one body at a time. Each refusal comes back
before the body is sent, on a raw socket that declares hundreds of MiB and sends
a few bytes: a node that read first would sit waiting for the rest.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import blake3
import msgspec
import pytest

from skymesh.node.retain import max_filter_body
from skymesh.node.service import NodeService
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.wire.durability import RETAIN_PATH, RetainFilter, RetainOrder
from skymesh.wire.identity import Identity
from skymesh.wire.signing import ORDER_HEADER, encode_header, sign
from tests.security.rawhttp import RawRequest

HUGE = 384 * 1024 * 1024  # what an unchecked node used to buffer


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    root = tmp_path_factory.mktemp("retain")
    thread = PlanetThread(Planet(root, PlanetConfig(node_count=3))).start()
    try:
        yield thread
    finally:
        thread.stop()


async def _open(node: NodeService, headers: dict[str, str], length: int) -> RawRequest:
    return await RawRequest.open(
        node.address, "POST", RETAIN_PATH, {**headers, "Content-Length": str(length)}
    )


async def _answer(raw: RawRequest) -> tuple[int, dict[str, str]]:
    """Status and JSON error body (``{}`` on success) of a node's answer."""
    answer = await raw.answer()
    body = json.loads(answer.body) if answer.status >= 400 else {}
    return answer.status, body


def _filter(node: NodeService, created_at: float) -> bytes:
    """A valid (empty) filter for ``node``, as msgpack."""
    f = RetainFilter(
        node_id=node.node_id,
        created_at=created_at,
        stored_before=created_at - 3600,
        piece_count=0,
        num_bits=64,
        hashes=1,
        seed=b"\0" * 32,
        bits=b"\0" * 8,
    )
    return msgspec.msgpack.encode(f)


def _order(
    signer: Identity, node: NodeService, body: bytes, *, size: int | None = None
) -> dict[str, str]:
    f = msgspec.msgpack.decode(body, type=RetainFilter)
    order = RetainOrder(
        node_id=f.node_id,
        created_at=f.created_at,
        size=len(body) if size is None else size,
        digest=blake3.blake3(body).digest(),
    )
    return {ORDER_HEADER: encode_header(sign(signer, order))}


def _coordinator(planet: PlanetThread) -> Identity:
    coord = planet.planet.coordinator
    assert coord is not None
    return coord.identity


async def _refused_before_body(
    node: NodeService, headers: dict[str, str], length: int = HUGE
) -> tuple[int, dict[str, str]]:
    """Declare ``length`` bytes, send a few of them: the answer must not wait for the rest."""
    raw = await _open(node, headers, length)
    try:
        await raw.send(b"\0" * min(1024, length // 2))
        return await _answer(raw)
    finally:
        await raw.close()


def test_unsigned_retain_is_refused_before_its_body(planet: PlanetThread) -> None:
    node = planet.planet.nodes[0]
    status, body = planet.run(_refused_before_body(node, {}))
    assert status == 403 and "RetainOrder" in body["message"]
    assert node.retainer.pending is None


def test_retain_from_an_untrusted_key_is_refused_before_its_body(planet: PlanetThread) -> None:
    node = planet.planet.nodes[0]
    body = _filter(node, time.time())
    headers = _order(Identity.generate(), node, body, size=HUGE)
    status, answer = planet.run(_refused_before_body(node, headers))
    assert status == 403 and "untrusted key" in answer["message"]
    assert node.retainer.pending is None


def test_retain_for_another_node_is_refused_before_its_body(planet: PlanetThread) -> None:
    node, other = planet.planet.nodes[0], planet.planet.nodes[1]
    body = _filter(other, time.time())
    headers = _order(_coordinator(planet), other, body, size=HUGE)
    status, answer = planet.run(_refused_before_body(node, headers))
    assert status == 403 and "not this node" in answer["message"]


def test_retain_larger_than_the_node_can_need_is_refused_before_its_body(
    planet: PlanetThread,
) -> None:
    node = planet.planet.nodes[0]
    cap = max_filter_body(node.store.capacity_bytes, node.store.piece_count)
    # a 10 GiB node: a filter of about 2.6 million pieces, some 3 MiB
    assert 1024**2 < cap < 8 * 1024**2
    body = _filter(node, time.time())
    headers = _order(_coordinator(planet), node, body, size=cap + 1)
    status, answer = planet.run(_refused_before_body(node, headers, cap + 1))
    assert status == 413 and "accepts" in answer["message"]
    assert node.retainer.pending is None


def test_one_retain_body_at_a_time(planet: PlanetThread) -> None:
    node = planet.planet.nodes[2]
    coordinator = _coordinator(planet)

    async def scenario() -> None:
        first = _filter(node, time.time())
        slow = await _open(node, _order(coordinator, node, first), len(first))
        try:
            await slow.send(first[:10])  # the slot is taken while the rest is awaited
            for _ in range(100):
                if node.retainer.receiving:
                    break
                await asyncio.sleep(0.01)
            second = _filter(node, time.time())
            status, answer = await _refused_before_body(
                node, _order(coordinator, node, second), len(second)
            )
            assert status == 503 and "being received" in answer["message"], answer
            await slow.send(first[10:])
            status, _ = await _answer(slow)
            assert status == 202
        finally:
            await slow.close()
        # the slot is free again: the next filter is taken
        third = _filter(node, time.time())
        again = await _open(node, _order(coordinator, node, third), len(third))
        try:
            await again.send(third)
            status, _ = await _answer(again)
            assert status == 202
        finally:
            await again.close()

    planet.run(scenario())
    assert not node.retainer.receiving


def test_retain_body_that_is_not_its_orders_is_refused(planet: PlanetThread) -> None:
    node = planet.planet.nodes[1]
    coordinator = _coordinator(planet)
    signed_for = _filter(node, time.time())
    swapped = bytearray(signed_for)
    swapped[-1] ^= 0xFF  # one bit of the filter changed after signing

    async def post(headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        raw = await _open(node, headers, len(body))
        try:
            await raw.send(body)
            return await _answer(raw)
        finally:
            await raw.close()

    before = node.retainer.pending
    status, answer = planet.run(post(_order(coordinator, node, signed_for), bytes(swapped)))
    assert status == 403 and "digest" in answer["message"]
    assert node.retainer.pending is before
