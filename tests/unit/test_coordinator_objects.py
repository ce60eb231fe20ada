"""Simple uploads end to end over HTTP: begin, segments, commit, download, overwrite, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from skymesh.codec import SegmentLayout
from skymesh.coordinator.metainfo.download import GET_ALLOWANCE_FACTOR
from skymesh.coordinator.metainfo.segments import to_scheme
from skymesh.errors import BadRequest, Forbidden, NotFound, Unavailable
from skymesh.wire import routes
from skymesh.wire.identity import Identity
from skymesh.wire.metainfo import (
    BeginSegmentRequest,
    CommitObjectRequest,
    CommitSegmentRequest,
    CommittedPiece,
    DeleteObjectResponse,
    DownloadRequest,
    DownloadResponse,
    ListObjectsRequest,
    ListObjectsResponse,
    ListVersionsRequest,
    ListVersionsResponse,
    ObjectInfo,
    ObjectRequest,
    Placement,
    PutInlineRequest,
    SegmentCommit,
    SegmentPosition,
)
from skymesh.wire.node import Order, PieceAction, PieceReceipt
from skymesh.wire.pieces import derive_piece_id, is_valid_piece_id
from skymesh.wire.signing import open_signed, sign
from tests.unit.test_coordinator_support import (
    Harness,
    garbage,
    merkle_of,
    pieces_of,
    running,
)

REGIONS = ("eu", "us", "ap")
MiB = 1024 * 1024


async def setup(h: Harness, nodes_per_region: int = 2) -> None:
    await h.add_nodes(REGIONS, nodes_per_region)
    await h.create_bucket("photos")


async def head(h: Harness, key: str, bucket: str = "photos") -> ObjectInfo:
    return await h.client.send(routes.HEAD_OBJECT, ObjectRequest(bucket=bucket, key=key))


async def fetch(h: Harness, key: str, **kw: Any) -> DownloadResponse:
    return await h.client.send(routes.DOWNLOAD, DownloadRequest(bucket="photos", key=key, **kw))


async def test_begin_places_first_segment(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        begun = await h.begin("photos", "a", MiB)
        p = begun.placement
        scheme = to_scheme(p.scheme)
        assert str(scheme) == "3/4/5/5"  # six nodes online: five pieces, one spare
        assert (
            p.max_piece_size == SegmentLayout(MiB, h.service.config.block_size, scheme).piece_size
        )
        assert is_valid_piece_id(p.root_piece_id)
        assert sorted(a.piece_num for a in p.pieces) == list(range(5))
        assert len({a.node_id for a in p.pieces}) == 5
        for a in p.pieces:
            node = h.nodes[a.node_id]
            assert (a.address, a.region) == (node.address, node.region)
            order = open_signed(a.order, Order, trusted=[h.coordinator_key])
            assert order.piece_id == derive_piece_id(p.root_piece_id, a.piece_num)
            assert order.action == PieceAction.PUT and order.node_id == a.node_id
            assert order.coordinator_id == h.service.identity.id
            assert order.expires_at == pytest.approx(h.clock.now + h.service.config.order_ttl)
            assert len(order.serial) == 32
        assert len({open_signed(a.order, Order).serial for a in p.pieces}) == 5


async def test_multi_segment_object_round_trip(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        sizes = [MiB, MiB, 1000]
        info = await h.upload("photos", "big", sizes, etag="abc")
        assert (info.size, info.segment_count, info.etag) == (2 * MiB + 1000, 3, "abc")
        assert info.encrypted_key == b"k:big" and info.encrypted_metadata == b"meta"
        assert await head(h, "big") == info

        got = await fetch(h, "big")
        assert got.object == info
        assert [s.number for s in got.segments] == [0, 1, 2]
        assert [s.plain_offset for s in got.segments] == [0, MiB, 2 * MiB]
        assert [s.plain_size for s in got.segments] == sizes
        for seg in got.segments:
            assert seg.scheme is not None and seg.inline_data is None
            assert seg.position == SegmentPosition(index=seg.number)
            assert len(seg.pieces) == seg.scheme.optimal
            for piece in seg.pieces:
                order = open_signed(piece.order, Order, trusted=[h.coordinator_key])
                piece_id = derive_piece_id(seg.root_piece_id, piece.piece_num)
                assert order.piece_id == piece_id
                assert order.action == PieceAction.GET
                assert order.node_id == piece.node_id
                assert order.max_bytes == GET_ALLOWANCE_FACTOR * seg.piece_size
                assert piece.merkle_root == merkle_of(piece_id)
                assert piece.address == h.nodes[piece.node_id].address

        window = await fetch(h, "big", first_segment=1, segment_limit=1)
        assert [s.number for s in window.segments] == [1]
        at = await fetch(h, "big", plain_offset=MiB + 5)
        assert [s.number for s in at.segments] == [1, 2]
        assert (await fetch(h, "big", plain_offset=2 * MiB + 1000)).segments == []
        assert (await fetch(h, "big", first_segment=3)).segments == []
        assert (await fetch(h, "big", version_id=info.version_id)).object == info
        with pytest.raises(NotFound) as e:
            await fetch(h, "big", version_id="0" * 32)
        assert e.value.code == "NoSuchVersion"
        with pytest.raises(BadRequest) as bad:
            await fetch(h, "big", version_id="nope")
        assert bad.value.code == "InvalidArgument"


async def test_offline_nodes_are_listed_last(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url, offline_after=10.0) as h:
        await setup(h)
        await h.upload("photos", "x", [1000])
        h.clock.advance(20)  # everyone offline; one node comes back
        seg = (await fetch(h, "x")).segments[0]
        back = h.nodes[seg.pieces[-1].node_id]
        await h.client.send(routes.HEARTBEAT, back.heartbeat_request(h.clock.now))
        seg = (await fetch(h, "x")).segments[0]
        assert seg.pieces[0].node_id == back.id
        assert len(seg.pieces) == 5  # six nodes, one spare


async def test_object_is_invisible_until_commit(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        begun = await h.begin("photos", "pending", MiB)
        commit = h.store(begun.placement, MiB)
        await h.client.send(
            routes.COMMIT_SEGMENT, CommitSegmentRequest(stream_id=begun.stream_id, segment=commit)
        )
        with pytest.raises(NotFound) as e:
            await head(h, "pending")
        assert e.value.code == "NoSuchKey"
        listing = await h.client.send(routes.LIST_OBJECTS, ListObjectsRequest(bucket="photos"))
        assert listing.entries == []
        info = await h.client.send(
            routes.COMMIT_OBJECT,
            CommitObjectRequest(
                stream_id=begun.stream_id,
                bucket="photos",
                key="pending",
                size=MiB,
                etag="e",
                encrypted_metadata=b"",
            ),
        )
        assert await head(h, "pending") == info
        again = CommitObjectRequest(
            stream_id=begun.stream_id,
            bucket="photos",
            key="pending",
            size=MiB,
            etag="e",
            encrypted_metadata=b"",
        )
        # a stream commits once: the same commit again (a retry whose first answer was
        # lost with its coordinator) is answered with the version the first one made
        assert await h.client.send(routes.COMMIT_OBJECT, again) == info
        assert await head(h, "pending") == info
        with pytest.raises(NotFound) as e:  # another commit of it finds no upload
            await h.client.send(routes.COMMIT_OBJECT, msgspec.structs.replace(again, etag="other"))
        assert e.value.code == "NoSuchUpload"


def forged(h: Harness, commit: SegmentCommit, how: str) -> SegmentCommit:
    pieces = list(commit.pieces)
    first = pieces[0]
    node = h.nodes[first.node_id]
    piece_id = derive_piece_id(commit.root_piece_id, first.piece_num)
    if how == "other signer":
        receipt = sign(
            Identity.generate(),
            PieceReceipt(
                node_id=node.id,
                piece_id=piece_id,
                serial="0" * 32,
                size=commit.piece_size,
                merkle_root=b"x" * 32,
                stored_at=0.0,
            ),
        )
        pieces[0] = CommittedPiece(piece_num=first.piece_num, node_id=node.id, receipt=receipt)
    elif how == "other piece":
        other = derive_piece_id(commit.root_piece_id, 60)
        pieces[0] = CommittedPiece(
            piece_num=first.piece_num,
            node_id=node.id,
            receipt=node.receipt(other, commit.piece_size),
        )
    elif how == "wrong size":
        pieces[0] = CommittedPiece(
            piece_num=first.piece_num, node_id=node.id, receipt=node.receipt(piece_id, 5)
        )
    elif how == "too few":
        pieces = pieces[:-1]
    elif how == "same node twice":
        pieces[1] = CommittedPiece(
            piece_num=pieces[1].piece_num, node_id=node.id, receipt=pieces[0].receipt
        )
    elif how == "piece size":
        return msgspec.structs.replace(commit, piece_size=commit.piece_size + 1)
    elif how == "unknown node":
        stranger = Identity.generate()
        pieces[0] = CommittedPiece(
            piece_num=first.piece_num,
            node_id=stranger.id,
            receipt=sign(
                stranger,
                PieceReceipt(
                    node_id=stranger.id,
                    piece_id=piece_id,
                    serial="0" * 32,
                    size=commit.piece_size,
                    merkle_root=b"x" * 32,
                    stored_at=0.0,
                ),
            ),
        )
    return msgspec.structs.replace(commit, pieces=pieces)


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("other signer", Forbidden),
        ("other piece", Forbidden),
        ("unknown node", Forbidden),
        ("wrong size", BadRequest),
        ("too few", BadRequest),
        ("same node twice", BadRequest),
        ("piece size", BadRequest),
    ],
)
async def test_bad_segments_are_refused(
    database_url: str, tmp_path: Path, how: str, error: type[Exception]
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        begun = await h.begin("photos", "k", MiB)
        bad = forged(h, h.store(begun.placement, MiB), how)
        with pytest.raises(error):
            await h.client.send(
                routes.COMMIT_SEGMENT, CommitSegmentRequest(stream_id=begun.stream_id, segment=bad)
            )
        with pytest.raises(error):
            await h.client.send(
                routes.COMMIT_OBJECT,
                CommitObjectRequest(
                    stream_id=begun.stream_id,
                    bucket="photos",
                    key="k",
                    size=MiB,
                    etag="e",
                    encrypted_metadata=b"",
                    segments=[bad],
                ),
            )
        with pytest.raises(NotFound):
            await head(h, "k")


async def test_commit_checks_segments_and_size(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        begun = await h.begin("photos", "k", MiB)
        seg0 = h.store(begun.placement, MiB)
        p2 = await h.client.send(
            routes.BEGIN_SEGMENT,
            BeginSegmentRequest(
                stream_id=begun.stream_id, position=SegmentPosition(index=2), plain_size=10
            ),
        )
        seg2 = h.store(p2, 10, SegmentPosition(index=2))

        async def commit(size: int, segments: list[SegmentCommit]) -> ObjectInfo:
            return await h.client.send(
                routes.COMMIT_OBJECT,
                CommitObjectRequest(
                    stream_id=begun.stream_id,
                    bucket="photos",
                    key="k",
                    size=size,
                    etag="e",
                    encrypted_metadata=b"",
                    segments=segments,
                ),
            )

        with pytest.raises(BadRequest, match="missing"):  # index 1 never stored
            await commit(MiB + 10, [seg0, seg2])
        with pytest.raises(BadRequest) as e:
            await commit(MiB + 1, [seg0])
        assert e.value.code == "IncompleteBody"
        with pytest.raises(NotFound):
            await head(h, "k")
        # The failed commits stored nothing: the trailing segments roll back with them.
        assert (await commit(MiB, [seg0])).segment_count == 1
        with pytest.raises(BadRequest):  # a simple upload's segments live in part 0
            await h.client.call(
                "/v1/segments/begin",
                BeginSegmentRequest(
                    stream_id=(await h.begin("photos", "j", 10)).stream_id,
                    position=SegmentPosition(part=1),
                    plain_size=10,
                ),
                Placement,
            )


async def test_recommitted_segment_replaces_the_earlier_one(
    database_url: str, tmp_path: Path
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        begun = await h.begin("photos", "k", 1000)
        first = h.store(begun.placement, 1000)
        second = h.store(
            await h.client.send(
                routes.BEGIN_SEGMENT,
                BeginSegmentRequest(
                    stream_id=begun.stream_id, position=SegmentPosition(), plain_size=1000
                ),
            ),
            1000,
        )
        for seg in (first, second):
            await h.client.send(
                routes.COMMIT_SEGMENT, CommitSegmentRequest(stream_id=begun.stream_id, segment=seg)
            )
        assert await garbage(h) == pieces_of(first)
        await h.client.send(
            routes.COMMIT_OBJECT,
            CommitObjectRequest(
                stream_id=begun.stream_id,
                bucket="photos",
                key="k",
                size=1000,
                etag="e",
                encrypted_metadata=b"",
            ),
        )
        got = (await fetch(h, "k")).segments[0]
        assert got.root_piece_id == second.root_piece_id


async def test_overwrite_is_atomic(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        old = await h.upload("photos", "doc", [MiB, 500])
        old_segments = (await fetch(h, "doc")).segments
        old_pieces = {
            (p.node_id, derive_piece_id(s.root_piece_id, p.piece_num))
            for s in old_segments
            for p in s.pieces
        }
        # A new version in flight: the old one stays whole and readable.
        begun = await h.begin("photos", "doc", 700)
        seg = h.store(begun.placement, 700)
        await h.client.send(
            routes.COMMIT_SEGMENT, CommitSegmentRequest(stream_id=begun.stream_id, segment=seg)
        )
        assert await head(h, "doc") == old
        assert [s.root_piece_id for s in (await fetch(h, "doc")).segments] == [
            s.root_piece_id for s in old_segments
        ]
        assert await garbage(h) == set()

        new = await h.client.send(
            routes.COMMIT_OBJECT,
            CommitObjectRequest(
                stream_id=begun.stream_id,
                bucket="photos",
                key="doc",
                size=700,
                etag="new",
                encrypted_metadata=b"m2",
            ),
        )
        assert new.version_id != old.version_id
        assert await head(h, "doc") == new
        got = await fetch(h, "doc")
        assert [s.root_piece_id for s in got.segments] == [seg.root_piece_id]
        assert await garbage(h) == old_pieces
        with pytest.raises(NotFound) as e:
            await fetch(h, "doc", version_id=old.version_id)
        assert e.value.code == "NoSuchVersion"


async def test_put_inline_and_empty_objects(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        data = b"c" * 116  # ciphertext of 100 bytes

        def inline(size: int, ciphertext: bytes) -> SegmentCommit:
            return SegmentCommit(
                position=SegmentPosition(),
                plain_size=size,
                block_size=h.service.config.block_size,
                inline_data=ciphertext,
            )

        small = await h.client.send(
            routes.PUT_INLINE,
            PutInlineRequest(
                bucket="photos",
                key="small",
                size=100,
                etag="s",
                encrypted_key=b"ek",
                encrypted_metadata=b"em",
                segment=inline(100, data),
            ),
        )
        assert (small.size, small.segment_count, small.encrypted_key) == (100, 1, b"ek")
        got = await fetch(h, "small")
        assert got.object == small
        [seg] = got.segments
        assert (seg.inline_data, seg.plain_size, seg.pieces, seg.scheme) == (data, 100, [], None)

        empty = await h.client.send(
            routes.PUT_INLINE,
            PutInlineRequest(
                bucket="photos",
                key="empty",
                size=0,
                etag="d41d",
                encrypted_key=b"",
                encrypted_metadata=b"",
            ),
        )
        assert (empty.size, empty.segment_count) == (0, 0)
        assert (await fetch(h, "empty")).segments == []
        assert (await fetch(h, "empty", plain_offset=0)).segments == []

        threshold = h.service.config.inline_threshold
        for size, ciphertext, segment in [
            (threshold + 1, b"x" * (threshold + 17), True),  # over the threshold
            (10, b"x" * (threshold + 17), True),  # ciphertext too long
            (5, b"", False),  # size without a segment
            (10, b"x" * 26, "pos"),
        ]:
            bad = inline(size, ciphertext)
            if segment == "pos":
                bad = msgspec.structs.replace(bad, position=SegmentPosition(index=1))
            with pytest.raises(BadRequest):
                await h.client.send(
                    routes.PUT_INLINE,
                    PutInlineRequest(
                        bucket="photos",
                        key="bad",
                        size=size,
                        etag="",
                        encrypted_key=b"",
                        encrypted_metadata=b"",
                        segment=bad if segment else None,
                    ),
                )

        # An inline object replacing a piece object sends the old pieces to garbage.
        await h.upload("photos", "grows-small", [MiB])
        before = await fetch(h, "grows-small")
        await h.client.send(
            routes.PUT_INLINE,
            PutInlineRequest(
                bucket="photos",
                key="grows-small",
                size=100,
                etag="s",
                encrypted_key=b"",
                encrypted_metadata=b"",
                segment=inline(100, data),
            ),
        )
        assert await garbage(h) == {
            (p.node_id, derive_piece_id(before.segments[0].root_piece_id, p.piece_num))
            for p in before.segments[0].pieces
        }


async def test_delete_object(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        info = await h.upload("photos", "gone", [1000])
        seg = (await fetch(h, "gone")).segments[0]
        gone = await h.client.send(routes.DELETE_OBJECT, ObjectRequest(bucket="photos", key="gone"))
        assert gone == DeleteObjectResponse(
            deleted=True, version_id=info.version_id, null_version=True
        )
        assert await garbage(h) == {
            (p.node_id, derive_piece_id(seg.root_piece_id, p.piece_num)) for p in seg.pieces
        }
        with pytest.raises(NotFound):
            await head(h, "gone")
        again = await h.client.send(
            routes.DELETE_OBJECT, ObjectRequest(bucket="photos", key="gone")
        )
        assert again == DeleteObjectResponse(deleted=False)
        kept = await h.upload("photos", "kept", [1000])
        other_version = await h.client.send(
            routes.DELETE_OBJECT, ObjectRequest(bucket="photos", key="kept", version_id="0" * 32)
        )
        assert not other_version.deleted
        assert await head(h, "kept") == kept


async def test_not_enough_nodes_is_unavailable(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url, scheme="8/10/12/14") as h:
        await setup(h)  # six nodes, the scheme needs 14
        with pytest.raises(Unavailable, match="needs 14 nodes"):
            await h.begin("photos", "k", MiB)
        with pytest.raises(NotFound) as e:  # a missing bucket is the error that counts
            await h.begin("nothing-here", "k", MiB)
        assert e.value.code == "NoSuchBucket"
    async with running(tmp_path / "one") as h:
        await h.add_nodes(["eu"], 1)
        await h.create_bucket("photos")
        with pytest.raises(Unavailable):
            await h.begin("photos", "k", MiB)


async def test_expired_uploads_are_dropped(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url, pending_upload_ttl=60.0) as h:
        await setup(h)
        begun = await h.begin("photos", "k", 1000)
        seg = h.store(begun.placement, 1000)
        await h.client.send(
            routes.COMMIT_SEGMENT, CommitSegmentRequest(stream_id=begun.stream_id, segment=seg)
        )
        await h.service.loops["expire-uploads"].run_once()
        assert h.service.loops["expire-uploads"].last_result == 0
        h.clock.advance(61)
        with pytest.raises(NotFound):  # expired streams are gone at once for callers
            await h.client.send(
                routes.COMMIT_SEGMENT, CommitSegmentRequest(stream_id=begun.stream_id, segment=seg)
            )
        await h.service.loops["expire-uploads"].run_once()
        assert h.service.loops["expire-uploads"].last_result == 1
        assert await garbage(h) == pieces_of(seg)


@pytest.mark.parametrize(
    ("path", "request_", "response", "fault"),
    [
        ("/v1/objects/list", ListObjectsRequest(bucket="photos", limit=0), ListObjectsResponse, "limit"),
        ("/v1/objects/list", ListObjectsRequest(bucket="photos", prefix="a\x00"), ListObjectsResponse, "prefix"),
        ("/v1/objects/list", ListObjectsRequest(bucket="photos", start_after="x" * 2000), ListObjectsResponse, "start_after"),
        ("/v1/objects/versions", ListVersionsRequest(bucket="photos", limit=0), ListVersionsResponse, "limit"),
        ("/v1/objects/versions", ListVersionsRequest(bucket="photos", delimiter="\x00"), ListVersionsResponse, "delimiter"),
        ("/v1/objects/versions", ListVersionsRequest(bucket="photos", key_marker="k" * 2000), ListVersionsResponse, "key marker"),
    ],
)  # fmt: skip
async def test_listings_refuse_bad_parameters(
    database_url: str, tmp_path: Path, path: str, request_: object, response: type, fault: str
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        with pytest.raises(BadRequest, match=fault) as e:
            await h.client.call(path, request_, response)
        assert e.value.code == "InvalidArgument"
