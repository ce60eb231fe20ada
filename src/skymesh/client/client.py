"""The data path for one project: what the gateway (or a Python program) calls.

A :class:`Client` is made of explicit parts: a :class:`MetainfoClient` (the
coordinator routes its caller may use), a :class:`KeySource` (the data keys it
can open) and an :class:`AccessRule` (what its caller may read). The project
owner's (:meth:`Client.for_project`) holds the API key and the root secret and
may read everything; nothing it sends out can be read without that secret.
Objects stream through segment by segment (:mod:`.writer`, :mod:`.download`):
memory is bounded by the segment size, never by the object size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import aiohttp
import msgspec

from skymesh import errors
from skymesh.client.access import OWNER, AccessRule
from skymesh.client.buffers import BufferPool
from skymesh.client.customerkey import CustomerKey, customer_etag, open_content, verifier
from skymesh.client.download import (
    FIRST_CALL_SEGMENTS,
    SEGMENTS_PER_CALL,
    SegmentSource,
    as_bytes,
    read_object_views,
)
from skymesh.client.keys import KeySource, RootSecretKeys, tags_digested
from skymesh.client.metainfo import MetainfoClient
from skymesh.client.multipart import MultipartUploads
from skymesh.client.objectmeta import BeforeCommit, ObjectMeta, open_meta, seal_meta, with_checksums
from skymesh.client.writer import Chunk, Hasher, SegmentWriter
from skymesh.failover import Endpoints
from skymesh.piecetransfer.sockets import piece_socket
from skymesh.rpc import NO_REDIRECTS, STREAM_BUFSIZE
from skymesh.wire.metainfo import (
    AbortObjectRequest,
    BeginObjectRequest,
    BeginSegmentRequest,
    BucketConfig,
    BucketInfo,
    CodecParams,
    CommitObjectRequest,
    CommitSegmentRequest,
    DeleteObjectResponse,
    DeleteObjectsItem,
    DeleteObjectsRequest,
    DeleteObjectsResult,
    DownloadRequest,
    ListObjectsRequest,
    ListObjectsResponse,
    ListVersionsRequest,
    ListVersionsResponse,
    ObjectInfo,
    ObjectLock,
    Placement,
    PutInlineRequest,
    SegmentCommit,
    SegmentDownload,
    SegmentPosition,
    UpdateObjectMetadataRequest,
    UploadInfo,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

METADATA_ATTEMPTS = 3  # update_object_meta retries when the object is overwritten meanwhile


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


@dataclass(frozen=True)
class StoredObject:
    info: ObjectInfo
    meta: ObjectMeta


#: A later batch of an object's segments is asked for while its body already streams
#: to the reader: a failure then cuts the body short. So the coordinators being
#: unreachable (every one restarting, or the database failing over) is waited out
#: this long, in growing steps, before the read fails.
MID_STREAM_WAIT = 30.0


async def _mid_stream(call: Callable[[], Awaitable[T]], what: str) -> T:
    """``call()``, retried while it raises :class:`~skymesh.errors.Unavailable`, for
    ``MID_STREAM_WAIT`` seconds at most."""
    deadline = time.monotonic() + MID_STREAM_WAIT
    delay = 0.1
    while True:
        try:
            return await call()
        except errors.Unavailable as e:
            if time.monotonic() + delay > deadline:
                raise
            log.info("segments of %s, mid-read: %s; asking again in %.1f s", what, e, delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)


class ObjectHandle:
    """One object version being read: its info, and its bytes on demand."""

    def __init__(
        self, client: Client, obj: StoredObject, content_key: bytes, source: SegmentSource
    ):
        self.client = client
        self.object = obj
        self.info = obj.info
        self.meta = obj.meta
        # the data key, or with SSE-C the key derived from it and the customer's
        self._content_key = content_key
        self._source = source

    def read(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Plaintext [start, end) (``end`` None: to the end of the object), as ``bytes``."""
        return as_bytes(self.views(start, end))

    def views(self, start: int = 0, end: int | None = None) -> AsyncGenerator[memoryview, None]:
        """:meth:`read` without a copy: views of one reused buffer, each valid until the
        next step (a caller that writes each out and drops it copies nothing more)."""
        stop = self.info.size if end is None else min(end, self.info.size)
        return read_object_views(
            self.client.session,
            self._source,
            self._content_key,
            start,
            stop,
            self.client.extra,
            self.client.buffers,
        )


class Client:
    """Buckets and objects of one project, as far as its keys and its access rule allow."""

    def __init__(
        self,
        metainfo: MetainfoClient,
        keys: KeySource,
        session: aiohttp.ClientSession,
        *,
        access: AccessRule = OWNER,
        download_extra_pieces: int = 2,
        owns_session: bool = False,
        buffers: BufferPool | None = None,
    ) -> None:
        self.metainfo = metainfo
        self.keys = keys
        self.access = access
        self.session = session
        self.extra = download_extra_pieces
        # upload buffers and their budget; a gateway shares one pool among its clients
        self.buffers = buffers if buffers is not None else BufferPool()
        self._owns_session = owns_session
        self._codec: CodecParams | None = None
        self._aborts: set[asyncio.Task[None]] = set()  # aborts that outlive their request
        self.multipart = MultipartUploads(metainfo, keys, session, self.buffers)

    @classmethod
    def for_project(
        cls,
        coordinator_url: str | Sequence[str] | Endpoints,
        api_key: str,
        project_id: str,
        root_secret: bytes,
        session: aiohttp.ClientSession | None = None,
        download_extra_pieces: int = 2,
        buffers: BufferPool | None = None,
    ) -> Client:
        """The project owner's client: its API key, bucket keys derived from its root
        secret, every read allowed. ``coordinator_url``: one URL or several
        (:class:`~skymesh.rpc.RpcClient`). Without a ``session`` it makes one, closed with it;
        without ``buffers``, its uploads have a pool of their own with no budget."""
        owns_session = session is None
        session = session or aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=32, socket_factory=piece_socket),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
            read_bufsize=STREAM_BUFSIZE,
            middlewares=NO_REDIRECTS,
        )
        return cls(
            MetainfoClient.for_project(coordinator_url, api_key, session),
            RootSecretKeys(project_id, root_secret),
            session,
            download_extra_pieces=download_extra_pieces,
            owns_session=owns_session,
            buffers=buffers,
        )

    async def close(self) -> None:
        if self._aborts:  # aborts of failed uploads still under way need the session
            await asyncio.gather(*self._aborts, return_exceptions=True)
        if self._owns_session:
            await self.session.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def codec(self) -> CodecParams:
        if self._codec is None:
            self._codec = await self.metainfo.codec()
        return self._codec

    def data_key(self, item: ObjectInfo | UploadInfo) -> bytes:
        """The data key of an object version or a multipart upload: what a node that holds
        no key of its own is handed to read or write that one object."""
        return self.keys.data_key(item.bucket, item.key, item.encrypted_key)

    # ------------------------------------------------------------ buckets

    async def create_bucket(
        self, name: str, region: str = "", acl: str = "private", *, object_lock: bool = False
    ) -> BucketInfo:
        return await self.metainfo.create_bucket(name, region, acl, object_lock=object_lock)

    async def get_bucket(self, name: str) -> BucketInfo:
        await self.access.check_bucket(name)
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
        source: AsyncIterator[Chunk],
        *,
        size: int | None = None,
        meta: ObjectMeta | None = None,
        hashers: Sequence[Hasher] = (),
        etag: str | None = None,
        before_commit: BeforeCommit | None = None,
        if_match: str = "",
        if_none_match: str = "",
        customer_key: CustomerKey | None = None,
        lock: ObjectLock | None = None,
    ) -> StoredObject:
        """Store ``source`` as ``bucket/key``; the object appears only once all of it is stored.

        ``size`` (when known) sizes the buffers; ``hashers`` see every plaintext
        byte (the gateway checks Content-MD5, SHA-256 and checksums with them).
        The ETag is the MD5 of the plaintext unless ``etag`` is given.
        ``before_commit(md5_hex, size)`` runs after the last byte is stored and
        before the object becomes visible; raising there leaves it invisible, and
        the checksums it answers are sealed into the metadata. ``if_match`` (an
        ETag) and ``if_none_match`` ("*") are checked by the coordinator inside
        the commit transaction: S3's conditional writes, free of races. ``lock`` is
        the S3 Object Lock of the new version (None: the bucket's default retention).

        An upload that fails or is cancelled once its stream was begun is aborted
        at the coordinator (``objects/abort``) before the error goes on, so its
        pieces go at the garbage collector's next run, not after the upload TTL.

        With a ``customer_key`` (SSE-C) the bytes are encrypted under a key derived from
        it and the data key (:mod:`.customerkey`), and the ETag is not the MD5.
        """
        codec = await self.codec()
        meta = meta or ObjectMeta()
        data_key, wrapped = self.keys.new_key(bucket, key)
        content = data_key
        if customer_key is not None:
            meta = msgspec.structs.replace(
                meta, customer_key_verifier=verifier(data_key, customer_key)
            )
            content = open_content(data_key, meta.customer_key_verifier, customer_key)
        writer = SegmentWriter(
            self.session, self.buffers, codec, source, content, size=size, hashers=hashers
        )
        stream_id = ""  # begun with the first segment that goes to nodes

        async def place(
            position: SegmentPosition, plain_size: int, exclude: list[str]
        ) -> Placement:
            nonlocal stream_id
            if not stream_id:
                begin = await self.metainfo.begin_object(
                    BeginObjectRequest(
                        bucket=bucket, key=key, encrypted_key=wrapped, first_segment_size=plain_size
                    )
                )
                stream_id = begin.stream_id
                return begin.placement
            return await self.metainfo.begin_segment(
                BeginSegmentRequest(
                    stream_id=stream_id,
                    position=position,
                    plain_size=plain_size,
                    exclude_nodes=exclude,
                )
            )

        async def commit(segment: SegmentCommit) -> None:
            await self.metainfo.commit_segment(
                CommitSegmentRequest(stream_id=stream_id, segment=segment)
            )

        try:
            last = await writer.write(place, commit_earlier=commit)
            md5 = writer.md5.hexdigest()
            if before_commit is not None:
                meta = with_checksums(meta, before_commit(md5, writer.total))
            if customer_key is not None:
                etag = customer_etag(content, md5)
            if not stream_id:
                # the whole object is one inline segment (none when empty): a single call
                info = await self.metainfo.put_inline(
                    PutInlineRequest(
                        bucket=bucket,
                        key=key,
                        size=writer.total,
                        etag=etag or md5,
                        encrypted_key=wrapped,
                        encrypted_metadata=seal_meta(data_key, meta),
                        tag_digests=tags_digested(self.keys, bucket, meta.tags),
                        segment=last[0] if writer.total else None,
                        if_match=if_match,
                        if_none_match=if_none_match,
                        lock=lock,
                    )
                )
            else:
                info = await self.metainfo.commit_object(
                    CommitObjectRequest(
                        stream_id=stream_id,
                        bucket=bucket,
                        key=key,
                        size=writer.total,
                        etag=etag or md5,
                        encrypted_metadata=seal_meta(data_key, meta),
                        tag_digests=tags_digested(self.keys, bucket, meta.tags),
                        segments=last,
                        if_match=if_match,
                        if_none_match=if_none_match,
                        lock=lock,
                    )
                )
        except (Exception, asyncio.CancelledError):  # not GeneratorExit: nothing can run then
            if stream_id:
                abort = AbortObjectRequest(bucket=bucket, key=key, stream_id=stream_id)
                await self._abort(abort, list(writer.unrecorded))
            raise
        return StoredObject(info, meta)

    async def _abort(self, req: AbortObjectRequest, unrecorded: list[SegmentCommit]) -> None:
        """Drop a failed upload's pending stream, first recording the segments it stored
        that no commit recorded, so that their pieces are deleted with it. Runs to its
        end even when the request that failed is being cancelled (a client hung up)."""
        task = asyncio.create_task(self._send_abort(req, unrecorded))
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)
        await asyncio.shield(task)

    async def _send_abort(self, req: AbortObjectRequest, unrecorded: list[SegmentCommit]) -> None:
        for segment in unrecorded:
            try:
                await self.metainfo.commit_segment(
                    CommitSegmentRequest(stream_id=req.stream_id, segment=segment)
                )
            except errors.SkymeshError as e:
                log.info(
                    "segment %s of the failed upload %s not recorded (%s): its pieces go"
                    " by reconciliation",
                    segment.position,
                    req.stream_id,
                    e,
                )
        try:
            await self.metainfo.abort_object(req)
        except errors.NotFound:
            pass  # committed after all (its answer was lost), or already gone
        except Exception as e:
            log.warning(
                "could not abort the failed upload %s of %s/%s; it expires after the"
                " pending upload TTL: %s",
                req.stream_id,
                req.bucket,
                req.key,
                e,
            )

    # ------------------------------------------------------------ reading

    async def head_object(self, bucket: str, key: str, version_id: str = "") -> StoredObject:
        """One version ("" the latest); a delete marker raises :class:`DeleteMarkerError`."""
        try:
            info = await self.metainfo.head_object(bucket, key, version_id, delete_markers=True)
            if info.delete_marker:
                raise DeleteMarkerError(info, by_id=bool(version_id))
            obj = StoredObject(info, open_meta(self.data_key(info), info.encrypted_metadata))
        except errors.SkymeshError as e:
            await self._refuse(bucket, e)
        self.access.check_object(obj.meta)
        return obj

    def check_customer_key(self, obj: StoredObject, customer_key: CustomerKey | None) -> None:
        """Raise S3's error unless ``customer_key`` is what reading ``obj`` takes: the key
        it was written with (SSE-C), or none for an object written without one."""
        open_content(self.data_key(obj.info), obj.meta.customer_key_verifier, customer_key)

    async def open_object(
        self,
        bucket: str,
        key: str,
        version_id: str = "",
        offset_hint: int = 0,
        end_hint: int | None = None,
        customer_key: CustomerKey | None = None,
    ) -> ObjectHandle:
        """An object's info, ready to read; segments from ``offset_hint`` (up to
        ``end_hint``, where the reader knows it stops there) come in the same call.
        An object written with a customer key (SSE-C) opens only with that key."""
        if self.access.head_first:
            version_id = (await self.head_object(bucket, key, version_id)).info.version_id
        try:
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
            data_key = self.data_key(info)
            meta = open_meta(data_key, info.encrypted_metadata)
        except errors.SkymeshError as e:
            await self._refuse(bucket, e)
        self.access.check_object(meta)  # the version being read, before any byte
        content = open_content(data_key, meta.customer_key_verifier, customer_key)

        async def fetch(number: int | None, offset: int | None) -> list[SegmentDownload]:
            req = DownloadRequest(
                bucket=bucket,
                key=key,
                version_id=info.version_id,
                first_segment=number or 0,
                plain_offset=offset,
                segment_limit=SEGMENTS_PER_CALL,
            )
            return (
                await _mid_stream(lambda: self.metainfo.download(req), f"{bucket}/{key}")
            ).segments

        source = SegmentSource(fetch, resp.segments, info.segment_count)
        return ObjectHandle(self, StoredObject(info, meta), content, source)

    async def _refuse(self, bucket: str, err: errors.SkymeshError) -> NoReturn:
        """Raise what the access rule lets the caller know of ``err``."""
        refusal = await self.access.refusal(bucket, err)
        if refusal is err:
            raise err
        raise refusal from err

    async def delete_object(self, bucket: str, key: str, version_id: str = "") -> bool:
        return (await self.metainfo.delete_object(bucket, key, version_id)).deleted

    async def delete_version(
        self, bucket: str, key: str, version_id: str = "", *, bypass_governance: bool = False
    ) -> DeleteObjectResponse:
        """As :meth:`delete_object`, answering what was removed or which marker was written.

        A version under S3 Object Lock is refused (``AccessDenied``); ``bypass_governance``
        lifts GOVERNANCE retention, never COMPLIANCE or a legal hold.
        """
        return await self.metainfo.delete_object(
            bucket, key, version_id, bypass_governance=bypass_governance
        )

    async def delete_objects(
        self, bucket: str, items: Sequence[tuple[str, str]], *, bypass_governance: bool = False
    ) -> list[DeleteObjectsResult]:
        """Delete ``(key, version id)`` pairs in one coordinator transaction per 1000."""
        out: list[DeleteObjectsResult] = []
        for start in range(0, len(items), 1000):
            req = DeleteObjectsRequest(
                bucket=bucket,
                objects=[
                    DeleteObjectsItem(key=k, version_id=v) for k, v in items[start : start + 1000]
                ],
                bypass_governance=bypass_governance,
            )
            out.extend((await self.metainfo.delete_objects(req)).results)
        return out

    async def list_versions(self, req: ListVersionsRequest) -> ListVersionsResponse:
        return await self.metainfo.list_versions(req)

    # ------------------------------------------------------------ metadata edits

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
            data_key = self.data_key(info)
            meta = change(open_meta(data_key, info.encrypted_metadata))
            try:
                info = await self.metainfo.update_metadata(
                    UpdateObjectMetadataRequest(
                        bucket=bucket,
                        key=key,
                        version_id=info.version_id,
                        encrypted_metadata=seal_meta(data_key, meta),
                        tag_digests=tags_digested(self.keys, bucket, meta.tags),
                    )
                )
            except errors.NotFound as e:
                if version_id or e.code != "NoSuchVersion" or attempt + 1 == METADATA_ATTEMPTS:
                    raise
                continue
            return StoredObject(info, meta)
        raise AssertionError("unreachable")

    async def list_objects(self, req: ListObjectsRequest) -> ListObjectsResponse:
        await self.access.check_bucket(req.bucket)
        return await self.metainfo.list_objects(req)
