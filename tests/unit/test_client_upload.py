"""Storing one segment on fake nodes: the uploader keeps only receipts for what it sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from skymesh.client.upload import SegmentUploadError, store_segment
from skymesh.codec.crypto import new_data_key
from skymesh.codec.merkle import DEFAULT_CHUNK_SIZE, chunk_hashes, merkle_root
from skymesh.piecetransfer.receipts import sign_receipt
from skymesh.wire.identity import Identity
from skymesh.wire.metainfo import AddressedOrder, Placement, Scheme, SegmentPosition
from skymesh.wire.pieces import derive_piece_id, new_root_piece_id
from skymesh.wire.signing import Signed

ROOT = new_root_piece_id()
BLOCK = 65520
PLAIN = memoryview(bytes(range(256)) * 800)


class FakeNodes:
    """Nodes at ``/<n>/v1/pieces/{id}`` that store nothing and sign a receipt for the bytes
    they got; the ones in ``other_piece`` sign it for another piece of the segment."""

    def __init__(self, count: int) -> None:
        self.ids = [Identity.generate() for _ in range(count)]
        self.other_piece: set[int] = set()
        self.app = web.Application()
        self.app.router.add_put("/{n}/v1/pieces/{piece_id}", self._put)

    async def _put(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        data = await request.read()
        piece_id = request.match_info["piece_id"]
        if n in self.other_piece:
            piece_id = derive_piece_id(ROOT, 60)
        receipt = sign_receipt(
            self.ids[n],
            piece_id=piece_id,
            serial="0" * 32,
            size=len(data),
            merkle_root=merkle_root(chunk_hashes(data, DEFAULT_CHUNK_SIZE)),
            stored_at=0.0,
        )
        return web.Response(
            body=msgspec.json.encode(receipt), status=201, content_type="application/json"
        )

    def placement(self, url: str, optimal: int) -> Placement:
        return Placement(
            root_piece_id=ROOT,
            scheme=Scheme(k=2, repair=3, optimal=optimal, total=len(self.ids)),
            max_piece_size=1 << 20,
            pieces=[
                AddressedOrder(
                    piece_num=n,
                    node_id=identity.id,
                    address=f"{url}/{n}",
                    region="r",
                    order=Signed(body=b"", signer=b"", signature=b""),
                )
                for n, identity in enumerate(self.ids)
            ],
        )


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[FakeNodes, str, aiohttp.ClientSession]]:
    fake = FakeNodes(5)
    server = TestServer(fake.app)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield fake, str(server.make_url("")).rstrip("/"), session
    await server.close()


async def test_honest_nodes_each_store_their_piece(
    nodes: tuple[FakeNodes, str, aiohttp.ClientSession],
) -> None:
    fake, url, session = nodes
    commit = await store_segment(
        session, fake.placement(url, optimal=5), SegmentPosition(), PLAIN, new_data_key(), BLOCK
    )
    assert [p.piece_num for p in commit.pieces] == [0, 1, 2, 3, 4]


async def test_a_receipt_for_another_piece_counts_as_a_failed_node(
    nodes: tuple[FakeNodes, str, aiohttp.ClientSession],
) -> None:
    fake, url, session = nodes
    fake.other_piece.add(3)
    commit = await store_segment(
        session, fake.placement(url, optimal=4), SegmentPosition(), PLAIN, new_data_key(), BLOCK
    )
    assert [p.piece_num for p in commit.pieces] == [0, 1, 2, 4]
    with pytest.raises(SegmentUploadError) as e:
        await store_segment(
            session,
            fake.placement(url, optimal=5),
            SegmentPosition(),
            PLAIN,
            new_data_key(),
            BLOCK,
        )
    assert e.value.failed_nodes == [fake.ids[3].id]
    assert "is for piece" in str(e.value)
