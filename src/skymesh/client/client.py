"""The data path for one project: what the gateway (or a Python program) calls.

A :class:`Client` holds the project's API key (to talk to the coordinator) and
its root secret (to derive bucket keys); nothing it sends out can be read
without that secret. Objects stream through segment by segment: memory is
bounded by the segment size, never by the object size.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import msgspec

from skymesh import errors
from skymesh.client.buffers import BufferPool
from skymesh.client.download import (
    FIRST_CALL_SEGMENTS,
    SEGMENTS_PER_CALL,
    SegmentSource,
    read_object_range,
)
from skymesh.client.metainfo import MetainfoClient
from skymesh.client.objectmeta import ObjectMeta, key_context, open_meta, seal_meta, segment_key
from skymesh.client.upload import SegmentUploadError, store_segment
from skymesh.codec.crypto import (
    SegmentCipher,
    derive_bucket_key,
    new_data_key,
    unwrap_key,
    wrap_key,
)
from skymesh.rpc import STREAM_BUFSIZE
from skymesh.wire.metainfo import (
    BeginObjectRequest,
    BeginPartRequest,
    BeginSegmentRequest,
    BeginUploadRequest,
    BucketConfig,
    BucketInfo,
    CodecParams,
    CommitObjectRequest,
    CommitPartRequest,
    CommitSegmentRequest,
    CompletePart,
    CompleteUploadRequest,
    DeleteObjectResponse,
    DeleteObjectsItem,
    DeleteObjectsRequest,
    DeleteObjectsResult,
    DownloadRequest,
    ListObjectsRequest,
    ListObjectsResponse,
    ListPartsRequest,
    ListVersionsRequest,
    ListVersionsResponse,
    ObjectInfo,
    PartInfo,
    Placement,
    PutInlineRequest,
    SegmentCommit,
    SegmentDownload,
    SegmentPosition,
    UpdateObjectMetadataRequest,
    UploadInfo,
)

log = logging.getLogger(__name__)

SEGMENT_ATTEMPTS = 3
KEY_SALT_SIZE = 16
METADATA_ATTEMPTS = 3  # update_object_meta retries when the object is overwritten meanwhile
UPLOAD_CACHE = 1024  # multipart uploads whose info is remembered
MAX_CACHED_BUCKET_KEYS = 4096
INLINE_HASH_LIMIT = 64 * 1024  # hash on the loop up to here (SHA-256: ~0.3 ms), else threads


#: ``(md5_hex, size)`` -> checksums to keep in the object's metadata (or None).
BeforeCommit = Callable[[str, int], Mapping[str, str] | None]


def _with_checksums(meta: ObjectMeta, checksums: Mapping[str, str] | None) -> ObjectMeta:
    if not checksums:
        return meta
    return msgspec.structs.replace(meta, checksums={**meta.checksums, **checksums})


# ---- S3 versioning ---------------------------------------------------------------------


class DeleteMarkerError(errors.NotFound):
    """The version read is a delete marker: ``NoSuchKey`` when it is the latest, and
    ``MethodNotAllowed`` (405) when asked for by id, as S3 answers. ``info`` is the
    marker, so the gateway can say so (``x-amz-delete-marker``, its version id)."""

    def __init__(self, info: ObjectInfo, by_id: bool):
        if by_id:
            super().__init__(
                f"version {info.version_id} of {info.key!r} is a delete marker, which has no data",
                code="MethodNotAllowed",
                status=405,
            )
        else:
            super().__init__(
                f"{info.key!r} was deleted (its latest version is a delete marker)",
                code="NoSuchKey",
            )
        self.info = info


def s3_version_id(info: ObjectInfo | DeleteObjectResponse) -> str:
    """The version id S3 clients see: "null" for the null version, else the stream id."""
    return "null" if info.null_version else info.version_id


# ---- end S3 versioning -----------------------------------------------------------------


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...


@dataclass(frozen=True)
class StoredObject:
    info: ObjectInfo
    meta: ObjectMeta


class ObjectHandle:
    """One object version being read: its info, and its bytes on demand."""

    def __init__(self, client: Client, obj: StoredObject, data_key: bytes, source: SegmentSource):
        self.client = client
        self.object = obj
        self.info = obj.info
        self.meta = obj.meta
        self._data_key = data_key
        self._source = source

    def read(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Plaintext [start, end) (``end`` None: to the end of the object)."""
        stop = self.info.size if end is None else min(end, self.info.size)
        return read_object_range(
            self.client.session, self._source, self._data_key, start, stop, self.client.extra
        )


class ChunkReader:
    """Reads exact-size runs from an async iterator of chunks, into reusable buffers."""

    def __init__(self, chunks: AsyncIterator[bytes]):
        self._chunks = chunks
        self._left = memoryview(b"")
        self.eof = False
        self.total = 0

    async def read_into(self, buf: bytearray, limit: int) -> int:
        """Fill ``buf[:limit]``; fewer bytes only at the end of the stream."""
        view = memoryview(buf)
        n = 0
        while n < limit:
            if not self._left:
                if self.eof:
                    break
                try:
                    chunk = await anext(self._chunks)
                except StopAsyncIteration:
                    self.eof = True
                    break
                self._left = memoryview(chunk)
                continue
            take = min(limit - n, len(self._left))
            view[n : n + take] = self._left[:take]
            self._left = self._left[take:]
            n += take
        self.total += n
        return n


def _inline_segment(
    key: bytes,
    position: SegmentPosition,
    plain: memoryview,
    block_size: int,
    key_salt: bytes = b"",
) -> SegmentCommit:
    """A segment small enough to live, encrypted, inside the metadata."""
    cipher = SegmentCipher(key, position.nonce_segment())
    return SegmentCommit(
        position=position,
        plain_size=len(plain),
        block_size=block_size,
        inline_data=cipher.encrypt_block(0, plain),
        key_salt=key_salt,
    )


async def _hash_all(hashers: Sequence[Hasher], data: memoryview) -> None:
    """Feed ``data`` to every hasher, each on its own worker thread.

    hashlib and the checksum routines release the GIL, so MD5 (0.58 GB/s here) and
    SHA-256 (0.23 GB/s without SHA-NI), the costliest stages of a signed PUT, run
    on both cores side by side rather than one after the other.
    """
    if len(data) <= INLINE_HASH_LIMIT:
        for h in hashers:  # a thread hop costs more than hashing a small object
            h.update(data)
    elif len(hashers) == 1:
        await asyncio.to_thread(hashers[0].update, data)
    else:
        await asyncio.gather(*(asyncio.to_thread(h.update, data) for h in hashers))


class Client:
    """Buckets and objects of one project."""

    def __init__(
        self,
        coordinator_url: str,
        api_key: str,
        project_id: str,
        root_secret: bytes,
        session: aiohttp.ClientSession | None = None,
        download_extra_pieces: int = 2,
    ):
        self._own_session = session is None
        self.session = session or aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=32),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
            read_bufsize=STREAM_BUFSIZE,
        )
        self.metainfo = MetainfoClient(coordinator_url, api_key, self.session)
        self.project_id = project_id
        self._root_secret = root_secret
        self._codec: CodecParams | None = None
        self.extra = download_extra_pieces
        self.buffers = BufferPool()
        # multipart uploads by (bucket, key, id): their key and codec never change,
        # so each part saves a coordinator round trip. A stale entry (aborted or
        # completed elsewhere) fails at begin_part with NoSuchUpload all the same.
        self._uploads: OrderedDict[tuple[str, str, str], UploadInfo] = OrderedDict()
        # bucket -> key: HKDF runs twice per request otherwise (4 % of the gateway's
        # time on 4 KiB PUTs and GETs); the client holds the root secret anyway
        self._bucket_keys: dict[str, bytes] = {}

    async def close(self) -> None:
        if self._own_session:
            await self.session.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def codec(self) -> CodecParams:
        if self._codec is None:
            self._codec = await self.metainfo.codec()
        return self._codec

    def bucket_key(self, bucket: str) -> bytes:
        key = self._bucket_keys.get(bucket)
        if key is None:
            if len(self._bucket_keys) >= MAX_CACHED_BUCKET_KEYS:
                self._bucket_keys.clear()
            key = derive_bucket_key(self._root_secret, self.project_id, bucket)
            self._bucket_keys[bucket] = key
        return key

    def _data_key(self, info_bucket: str, key: str, wrapped: bytes) -> bytes:
        return unwrap_key(self.bucket_key(info_bucket), wrapped, key_context(info_bucket, key))

    # ------------------------------------------------------------ buckets

    async def create_bucket(self, name: str, region: str = "", acl: str = "private") -> BucketInfo:
        return await self.metainfo.create_bucket(name, region, acl)

    async def get_bucket(self, name: str) -> BucketInfo:
        return await self.metainfo.get_bucket(name)

    async def list_buckets(self) -> list[BucketInfo]:
        return (await self.metainfo.list_buckets()).buckets

    async def delete_bucket(self, name: str) -> None:
        await self.metainfo.delete_bucket(name)

    async def put_bucket_versioning(self, name: str, status: str) -> BucketConfig:
        """``Enabled`` or ``Suspended``; a bucket is never unversioned again, as in S3."""
        return await self.metainfo.put_bucket_versioning(name, status)

    # ------------------------------------------------------------ writing

    async def put_object(
        self,
        bucket: str,
        key: str,
        source: AsyncIterator[bytes],
        *,
        size: int | None = None,
        meta: ObjectMeta | None = None,
        hashers: Sequence[Hasher] = (),
        etag: str | None = None,
        before_commit: BeforeCommit | None = None,
        if_match: str = "",
        if_none_match: str = "",
    ) -> StoredObject:
        """Store ``source`` as ``bucket/key``; the object appears only once all of it is stored.

        ``size`` (when known) sizes the buffers; ``hashers`` see every plaintext
        byte (the gateway checks Content-MD5, SHA-256 and checksums with them).
        The ETag is the MD5 of the plaintext unless ``etag`` is given.
        ``before_commit(md5_hex, size)`` runs after the last byte is stored and
        before the object becomes visible; raising there leaves it invisible, and
        the checksums it answers are sealed into the metadata. ``if_match`` (an
        ETag) and ``if_none_match`` ("*") are checked by the coordinator inside
        the commit transaction: S3's conditional writes, free of races.
        """
        codec = await self.codec()
        meta = meta or ObjectMeta()
        data_key = new_data_key()
        wrapped = wrap_key(self.bucket_key(bucket), data_key, key_context(bucket, key))
        md5 = hashlib.md5(usedforsecurity=False)
        all_hashers: list[Hasher] = [md5, *hashers]
        reader = ChunkReader(source)

        segment_cap = codec.max_segment_size
        first_cap = min(segment_cap, size) if size is not None else segment_cap
        first_cap = max(first_cap, codec.inline_threshold + 1)
        buf = self.buffers.take(first_cap)
        taken = [buf]  # back to the pool once the object is stored
        n = await reader.read_into(buf, first_cap)
        if reader.eof and n <= codec.inline_threshold:
            view = memoryview(buf)[:n]
            await _hash_all(all_hashers, view)
            if before_commit is not None:
                meta = _with_checksums(meta, before_commit(md5.hexdigest(), n))
            sealed = seal_meta(data_key, meta)
            segment = None
            if n:
                position = SegmentPosition(part=0, index=0)
                segment = _inline_segment(data_key, position, view, codec.block_size)
            info = await self.metainfo.put_inline(
                PutInlineRequest(
                    bucket=bucket,
                    key=key,
                    size=n,
                    etag=etag or md5.hexdigest(),
                    encrypted_key=wrapped,
                    encrypted_metadata=sealed,
                    segment=segment,
                    if_match=if_match,
                    if_none_match=if_none_match,
                )
            )
            self.buffers.give(buf)
            return StoredObject(info, meta)

        begin = await self.metainfo.begin_object(
            BeginObjectRequest(bucket=bucket, key=key, encrypted_key=wrapped, first_segment_size=n)
        )
        stream_id = begin.stream_id
        placement: Placement | None = begin.placement
        index = 0
        pending_commit: SegmentCommit | None = None
        spare: bytearray | None = None
        while True:
            view = memoryview(buf)[:n]
            position = SegmentPosition(part=0, index=index)
            hashing = asyncio.create_task(_hash_all(all_hashers, view))
            # read the next segment while this one is stored
            next_buf = spare if spare is not None else None
            reading: asyncio.Task[int] | None = None
            if not reader.eof and n == len(buf):
                if next_buf is None:
                    cap = (
                        segment_cap
                        if size is None
                        else max(1, min(segment_cap, size - reader.total))
                    )
                    next_buf = self.buffers.take(cap)
                    taken.append(next_buf)
                reading = asyncio.create_task(reader.read_into(next_buf, len(next_buf)))
            try:
                if pending_commit is not None:
                    await self.metainfo.commit_segment(
                        CommitSegmentRequest(stream_id=stream_id, segment=pending_commit)
                    )
                if index > 0 and n <= codec.inline_threshold:
                    # a short last segment lives in the metadata, like a small object
                    commit = _inline_segment(data_key, position, view, codec.block_size)
                else:
                    commit = await self._store_with_retry(
                        stream_id, position, view, data_key, codec.block_size, placement, None
                    )
                await hashing
            except BaseException:
                hashing.cancel()
                if reading is not None:
                    reading.cancel()
                await asyncio.gather(
                    hashing, *([reading] if reading else []), return_exceptions=True
                )
                raise
            placement = None
            pending_commit = commit
            next_n = await reading if reading is not None else 0
            if next_n == 0:
                break
            assert next_buf is not None
            spare, buf, n = buf, next_buf, next_n
            index += 1
        if before_commit is not None:
            meta = _with_checksums(meta, before_commit(md5.hexdigest(), reader.total))
        info = await self.metainfo.commit_object(
            CommitObjectRequest(
                stream_id=stream_id,
                bucket=bucket,
                key=key,
                size=reader.total,
                etag=etag or md5.hexdigest(),
                encrypted_metadata=seal_meta(data_key, meta),
                segments=[pending_commit] if pending_commit else [],
                if_match=if_match,
                if_none_match=if_none_match,
            )
        )
        for b in taken:
            self.buffers.give(b)
        return StoredObject(info, meta)

    async def _store_with_retry(
        self,
        stream_id: str,
        position: SegmentPosition,
        view: memoryview,
        data_key: bytes,
        block_size: int,
        placement: Placement | None,
        part_begin: BeginPartRequest | None,
    ) -> SegmentCommit:
        """Store one segment, asking for fresh nodes when too few took their piece."""
        exclude: list[str] = []
        last: errors.SkymeshError | None = None
        for attempt in range(SEGMENT_ATTEMPTS):
            if placement is None:
                if part_begin is not None and not exclude:
                    placement = await self.metainfo.begin_part(part_begin)
                else:
                    placement = await self.metainfo.begin_segment(
                        BeginSegmentRequest(
                            stream_id=stream_id,
                            position=position,
                            plain_size=len(view),
                            exclude_nodes=exclude,
                        )
                    )
            try:
                return await store_segment(
                    self.session, placement, position, view, data_key, block_size
                )
            except SegmentUploadError as e:
                last = e
                exclude.extend(n for n in e.failed_nodes if n not in exclude)
                log.warning(
                    "segment %s attempt %d failed (%s); retrying without %d nodes",
                    position,
                    attempt + 1,
                    e,
                    len(exclude),
                )
                placement = None
        assert last is not None
        raise last

    # ------------------------------------------------------------ multipart

    async def create_multipart(
        self, bucket: str, key: str, meta: ObjectMeta | None = None
    ) -> UploadInfo:
        data_key = new_data_key()
        wrapped = wrap_key(self.bucket_key(bucket), data_key, key_context(bucket, key))
        return await self.metainfo.begin_upload(
            BeginUploadRequest(
                bucket=bucket,
                key=key,
                encrypted_key=wrapped,
                encrypted_metadata=seal_meta(data_key, meta or ObjectMeta()),
            )
        )

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        source: AsyncIterator[bytes],
        *,
        size: int | None = None,
        hashers: Sequence[Hasher] = (),
        before_commit: BeforeCommit | None = None,
    ) -> PartInfo:
        """Store one part (streamed segment by segment); answers its size and MD5 ETag.

        The first checksum ``before_commit`` answers (``{algorithm: base64}``) is kept
        with the part, for S3's composite checksum at completion.
        """
        upload = await self._upload_info(bucket, key, upload_id)
        codec = upload.codec
        key_salt = os.urandom(KEY_SALT_SIZE)
        part_key = segment_key(self._data_key(bucket, key, upload.encrypted_key), key_salt)
        md5 = hashlib.md5(usedforsecurity=False)
        all_hashers: list[Hasher] = [md5, *hashers]
        reader = ChunkReader(source)
        cap = codec.max_segment_size if size is None else max(1, min(codec.max_segment_size, size))
        buf = self.buffers.take(cap)
        segments: list[SegmentCommit] = []
        index = 0
        while True:
            n = await reader.read_into(buf, len(buf))
            if n == 0 and index > 0:
                break
            view = memoryview(buf)[:n]
            # hash while the segment is stored: both read the same buffer
            hashing = asyncio.create_task(_hash_all(all_hashers, view))
            position = SegmentPosition(part=part_number, index=index)
            at_end = reader.eof or (size is not None and reader.total >= size)
            if n <= codec.inline_threshold and at_end:
                await hashing
                segments.append(
                    _inline_segment(part_key, position, view, codec.block_size, key_salt)
                )
                break
            begin = (
                BeginPartRequest(
                    bucket=bucket,
                    key=key,
                    upload_id=upload_id,
                    part_number=part_number,
                    plain_size=n,
                )
                if index == 0
                else None
            )
            try:
                commit = await self._store_with_retry(
                    upload_id, position, view, part_key, codec.block_size, None, part_begin=begin
                )
                await hashing
            except BaseException:
                hashing.cancel()
                await asyncio.gather(hashing, return_exceptions=True)
                raise
            segments.append(msgspec.structs.replace(commit, key_salt=key_salt))
            index += 1
            if reader.eof or (size is not None and reader.total >= size):
                break
        if not reader.eof:
            # drain to the end: a body longer than declared must fail the size check,
            # and an aws-chunked body's final chunk and trailers come only after its data
            await reader.read_into(bytearray(1), 1)
        etag = md5.hexdigest()
        checksum = ""
        if before_commit is not None:
            sums = before_commit(etag, reader.total)
            if sums:
                checksum = ":".join(next(iter(sums.items())))
        await self.metainfo.commit_part(
            CommitPartRequest(
                bucket=bucket,
                key=key,
                upload_id=upload_id,
                part_number=part_number,
                size=reader.total,
                etag=etag,
                segments=segments,
                checksum=checksum,
            )
        )
        self.buffers.give(buf)
        return PartInfo(
            part_number=part_number,
            size=reader.total,
            etag=etag,
            uploaded_at=0.0,
            checksum=checksum,
        )

    async def complete_multipart(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[CompletePart],
        *,
        if_match: str = "",
        if_none_match: str = "",
        checksums: Mapping[str, str] | None = None,
        composite: Callable[[list[PartInfo]], Mapping[str, str] | None] | None = None,
    ) -> ObjectInfo:
        """Join the parts; the ETag is S3's: MD5 of the part MD5s, a dash, the part count.

        The object's sealed metadata is re-sealed with each part's size (so
        ``partNumber`` reads can find a part's bytes) and ``checksums``, plus what
        ``composite`` answers from the listed parts as stored (S3's checksum of
        the part checksums).
        """
        digest = hashlib.md5(usedforsecurity=False)
        for p in parts:
            try:
                digest.update(bytes.fromhex(p.etag.strip('"')))
            except ValueError as e:
                raise errors.BadRequest(
                    f"part {p.part_number} has a malformed ETag", code="InvalidPart"
                ) from e
        etag = f"{digest.hexdigest()}-{len(parts)}"
        self._uploads.pop((bucket, key, upload_id), None)
        upload = await self.metainfo.get_upload(bucket, key, upload_id)
        data_key = self._data_key(bucket, key, upload.encrypted_key)
        meta = _with_checksums(open_meta(data_key, upload.encrypted_metadata), checksums)
        stored = await self.list_all_parts(bucket, key, upload_id)
        if composite is not None:
            listed = [stored[p.part_number] for p in parts if p.part_number in stored]
            meta = _with_checksums(meta, composite(listed))
        meta = msgspec.structs.replace(
            meta,
            parts=[stored[p.part_number].size if p.part_number in stored else -1 for p in parts],
        )
        return await self.metainfo.complete_upload(
            CompleteUploadRequest(
                bucket=bucket,
                key=key,
                upload_id=upload_id,
                parts=parts,
                etag=etag,
                if_match=if_match,
                if_none_match=if_none_match,
                encrypted_metadata=seal_meta(data_key, meta),
            )
        )

    async def list_all_parts(self, bucket: str, key: str, upload_id: str) -> dict[int, PartInfo]:
        """Every uploaded part by number (the coordinator checks the ETags at completion)."""
        sizes: dict[int, PartInfo] = {}
        marker = 0
        while True:
            page = await self.metainfo.list_parts(
                ListPartsRequest(
                    bucket=bucket, key=key, upload_id=upload_id, part_number_marker=marker
                )
            )
            sizes.update((p.part_number, p) for p in page.parts)
            if not page.truncated or not page.parts:
                return sizes
            marker = page.parts[-1].part_number

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        self._uploads.pop((bucket, key, upload_id), None)
        await self.metainfo.abort_upload(bucket, key, upload_id)

    async def _upload_info(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        ident = (bucket, key, upload_id)
        upload = self._uploads.get(ident)
        if upload is None:
            upload = await self.metainfo.get_upload(bucket, key, upload_id)
            self._uploads[ident] = upload
            if len(self._uploads) > UPLOAD_CACHE:
                self._uploads.popitem(last=False)
        return upload

    # ------------------------------------------------------------ reading

    async def head_object(self, bucket: str, key: str, version_id: str = "") -> StoredObject:
        """One version ("" the latest); a delete marker raises :class:`DeleteMarkerError`."""
        info = await self.metainfo.head_object(bucket, key, version_id, delete_markers=True)
        if info.delete_marker:
            raise DeleteMarkerError(info, by_id=bool(version_id))
        data_key = self._data_key(bucket, key, info.encrypted_key)
        return StoredObject(info, open_meta(data_key, info.encrypted_metadata))

    async def open_object(
        self,
        bucket: str,
        key: str,
        version_id: str = "",
        offset_hint: int = 0,
        end_hint: int | None = None,
    ) -> ObjectHandle:
        """An object's info, ready to read; segments from ``offset_hint`` (up to
        ``end_hint``, where the reader knows it stops there) come in the same call."""
        resp = await self.metainfo.download(
            DownloadRequest(
                bucket=bucket,
                key=key,
                version_id=version_id,
                plain_offset=offset_hint,
                segment_limit=FIRST_CALL_SEGMENTS,
                delete_markers=True,
                plain_end=end_hint,
            )
        )
        info = resp.object
        if info.delete_marker:
            raise DeleteMarkerError(info, by_id=bool(version_id))
        data_key = self._data_key(bucket, key, info.encrypted_key)
        meta = open_meta(data_key, info.encrypted_metadata)

        async def fetch(number: int | None, offset: int | None) -> list[SegmentDownload]:
            more = await self.metainfo.download(
                DownloadRequest(
                    bucket=bucket,
                    key=key,
                    version_id=info.version_id,
                    first_segment=number or 0,
                    plain_offset=offset,
                    segment_limit=SEGMENTS_PER_CALL,
                )
            )
            return more.segments

        source = SegmentSource(fetch, resp.segments, info.segment_count)
        return ObjectHandle(self, StoredObject(info, meta), data_key, source)

    async def delete_object(self, bucket: str, key: str, version_id: str = "") -> bool:
        return (await self.metainfo.delete_object(bucket, key, version_id)).deleted

    # ------------------------------------------------------------ S3 versioning

    async def delete_version(
        self, bucket: str, key: str, version_id: str = ""
    ) -> DeleteObjectResponse:
        """As :meth:`delete_object`, answering what was removed or which marker was written."""
        return await self.metainfo.delete_object(bucket, key, version_id)

    async def delete_objects(
        self, bucket: str, items: Sequence[tuple[str, str]]
    ) -> list[DeleteObjectsResult]:
        """Delete ``(key, version id)`` pairs in one coordinator transaction per 1000."""
        out: list[DeleteObjectsResult] = []
        for start in range(0, len(items), 1000):
            req = DeleteObjectsRequest(
                bucket=bucket,
                objects=[
                    DeleteObjectsItem(key=k, version_id=v) for k, v in items[start : start + 1000]
                ],
            )
            out.extend((await self.metainfo.delete_objects(req)).results)
        return out

    async def list_versions(self, req: ListVersionsRequest) -> ListVersionsResponse:
        return await self.metainfo.list_versions(req)

    # ------------------------------------------------------------ S3 slice B: metadata edits

    async def update_object_meta(
        self,
        bucket: str,
        key: str,
        change: Callable[[ObjectMeta], ObjectMeta],
        version_id: str = "",
    ) -> StoredObject:
        """Re-seal an object's metadata with ``change`` applied (tags, ACL): no data moves.

        The coordinator swaps the blob only if the version read here is still
        current. Without ``version_id`` a concurrent overwrite makes this retry on
        the new version, as S3 applies such changes to the latest one.
        """
        for attempt in range(METADATA_ATTEMPTS):
            info = await self.metainfo.head_object(bucket, key, version_id)
            data_key = self._data_key(bucket, key, info.encrypted_key)
            meta = change(open_meta(data_key, info.encrypted_metadata))
            try:
                info = await self.metainfo.update_metadata(
                    UpdateObjectMetadataRequest(
                        bucket=bucket,
                        key=key,
                        version_id=info.version_id,
                        encrypted_metadata=seal_meta(data_key, meta),
                    )
                )
            except errors.NotFound as e:
                if version_id or e.code != "NoSuchVersion" or attempt + 1 == METADATA_ATTEMPTS:
                    raise
                continue
            return StoredObject(info, meta)
        raise AssertionError("unreachable")

    async def list_objects(self, req: ListObjectsRequest) -> ListObjectsResponse:
        return await self.metainfo.list_objects(req)
