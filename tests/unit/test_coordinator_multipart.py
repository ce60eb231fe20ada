"""Multipart uploads over HTTP: parts, complete, abort, listing, and their errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skymesh.client.objectmeta import ObjectMeta, seal_meta
from skymesh.coordinator.metainfo.checks import metadata_limit, parts_in_etag
from skymesh.errors import BadRequest, NotFound
from skymesh.wire import routes
from skymesh.wire.base import Empty
from skymesh.wire.metainfo import (
    BeginPartRequest,
    BeginSegmentRequest,
    BeginUploadRequest,
    CommitPartRequest,
    CompletePart,
    CompleteUploadRequest,
    DownloadRequest,
    ListPartsRequest,
    ListUploadsRequest,
    ObjectInfo,
    ObjectRequest,
    PartInfo,
    SegmentCommit,
    SegmentPosition,
    UpdateObjectMetadataRequest,
    UploadInfo,
    UploadRequest,
)
from tests.unit.test_coordinator_support import Harness, garbage, pieces_of, running

KiB = 1024


async def begin_upload(h: Harness, key: str = "mp") -> UploadInfo:
    return await h.client.send(
        routes.BEGIN_UPLOAD,
        BeginUploadRequest(bucket="bkt", key=key, encrypted_key=b"ek", encrypted_metadata=b"em"),
    )


async def upload_part(
    h: Harness, upload: UploadInfo, number: int, sizes: list[int], etag: str = ""
) -> tuple[PartInfo, list[SegmentCommit]]:
    """Store a part of piece segments of ``sizes`` (the first placed by begin-part)."""
    commits = []
    for i, size in enumerate(sizes):
        if i == 0:
            placement = await h.client.send(
                routes.BEGIN_PART,
                BeginPartRequest(
                    bucket="bkt",
                    key=upload.key,
                    upload_id=upload.upload_id,
                    part_number=number,
                    plain_size=size,
                ),
            )
        else:
            placement = await h.client.send(
                routes.BEGIN_SEGMENT,
                BeginSegmentRequest(
                    stream_id=upload.upload_id,
                    position=SegmentPosition(part=number, index=i),
                    plain_size=size,
                ),
            )
        commits.append(h.store(placement, size, SegmentPosition(part=number, index=i)))
    info = await h.client.send(
        routes.COMMIT_PART,
        CommitPartRequest(
            bucket="bkt",
            key=upload.key,
            upload_id=upload.upload_id,
            part_number=number,
            size=sum(sizes),
            etag=etag or f"etag-{number}",
            segments=commits,
        ),
    )
    return info, commits


def empty_segment(h: Harness, part: int) -> SegmentCommit:
    """An empty inline segment: a part of no bytes (S3 allows one as the last part)."""
    return SegmentCommit(
        position=SegmentPosition(part=part, index=0),
        plain_size=0,
        block_size=h.service.config.block_size,
        inline_data=b"",
    )


async def commit_part(
    h: Harness, upload: UploadInfo, number: int, segments: list[SegmentCommit]
) -> PartInfo:
    """Commit part ``number`` of ``segments`` already stored (or inline), etag ``e<number>``."""
    return await h.client.send(
        routes.COMMIT_PART,
        CommitPartRequest(
            bucket="bkt",
            key=upload.key,
            upload_id=upload.upload_id,
            part_number=number,
            size=sum(s.plain_size for s in segments),
            etag=f"e{number}",
            segments=segments,
        ),
    )


async def complete(
    h: Harness, upload: UploadInfo, parts: list[tuple[int, str]], min_part_size: int = 0
) -> ObjectInfo:
    return await h.client.send(
        routes.COMPLETE_UPLOAD,
        CompleteUploadRequest(
            bucket="bkt",
            key=upload.key,
            upload_id=upload.upload_id,
            parts=[CompletePart(part_number=n, etag=e) for n, e in parts],
            etag="md5s-3",
            min_part_size=min_part_size,
        ),
    )


async def setup(h: Harness) -> None:
    await h.add_nodes(["eu", "us", "ap"], 2)
    await h.create_bucket("bkt")


async def test_multipart_happy_path(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        upload = await begin_upload(h)
        assert upload.codec.max_segment_size == h.service.config.max_segment_size
        got = await h.client.send(
            routes.GET_UPLOAD, UploadRequest(bucket="bkt", key="mp", upload_id=upload.upload_id)
        )
        assert got == upload

        _, part3 = await upload_part(h, upload, 3, [300])
        _, part1 = await upload_part(h, upload, 1, [100, 50])
        _, first_part2 = await upload_part(h, upload, 2, [70])
        part2_info, part2 = await upload_part(h, upload, 2, [200], etag="again")  # re-upload
        _, part9 = await upload_part(h, upload, 9, [5])  # never completed
        assert await garbage(h) == pieces_of(first_part2[0])

        listed = await h.client.send(
            routes.LIST_PARTS,
            ListPartsRequest(bucket="bkt", key="mp", upload_id=upload.upload_id, limit=2),
        )
        assert [p.part_number for p in listed.parts] == [1, 2] and listed.truncated
        assert listed.parts[1] == part2_info
        rest = await h.client.send(
            routes.LIST_PARTS,
            ListPartsRequest(
                bucket="bkt", key="mp", upload_id=upload.upload_id, part_number_marker=2
            ),
        )
        assert [(p.part_number, p.size) for p in rest.parts] == [(3, 300), (9, 5)]
        assert not rest.truncated

        with pytest.raises(NotFound):  # invisible until complete
            await h.client.send(routes.HEAD_OBJECT, ObjectRequest(bucket="bkt", key="mp"))

        info = await complete(h, upload, [(1, '"etag-1"'), (2, "again"), (3, "etag-3")])
        assert (info.size, info.segment_count, info.etag) == (650, 4, "md5s-3")
        assert (info.encrypted_key, info.encrypted_metadata) == (b"ek", b"em")
        assert info.version_id == upload.upload_id
        assert await garbage(h) == pieces_of(first_part2[0]) | pieces_of(part9[0])

        got_object = await h.client.send(routes.DOWNLOAD, DownloadRequest(bucket="bkt", key="mp"))
        assert [(s.position.part, s.position.index) for s in got_object.segments] == [
            (1, 0),
            (1, 1),
            (2, 0),
            (3, 0),
        ]
        assert [s.number for s in got_object.segments] == [0, 1, 2, 3]
        assert [s.plain_offset for s in got_object.segments] == [0, 100, 150, 350]
        assert [s.root_piece_id for s in got_object.segments] == [
            c.root_piece_id for c in (*part1, *part2, *part3)
        ]
        at = await h.client.send(
            routes.DOWNLOAD,
            DownloadRequest(bucket="bkt", key="mp", plain_offset=349, segment_limit=1),
        )
        assert [s.number for s in at.segments] == [2]
        # plain_end: a ranged read gets (and is signed orders for) only what it reads
        for offset, end, numbers in [(0, 100, [0]), (0, 101, [0, 1]), (120, 351, [1, 2, 3])]:
            ranged = await h.client.send(
                routes.DOWNLOAD,
                DownloadRequest(bucket="bkt", key="mp", plain_offset=offset, plain_end=end),
            )
            assert [s.number for s in ranged.segments] == numbers, (offset, end)
        with pytest.raises(BadRequest):
            await h.client.send(
                routes.DOWNLOAD, DownloadRequest(bucket="bkt", key="mp", plain_end=-1)
            )
        with pytest.raises(NotFound) as e:  # the upload is gone
            await h.client.send(
                routes.GET_UPLOAD, UploadRequest(bucket="bkt", key="mp", upload_id=upload.upload_id)
            )
        assert e.value.code == "NoSuchUpload"


async def test_part_with_an_inline_tail_and_an_empty_part(
    database_url: str, tmp_path: Path
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        upload = await begin_upload(h)
        placement = await h.client.send(
            routes.BEGIN_PART,
            BeginPartRequest(
                bucket="bkt", key="mp", upload_id=upload.upload_id, part_number=1, plain_size=KiB
            ),
        )
        seg0 = h.store(placement, KiB, SegmentPosition(part=1, index=0))
        tail = SegmentCommit(
            position=SegmentPosition(part=1, index=1),
            plain_size=10,
            block_size=h.service.config.block_size,
            inline_data=b"t" * 26,
        )
        await commit_part(h, upload, 1, [seg0, tail])
        await commit_part(h, upload, 2, [empty_segment(h, 2)])
        info = await complete(h, upload, [(1, "e1"), (2, "e2")], min_part_size=KiB)
        assert (info.size, info.segment_count) == (KiB + 10, 3)
        got = await h.client.send(routes.DOWNLOAD, DownloadRequest(bucket="bkt", key="mp"))
        assert [s.inline_data for s in got.segments] == [None, b"t" * 26, b""]


async def test_many_parts_keep_their_list_in_the_metadata(
    database_url: str, tmp_path: Path
) -> None:
    """An object of many parts seals each part's size and checksum into its metadata:
    boto3's 10 GiB upload (1,280 parts of 8 MiB, CRC32 each) sealed 25,721 bytes, and the
    flat 16 KiB cap refused the completion."""
    parts = 400
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        upload = await begin_upload(h)
        for number in range(1, parts + 1):
            await commit_part(h, upload, number, [empty_segment(h, number)])

        def completing(blob: bytes) -> CompleteUploadRequest:
            return CompleteUploadRequest(
                bucket="bkt",
                key="mp",
                upload_id=upload.upload_id,
                parts=[CompletePart(part_number=n, etag=f"e{n}") for n in range(1, parts + 1)],
                etag=f"md5s-{parts}",
                min_part_size=0,
                encrypted_metadata=blob,
            )

        over = metadata_limit(parts) + 1
        with pytest.raises(BadRequest) as e:
            await h.client.send(routes.COMPLETE_UPLOAD, completing(b"m" * over))
        assert e.value.code == "InvalidArgument"
        sealed = b"m" * (8 * parts + 16 * 1024)  # over the flat cap, within the parts' room
        info = await h.client.send(routes.COMPLETE_UPLOAD, completing(sealed))
        assert info.encrypted_metadata == sealed

        def update(blob: bytes) -> UpdateObjectMetadataRequest:
            return UpdateObjectMetadataRequest(
                bucket="bkt", key="mp", version_id=info.version_id, encrypted_metadata=blob
            )

        # tagging the object seals the part list again, as large as before
        done = await h.client.send(routes.UPDATE_METADATA, update(sealed[:-1]))
        assert done.encrypted_metadata == sealed[:-1]
        with pytest.raises(BadRequest):
            await h.client.send(routes.UPDATE_METADATA, update(b"m" * over))


def test_the_largest_part_list_fits_its_room() -> None:
    """10,000 parts of 5 GiB with SHA-256 checksums, the most S3 allows, next to the
    most user metadata and tags a gateway accepts."""
    meta = ObjectMeta(
        content_type="application/x-" + "t" * 200,
        user={f"k{i}": "v" * 100 for i in range(19)},  # S3: 2 KiB of user metadata
        tags={f"t{i:03}" + "k" * 124: "v" * 256 for i in range(10)},
        checksums={"sha256": "s" * 44 + "-10000"},
        parts=[5 * 1024**3] * 10_000,
        part_checksums=["sha256:" + "s" * 44] * 10_000,
    )
    assert len(seal_meta(bytes(32), meta)) <= metadata_limit(10_000)
    assert metadata_limit(20_000) == metadata_limit(10_000)
    assert [parts_in_etag(e) for e in ('"abc-12"', "abc-3", "abc", '"abc"', "a-b", "-")] == [
        12,
        3,
        0,
        0,
        0,
        0,
    ]


async def test_complete_errors(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        upload = await begin_upload(h)
        await upload_part(h, upload, 1, [1000])
        await upload_part(h, upload, 2, [10])
        await upload_part(h, upload, 3, [1000])
        cases = [
            ([(2, "etag-2"), (1, "etag-1")], 0, "InvalidPartOrder"),
            ([(1, "etag-1"), (1, "etag-1")], 0, "InvalidPartOrder"),
            ([(1, "etag-1"), (4, "etag-4")], 0, "InvalidPart"),
            ([(1, "wrong")], 0, "InvalidPart"),
            ([(1, "etag-1"), (2, "etag-2"), (3, "etag-3")], 500, "EntityTooSmall"),
            ([(0, "x")], 0, "InvalidArgument"),
            ([], 0, "MalformedXML"),
        ]
        for parts, min_size, code in cases:
            with pytest.raises(BadRequest) as e:
                await complete(h, upload, parts, min_part_size=min_size)
            assert e.value.code == code, parts
        assert await garbage(h) == set()  # failed completes change nothing
        # the small part is fine as the last one
        info = await complete(h, upload, [(1, "etag-1"), (2, "etag-2")], min_part_size=500)
        assert info.size == 1010


async def test_part_errors(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        upload = await begin_upload(h)
        for number in (0, 10001):
            with pytest.raises(BadRequest) as e:
                await upload_part(h, upload, number, [10])
            assert e.value.code == "InvalidArgument"
        _, [seg] = await upload_part(h, upload, 1, [10])
        bad_requests = [
            CommitPartRequest(  # a segment of another part
                bucket="bkt",
                key="mp",
                upload_id=upload.upload_id,
                part_number=2,
                size=10,
                etag="e",
                segments=[seg],
            ),
            CommitPartRequest(  # size does not match the segments
                bucket="bkt",
                key="mp",
                upload_id=upload.upload_id,
                part_number=1,
                size=11,
                etag="e",
                segments=[seg],
            ),
        ]
        for req in bad_requests:
            with pytest.raises(BadRequest):
                await h.client.send(routes.COMMIT_PART, req)
        with pytest.raises(NotFound) as missing:  # another key's upload
            await h.client.send(
                routes.COMMIT_PART,
                CommitPartRequest(
                    bucket="bkt",
                    key="other",
                    upload_id=upload.upload_id,
                    part_number=1,
                    size=10,
                    etag="e",
                    segments=[seg],
                ),
            )
        assert missing.value.code == "NoSuchUpload"


async def test_abort_and_no_such_upload(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        upload = await begin_upload(h)
        _, segs = await upload_part(h, upload, 1, [1000, 20])
        req = UploadRequest(bucket="bkt", key="mp", upload_id=upload.upload_id)
        assert await h.client.send(routes.ABORT_UPLOAD, req) == Empty()
        assert await garbage(h) == pieces_of(segs[0]) | pieces_of(segs[1])
        for path, body in [
            ("/v1/uploads/abort", req),
            ("/v1/uploads/get", req),
            (
                "/v1/uploads/parts",
                ListPartsRequest(bucket="bkt", key="mp", upload_id=upload.upload_id),
            ),
            ("/v1/uploads/get", UploadRequest(bucket="bkt", key="mp", upload_id="f" * 32)),
        ]:
            with pytest.raises(NotFound) as e:
                await h.client.call(path, body, dict)
            assert e.value.code == "NoSuchUpload"
        with pytest.raises(NotFound) as e:
            await complete(h, upload, [(1, "etag-1")])
        assert e.value.code == "NoSuchUpload"


async def test_list_uploads(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        await setup(h)
        made = []
        for key in ["b", "a/2", "a/1", "b", "c"]:
            made.append(await begin_upload(h, key))
            h.clock.advance(0.01)  # ids sort by creation time
        # a simple upload in flight is not a multipart upload
        await h.begin("bkt", "a/3", 10)

        async def listing(**kw: Any) -> list[tuple[str, str]]:
            resp = await h.client.send(routes.LIST_UPLOADS, ListUploadsRequest(bucket="bkt", **kw))
            return [(u.key, u.upload_id) for u in resp.uploads]

        everything = sorted((u.key, u.upload_id) for u in made)
        assert await listing() == everything
        assert [k for k, _ in everything] == ["a/1", "a/2", "b", "b", "c"]
        b_ids = [u.upload_id for u in made if u.key == "b"]
        assert [i for k, i in everything if k == "b"] == b_ids  # creation order within a key
        assert await listing(prefix="a/") == everything[:2]
        assert await listing(key_marker="a/2") == everything[2:]
        assert await listing(key_marker="b", upload_id_marker=b_ids[0]) == everything[3:]
        page = await h.client.send(routes.LIST_UPLOADS, ListUploadsRequest(bucket="bkt", limit=2))
        assert page.truncated and len(page.uploads) == 2
        # a delimiter rolls keys up into common prefixes, which count towards the limit
        grouped = await h.client.send(
            routes.LIST_UPLOADS, ListUploadsRequest(bucket="bkt", delimiter="/")
        )
        assert grouped.prefixes == ["a/"] and not grouped.truncated
        assert [(u.key, u.upload_id) for u in grouped.uploads] == everything[2:]
        first = await h.client.send(
            routes.LIST_UPLOADS, ListUploadsRequest(bucket="bkt", delimiter="/", limit=2)
        )
        assert first.prefixes == ["a/"] and [u.upload_id for u in first.uploads] == b_ids[:1]
        assert first.truncated
        assert (first.next_key_marker, first.next_upload_id_marker) == ("b", b_ids[0])
        rest = await h.client.send(
            routes.LIST_UPLOADS,
            ListUploadsRequest(
                bucket="bkt",
                delimiter="/",
                key_marker=first.next_key_marker,
                upload_id_marker=first.next_upload_id_marker,
            ),
        )
        assert (
            rest.prefixes == [] and [(u.key, u.upload_id) for u in rest.uploads] == everything[3:]
        )
        after_prefix = await h.client.send(
            routes.LIST_UPLOADS, ListUploadsRequest(bucket="bkt", delimiter="/", key_marker="a/")
        )
        assert after_prefix.prefixes == [] and len(after_prefix.uploads) == 3
        only_prefix = await h.client.send(
            routes.LIST_UPLOADS, ListUploadsRequest(bucket="bkt", delimiter="/", limit=1)
        )
        assert only_prefix.prefixes == ["a/"] and only_prefix.truncated
        assert (only_prefix.next_key_marker, only_prefix.next_upload_id_marker) == ("a/", "")
