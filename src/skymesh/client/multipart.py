"""Multipart uploads: create one, store its parts segment by segment, complete or abort it.

Each part is encrypted under its own subkey (the upload's data key and a fresh salt),
so uploading a part number again never repeats a (key, nonce) pair.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import aiohttp
import msgspec

from skymesh import errors
from skymesh.client.buffers import BufferPool
from skymesh.client.customerkey import CustomerKey, customer_etag, open_content, verifier
from skymesh.client.keys import KeySource, new_part_key, tags_digested
from skymesh.client.metainfo import MetainfoClient
from skymesh.client.objectmeta import (
    BeforeCommit,
    ObjectMeta,
    open_meta,
    seal_meta,
    with_checksums,
)
from skymesh.client.writer import Chunk, Hasher, SegmentWriter
from skymesh.wire.metainfo import (
    BeginPartRequest,
    BeginSegmentRequest,
    BeginUploadRequest,
    CommitPartRequest,
    CompletePart,
    CompleteUploadRequest,
    ListPartsRequest,
    ObjectInfo,
    PartInfo,
    Placement,
    SegmentPosition,
    UploadInfo,
)

UPLOAD_CACHE = 1024  # multipart uploads whose info is remembered


class MultipartUploads:
    """The multipart uploads of one client (its coordinator routes and its keys)."""

    def __init__(
        self,
        metainfo: MetainfoClient,
        keys: KeySource,
        session: aiohttp.ClientSession,
        buffers: BufferPool,
    ) -> None:
        self.metainfo = metainfo
        self.keys = keys
        self.session = session
        self.buffers = buffers
        # uploads by (bucket, key, id): their key and codec never change, so each part
        # saves a coordinator round trip. A stale entry (aborted or completed elsewhere)
        # fails at begin_part with NoSuchUpload all the same.
        self._uploads: OrderedDict[tuple[str, str, str], UploadInfo] = OrderedDict()

    async def create(
        self,
        bucket: str,
        key: str,
        meta: ObjectMeta | None = None,
        customer_key: CustomerKey | None = None,
    ) -> UploadInfo:
        """Begin an upload; with a ``customer_key`` (SSE-C) every part must bring it too."""
        data_key, wrapped = self.keys.new_key(bucket, key)
        meta = meta or ObjectMeta()
        if customer_key is not None:
            meta = msgspec.structs.replace(
                meta, customer_key_verifier=verifier(data_key, customer_key)
            )
        return await self.metainfo.begin_upload(
            BeginUploadRequest(
                bucket=bucket,
                key=key,
                encrypted_key=wrapped,
                encrypted_metadata=seal_meta(data_key, meta),
            )
        )

    def _content_key(self, upload: UploadInfo, customer_key: CustomerKey | None) -> bytes:
        """The key the upload's parts are encrypted under (subkeys of it, one per part
        upload), with S3's errors for a part whose customer key is not the upload's."""
        data_key = self.keys.data_key(upload.bucket, upload.key, upload.encrypted_key)
        stored = open_meta(data_key, upload.encrypted_metadata).customer_key_verifier
        try:
            return open_content(data_key, stored, customer_key)
        except errors.SkymeshError as e:
            if customer_key is None:
                message = (
                    "The multipart upload initiate requested encryption. Subsequent part"
                    " requests must include the appropriate encryption parameters."
                )
            elif not stored:
                message = (
                    "The multipart upload initiate did not request encryption with a"
                    " customer-provided key: send no customer key with its parts."
                )
            else:
                message = (
                    "The provided encryption parameters did not match the ones used originally."
                )
            raise errors.BadRequest(message, code="InvalidRequest") from e

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        source: AsyncIterator[Chunk],
        *,
        size: int | None = None,
        hashers: Sequence[Hasher] = (),
        before_commit: BeforeCommit | None = None,
        customer_key: CustomerKey | None = None,
    ) -> PartInfo:
        """Store one part (streamed segment by segment); answers its size and MD5 ETag
        (with a ``customer_key``, which must be the upload's, an ETag derived from it).

        The first checksum ``before_commit`` answers (``{algorithm: base64}``) is kept
        with the part, for S3's composite checksum at completion.
        """
        upload = await self._upload_info(bucket, key, upload_id)
        content = self._content_key(upload, customer_key)
        part_key, key_salt = new_part_key(content)
        writer = SegmentWriter(
            self.session,
            self.buffers,
            upload.codec,
            source,
            part_key,
            key_salt=key_salt,
            part=part_number,
            size=size,
            hashers=hashers,
        )

        async def place(
            position: SegmentPosition, plain_size: int, exclude: list[str]
        ) -> Placement:
            if position.index == 0 and not exclude:
                return await self.metainfo.begin_part(
                    BeginPartRequest(
                        bucket=bucket,
                        key=key,
                        upload_id=upload_id,
                        part_number=part_number,
                        plain_size=plain_size,
                    )
                )
            return await self.metainfo.begin_segment(
                BeginSegmentRequest(
                    stream_id=upload_id,
                    position=position,
                    plain_size=plain_size,
                    exclude_nodes=exclude,
                )
            )

        segments = await writer.write(place)
        etag = writer.md5.hexdigest()
        checksum = ""
        if before_commit is not None:
            sums = before_commit(etag, writer.total)
            if sums:
                checksum = ":".join(next(iter(sums.items())))
        if customer_key is not None:
            etag = customer_etag(content, etag, key_salt)
        await self.metainfo.commit_part(
            CommitPartRequest(
                bucket=bucket,
                key=key,
                upload_id=upload_id,
                part_number=part_number,
                size=writer.total,
                etag=etag,
                segments=segments,
                checksum=checksum,
            )
        )
        return PartInfo(
            part_number=part_number,
            size=writer.total,
            etag=etag,
            uploaded_at=0.0,
            checksum=checksum,
        )

    async def complete(
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
        ``partNumber`` reads can find a part's bytes), each part's checksum as
        uploaded (for GetObjectAttributes) and ``checksums``, plus what
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
        request = CompleteUploadRequest(
            bucket=bucket,
            key=key,
            upload_id=upload_id,
            parts=parts,
            etag=etag,
            if_match=if_match,
            if_none_match=if_none_match,
        )
        try:
            upload = await self.metainfo.get_upload(bucket, key, upload_id)
        except errors.NotFound as e:
            if e.code != "NoSuchUpload":
                raise
            # Completed already, perhaps: a client whose first answer was lost completes
            # again, and the coordinator answers a repeat (same parts, same ETag) as it
            # answered the first, or NoSuchUpload when there was none.
            return await self.metainfo.complete_upload(request)
        data_key = self.keys.data_key(upload.bucket, upload.key, upload.encrypted_key)
        meta = with_checksums(open_meta(data_key, upload.encrypted_metadata), checksums)
        stored = await self.list_all_parts(bucket, key, upload_id)
        if composite is not None:
            listed = [stored[p.part_number] for p in parts if p.part_number in stored]
            meta = with_checksums(meta, composite(listed))
        part_checksums = [
            stored[p.part_number].checksum if p.part_number in stored else "" for p in parts
        ]
        lock = meta.lock
        meta = msgspec.structs.replace(
            meta,
            parts=[stored[p.part_number].size if p.part_number in stored else -1 for p in parts],
            part_checksums=part_checksums if any(part_checksums) else [],
            lock=None,
        )
        return await self.metainfo.complete_upload(
            msgspec.structs.replace(
                request,
                encrypted_metadata=seal_meta(data_key, meta),
                lock=lock,
                tag_digests=tags_digested(self.keys, bucket, meta.tags),
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

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
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
