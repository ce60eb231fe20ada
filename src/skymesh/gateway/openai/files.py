"""``/v1/files``: OpenAI files that are skymesh objects, read and written through the client library.

A file id names its object: ``file-`` + URL-safe base64 (unpadded) of
``"<bucket>/<key>"``. So any JSONL object already stored in a bucket of the
project is a batch input without re-upload (:func:`file_id` gives its id), and
nothing but the object itself has to be kept: no index to lose or fall out of
step. The id shows the bucket and key to whoever holds it; they are names the
project chose, and the coordinator sees them anyway.

Uploads go to the bucket named by the ``X-Skymesh-Bucket`` header or a ``bucket``
form field sent before the file, else to the project's own files bucket (created
on first use, no location constraint), at ``openai-files/<random>/<filename>``.
Batch outputs are written next to their input at
``openai-batches/<batch id>/{output,errors}.jsonl``: purpose ``batch_output``.

The files bucket is ``openai-files-<tag>``, the tag an HMAC of the project's
encryption secret (:func:`files_bucket`). Bucket names are global, so a name
others could work out (the project id is no secret) could be taken by another
project first and break this API for the victim; this one only holders of the
project's keys can know, and every gateway holding them finds the same bucket.
Should the name be taken anyway, the answer is a 409 that says so.

Limits: the file part streams into the object (never held whole) up to
``MAX_FILE``; every other field is read up to ``MAX_FIELD`` bytes and a form has at
most ``MAX_PARTS`` parts; beyond, 413 (too many parts: 400). aiohttp bounds each
part's headers (8190 bytes a line, 128 lines); a form it cannot parse is a 400
``invalid_multipart``.

| route | answer |
|---|---|
| POST /v1/files | multipart form: ``purpose`` = ``batch``, ``file`` -> File |
| GET /v1/files | list of File (``?bucket=``, ``?purpose=``, ``?limit=``, ``?after=``) |
| GET /v1/files/{id} | File |
| GET /v1/files/{id}/content | the bytes |
| DELETE /v1/files/{id} | ``{id, object: "file", deleted: true}`` |
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from skymesh.client.buffers import BufferPool
from skymesh.client.client import Client
from skymesh.client.objectmeta import ObjectMeta
from skymesh.config import Credential, GatewayConfig
from skymesh.errors import Conflict, NotFound, SkymeshError
from skymesh.failover import Endpoints
from skymesh.gateway.openai.errors import OpenAIError, bad_request
from skymesh.wire.metainfo import ListObjectsRequest, ObjectInfo

MAX_FILE = 200 * 1024 * 1024  # OpenAI's limit for a batch input
MAX_FIELD = 1024  # a form field other than the file: purpose, bucket
MAX_PARTS = 8  # parts of one upload form (purpose, bucket, file, and a few extra)
FILES_BUCKET_PREFIX = "openai-files-"
UPLOAD_PREFIX = "openai-files/"
OUTPUT_PREFIX = "openai-batches/"
BUCKET_HEADER = "X-Skymesh-Bucket"
PURPOSES = ("batch",)
JSONL = "application/jsonl"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")


def files_bucket(c: Credential) -> str:
    """The project's files bucket: a name derived from its encryption secret, so no one
    without the project's keys can know it before it exists (and take it)."""
    tag = hmac.new(
        bytes.fromhex(c.encryption_secret), b"skymesh/openai-files-bucket/v1", hashlib.sha256
    )
    return FILES_BUCKET_PREFIX + tag.hexdigest()[:40]


def file_id(bucket: str, key: str) -> str:
    return "file-" + base64.urlsafe_b64encode(f"{bucket}/{key}".encode()).decode().rstrip("=")


def parse_file_id(value: str) -> tuple[str, str]:
    """(bucket, key) of a file id; 404 ``file_not_found`` when it names nothing."""
    raw = value.removeprefix("file-")
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    bucket, _, key = text.partition("/")
    if not value.startswith("file-") or not bucket or not key:
        raise OpenAIError(f"no such file: {value!r}", status=404, code="file_not_found")
    return bucket, key


def purpose_of(key: str) -> str:
    return "batch_output" if key.startswith(OUTPUT_PREFIX) else "batch"


def file_object(bucket: str, key: str, size: int, created_at: float) -> dict[str, Any]:
    return {
        "id": file_id(bucket, key),
        "object": "file",
        "bytes": size,
        "created_at": int(created_at),
        "filename": key.rsplit("/", 1)[-1],
        "purpose": purpose_of(key),
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def not_found(e: NotFound, fid: str) -> OpenAIError:
    return OpenAIError(f"no such file {fid!r}: {e.message}", status=404, code="file_not_found")


class ProjectFiles:
    """The files of every project this gateway holds keys for, one :class:`Client` each."""

    def __init__(
        self,
        config: GatewayConfig,
        session: aiohttp.ClientSession,
        buffers: BufferPool | None = None,
        coordinators: Endpoints | None = None,  # shared with the gateway's other clients
    ) -> None:
        self.config = config
        self.session = session
        self.buffers = buffers
        self.coordinators = coordinators or Endpoints.failover(
            config.coordinators, config.coordinator_timeout
        )
        self._clients: dict[str, Client] = {}
        self._ready: set[str] = set()  # default buckets known to exist

    def client(self, c: Credential) -> Client:
        client = self._clients.get(c.api_key)
        if client is None:
            client = Client.for_project(
                self.coordinators,
                c.api_key,
                c.project_id,
                bytes.fromhex(c.encryption_secret),
                session=self.session,
                download_extra_pieces=self.config.download_extra_pieces,
                buffers=self.buffers,
            )
            self._clients[c.api_key] = client
        return client

    async def default_bucket(self, c: Credential) -> str:
        """The project's files bucket (:func:`files_bucket`), created on first use."""
        name = files_bucket(c)
        if name not in self._ready:
            try:
                await self.client(c).create_bucket(name)
            except Conflict as e:
                if e.code == "BucketAlreadyExists":
                    raise OpenAIError(
                        f"the project's files bucket {name} belongs to another project: name"
                        f" a bucket of yours with the {BUCKET_HEADER} header (or a 'bucket'"
                        " field before the file), and tell the network's operator",
                        status=409,
                        code="files_bucket_taken",
                    ) from e
                if e.code != "BucketAlreadyOwnedByYou":
                    raise
            self._ready.add(name)
        return name

    # ------------------------------------------------------------ routes

    async def handle(self, request: web.Request, c: Credential) -> web.StreamResponse:
        parts = request.path.rstrip("/").split("/")[3:]  # after /v1/files
        method = request.method
        if not parts and method == "POST":
            try:
                return await self._upload(request, c)
            except SkymeshError:
                raise
            except (ValueError, HttpProcessingError) as e:  # what aiohttp's multipart refuses
                raise bad_request(
                    f"the multipart body is malformed: {e}", code="invalid_multipart"
                ) from e
        if not parts and method == "GET":
            return await self._list(request, c)
        if len(parts) == 1 and method == "GET":
            return await self._retrieve(c, parts[0])
        if len(parts) == 1 and method == "DELETE":
            return await self._delete(c, parts[0])
        if len(parts) == 2 and parts[1] == "content" and method == "GET":
            return await self._content(request, c, parts[0])
        raise OpenAIError(
            f"{method} is not allowed on {request.path}", status=405, code="method_not_allowed"
        )

    async def _upload(self, request: web.Request, c: Credential) -> web.Response:
        if not request.content_type.startswith("multipart/form-data"):
            raise bad_request("upload a file as multipart/form-data with 'purpose' and 'file'")
        client = self.client(c)
        reader = await request.multipart()
        purpose = ""
        bucket = request.headers.get(BUCKET_HEADER, "")
        stored: tuple[str, str, ObjectInfo] | None = None
        parts = 0
        while (part := await reader.next()) is not None:
            parts += 1
            if parts > MAX_PARTS:
                raise bad_request(
                    f"the form has over {MAX_PARTS} parts: send purpose and file",
                    code="invalid_multipart",
                )
            if not isinstance(part, BodyPartReader):
                raise bad_request("nested multipart bodies are not accepted")
            if part.name == "purpose":
                purpose = await _field(part)
            elif part.name == "bucket":
                bucket = bucket or await _field(part)
            elif part.name == "file" and stored is None:
                if purpose and purpose not in PURPOSES:
                    raise _bad_purpose(purpose)
                bucket = bucket or await self.default_bucket(c)
                key = f"{UPLOAD_PREFIX}{secrets.token_hex(8)}/{_filename(part.filename)}"
                obj = await client.put_object(
                    bucket, key, _capped(part), meta=ObjectMeta(content_type=JSONL)
                )
                stored = (bucket, key, obj.info)
            else:
                await part.release()
        if stored is None:
            raise bad_request("the form has no 'file' part", param="file")
        bucket, key, info = stored
        if purpose not in PURPOSES:  # sent after the file: undo the upload
            await client.delete_object(bucket, key)
            raise _bad_purpose(purpose)
        return web.json_response(file_object(bucket, key, info.size, info.created_at))

    async def _list(self, request: web.Request, c: Credential) -> web.Response:
        q = request.query
        bucket = q.get("bucket") or await self.default_bucket(c)
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            raise bad_request("'limit' must be 1..1000", param="limit")
        purpose = q.get("purpose", "")
        prefix = {"batch": UPLOAD_PREFIX, "batch_output": OUTPUT_PREFIX}.get(purpose, "openai-")
        after = parse_file_id(q["after"])[1] if q.get("after") else ""
        page = await self.client(c).list_objects(
            ListObjectsRequest(bucket=bucket, prefix=prefix, start_after=after, limit=limit)
        )
        data = [
            file_object(bucket, e.key, e.size, e.created_at)
            for e in page.entries
            if e.key.startswith((UPLOAD_PREFIX, OUTPUT_PREFIX))
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "has_more": page.truncated,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def _retrieve(self, c: Credential, fid: str) -> web.Response:
        bucket, key = parse_file_id(fid)
        try:
            obj = await self.client(c).head_object(bucket, key)
        except NotFound as e:
            raise not_found(e, fid) from e
        return web.json_response(file_object(bucket, key, obj.info.size, obj.info.created_at))

    async def _delete(self, c: Credential, fid: str) -> web.Response:
        bucket, key = parse_file_id(fid)
        client = self.client(c)
        try:
            await client.head_object(bucket, key)
        except NotFound as e:
            raise not_found(e, fid) from e
        await client.delete_object(bucket, key)
        return web.json_response({"id": fid, "object": "file", "deleted": True})

    async def _content(self, request: web.Request, c: Credential, fid: str) -> web.StreamResponse:
        bucket, key = parse_file_id(fid)
        try:
            handle = await self.client(c).open_object(bucket, key)
        except NotFound as e:
            raise not_found(e, fid) from e
        resp = web.StreamResponse(headers={"Content-Type": handle.meta.content_type})
        resp.content_length = handle.info.size
        chunks = handle.read()
        first = await anext(chunks, b"")  # a failure before any byte is still a clean error
        await resp.prepare(request)
        await resp.write(first)
        async for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
        return resp


def _bad_purpose(purpose: str) -> OpenAIError:
    return bad_request(f"purpose {purpose!r} is not supported here: use 'batch'", param="purpose")


def _filename(name: str | None) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    safe = _UNSAFE.sub("_", base).strip(" .")[:200]
    return safe or "upload.jsonl"


async def _field(part: BodyPartReader) -> str:
    """A form field's text, read up to ``MAX_FIELD`` bytes: a field is a word, not a file."""
    data = b""
    while chunk := await part.read_chunk(4096):
        data += chunk
        if len(data) > MAX_FIELD:
            raise OpenAIError(
                f"the form field {part.name!r} is over {MAX_FIELD} bytes",
                status=413,
                code="request_too_large",
                param=part.name,
            )
    return data.decode(part.get_charset("utf-8"), errors="replace").strip()


async def _capped(part: BodyPartReader) -> AsyncIterator[bytes]:
    total = 0
    while chunk := await part.read_chunk(256 * 1024):
        total += len(chunk)
        if total > MAX_FILE:
            raise OpenAIError(
                f"the file is over {MAX_FILE} bytes", status=413, code="request_too_large"
            )
        yield chunk
