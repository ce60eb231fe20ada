"""``/v1/batches``: OpenAI batches that run inside the residency of their input's bucket.

Create: the gateway opens the input object (reading only its first line, for
the model: OpenAI batches name one model), begins two multipart uploads next to
it (``openai-batches/<id>/output.jsonl`` and ``errors.jsonl``), ranks the compute
nodes serving the model as for any request, and asks the coordinator for a
batch order. The coordinator signs one only for a node inside the bucket's
residency (else the batch is ``failed`` with ``no_compute_in_residency``; it
never runs elsewhere). The gateway then hands that node the order and the three
data keys it unwrapped (``POST /v1/batch/run``): the node reads the input and
writes the outputs itself, through the client library, so the data moves only
between nodes inside the residency.

State: one JSON object per batch, ``openai-batch-state/<id>.json`` in the
project's files bucket (:class:`BatchState`, versioned). Kept in skymesh rather
than the coordinator's database because it is the project's own data (input
names, metadata, errors) that the coordinator needs no part of, it needs no
schema migration, and it survives a gateway restart like any object. The
gateway refreshes an unfinished batch from its node whenever it is read
(retrieve, list), so nothing runs in the background and a restarted gateway
picks up where it was.

| route | answer |
|---|---|
| POST /v1/batches | Batch (``input_file_id``, ``endpoint``, ``completion_window`` "24h", ``metadata``) |
| GET /v1/batches | list of Batch (``?limit=``, ``?after=``) |
| GET /v1/batches/{id} | Batch |
| POST /v1/batches/{id}/cancel | Batch |
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from skymesh.client.client import Client
from skymesh.client.objectmeta import ObjectMeta
from skymesh.compute.routing import rank
from skymesh.config import Credential
from skymesh.errors import NotFound, SkymeshError
from skymesh.gateway.openai.directory import ComputeDirectory
from skymesh.gateway.openai.errors import OpenAIError, bad_request
from skymesh.gateway.openai.files import JSONL, ProjectFiles, file_id, not_found, parse_file_id
from skymesh.gateway.openai.schema import decode, read_body
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.batch import BatchOrderGrant, BatchOrderRequest, BatchProgress, BatchStart
from skymesh.wire.metainfo import ListObjectsRequest, ObjectInfo, UploadInfo
from skymesh.wire.signing import ORDER_HEADER, encode_header

log = logging.getLogger(__name__)

ENDPOINTS = ("/v1/embeddings", "/v1/chat/completions")
KINDS = {"/v1/embeddings": "embedding", "/v1/chat/completions": "chat"}
WINDOW = 24 * 3600
STATE_PREFIX = "openai-batch-state/"
MAX_FIRST_LINE = 1024 * 1024
MAX_CREATE_BODY = 64 * 1024
# A state object is a few KiB (its errors list is short); one over this was not written
# by a gateway, and is refused rather than read into memory.
MAX_STATE = 1024 * 1024
LINE_MAX_TOKENS = 2048  # per chat line: the packaged chat model's context
TERMINAL = ("completed", "failed", "cancelled", "expired")


class Counts(msgspec.Struct, kw_only=True):
    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchState(msgspec.Struct, kw_only=True):
    """One batch as stored (version 1): the OpenAI fields, and where it runs."""

    version: int = 1
    id: str
    endpoint: str
    model: str
    input_file_id: str
    completion_window: str
    status: str
    created_at: int
    expires_at: int
    metadata: dict[str, str] | None = None
    in_progress_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    expired_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] = msgspec.field(default_factory=list)
    counts: Counts = msgspec.field(default_factory=Counts)
    bucket: str = ""
    residency: str = ""
    output_key: str = ""
    error_key: str = ""
    node_id: str = ""
    node_region: str = ""
    node_address: str = ""
    order: str = ""  # the signed batch order, as the X-Skymesh-Order header value

    def fail(self, code: str, message: str) -> None:
        self.status, self.failed_at = "failed", int(time.time())
        self.errors.append({"code": code, "message": message, "param": None, "line": None})

    def public(self) -> dict[str, Any]:
        """OpenAI's Batch object, plus a ``skymesh`` field: where it ran."""
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.in_progress_at,
            "expires_at": self.expires_at,
            "finalizing_at": None,
            "completed_at": self.completed_at,
            "failed_at": self.failed_at,
            "expired_at": self.expired_at,
            "cancelling_at": self.cancelling_at,
            "cancelled_at": self.cancelled_at,
            "request_counts": msgspec.structs.asdict(self.counts),
            "metadata": self.metadata,
            "skymesh": {
                "bucket": self.bucket,
                "residency": self.residency,
                "node_id": self.node_id or None,
                "region": self.node_region or None,
            },
        }


class BatchAPI:
    def __init__(
        self, files: ProjectFiles, directory: ComputeDirectory, session: aiohttp.ClientSession
    ) -> None:
        self.files = files
        self.directory = directory
        self.session = session

    async def handle(self, request: web.Request, c: Credential, rpc: RpcClient) -> web.Response:
        parts = request.path.rstrip("/").split("/")[3:]  # after /v1/batches
        method = request.method
        if not parts and method == "POST":
            return web.json_response((await self._create(request, c, rpc)).public())
        if not parts and method == "GET":
            return await self._list(request, c)
        if len(parts) == 1 and method == "GET":
            return web.json_response(
                (await self._refresh(c, await self._load(c, parts[0]))).public()
            )
        if len(parts) == 2 and parts[1] == "cancel" and method == "POST":
            return web.json_response((await self._cancel(c, parts[0])).public())
        raise OpenAIError(
            f"{method} is not allowed on {request.path}", status=405, code="method_not_allowed"
        )

    # ------------------------------------------------------------ state

    async def _save(self, c: Credential, state: BatchState) -> None:
        body = msgspec.json.encode(state)

        async def one() -> Any:
            yield body

        bucket = await self.files.default_bucket(c)
        await self.files.client(c).put_object(
            bucket, f"{STATE_PREFIX}{state.id}.json", one(), size=len(body)
        )

    async def _load(self, c: Credential, batch_id: str) -> BatchState:
        if not batch_id.startswith("batch_") or "/" in batch_id:
            raise _no_batch(batch_id)
        client = self.files.client(c)
        bucket = await self.files.default_bucket(c)
        try:
            handle = await client.open_object(bucket, f"{STATE_PREFIX}{batch_id}.json")
        except NotFound as e:
            raise _no_batch(batch_id) from e
        if handle.info.size > MAX_STATE:
            raise OpenAIError(
                f"the state object of batch {batch_id} is {handle.info.size} bytes, over the"
                f" {MAX_STATE} a batch's state may have: it was not written by a gateway",
                status=413,
                code="batch_state_too_large",
            )
        raw = b"".join([chunk async for chunk in handle.read(0, MAX_STATE)])
        try:
            return msgspec.json.decode(raw, type=BatchState)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise OpenAIError(
                f"the state object of batch {batch_id} is not one a gateway wrote: {e}",
                status=409,
                code="batch_state_invalid",
            ) from e

    # ------------------------------------------------------------ create

    async def _create(self, request: web.Request, c: Credential, rpc: RpcClient) -> BatchState:
        body = decode(await read_body(request, MAX_CREATE_BODY))
        input_file_id = body.get("input_file_id")
        if not isinstance(input_file_id, str) or not input_file_id:
            raise bad_request("'input_file_id' is required", "input_file_id")
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            raise bad_request(f"'endpoint' must be one of {', '.join(ENDPOINTS)}", "endpoint")
        if body.get("completion_window") != "24h":
            raise bad_request("'completion_window' must be '24h'", "completion_window")
        metadata = body.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or len(metadata) > 16
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            raise bad_request("'metadata' must be up to 16 string pairs", "metadata")
        bucket, key = parse_file_id(input_file_id)
        client = self.files.client(c)
        try:
            handle = await client.open_object(bucket, key)
        except NotFound as e:
            raise not_found(e, input_file_id) from e
        model = await _first_model(handle.read(0, MAX_FIRST_LINE))
        now = int(time.time())
        batch_id = "batch_" + secrets.token_hex(16)
        state = BatchState(
            id=batch_id,
            endpoint=endpoint,
            model=model,
            input_file_id=input_file_id,
            completion_window="24h",
            status="validating",
            created_at=now,
            expires_at=now + WINDOW,
            metadata=metadata,
            bucket=bucket,
            residency=(await client.get_bucket(bucket)).region,
            output_key=f"openai-batches/{batch_id}/output.jsonl",
            error_key=f"openai-batches/{batch_id}/errors.jsonl",
        )
        meta = ObjectMeta(content_type=JSONL)
        out = await client.multipart.create(bucket, state.output_key, meta)
        err = await client.multipart.create(bucket, state.error_key, meta)
        try:
            grant = await self._order(rpc, state, handle.info, out.upload_id, err.upload_id)
        except SkymeshError as e:
            if e.status < 500 and e.status != 404:
                raise
            code = "no_compute_in_residency" if e.code == "NoComputeInResidency" else "no_node"
            state.fail(code, e.message)
            await _abort(client, bucket, [(state.output_key, out), (state.error_key, err)])
            await self._save(c, state)
            return state
        state.node_id, state.node_region = grant.node_id, grant.region
        state.node_address, state.order = grant.address, encode_header(grant.order)
        start = BatchStart(
            input_data_key=client.data_key(handle.info),
            output_data_key=client.data_key(out),
            error_data_key=client.data_key(err),
        )
        problem = await self._start(state, start)
        if problem:
            state.fail("node_failed", problem)
            await _abort(client, bucket, [(state.output_key, out), (state.error_key, err)])
        else:
            state.status, state.in_progress_at = "in_progress", int(time.time())
        await self._save(c, state)
        return state

    async def _order(
        self, rpc: RpcClient, state: BatchState, info: ObjectInfo, out: str, err: str
    ) -> BatchOrderGrant:
        kind = KINDS[state.endpoint]
        nodes = await self.directory.nodes(rpc)
        serving = [
            n
            for n in nodes
            if any(o.name == state.model and o.kind == kind for o in n.advert.models)
        ]
        prefer = [cand.node_id for cand in rank(self.directory.candidates(serving), state.model)]
        req = BatchOrderRequest(
            batch_id=state.id,
            bucket=state.bucket,
            input_key=info.key,
            input_version=info.version_id,
            output_key=state.output_key,
            output_upload=out,
            error_key=state.error_key,
            error_upload=err,
            model=state.model,
            endpoint=state.endpoint,  # type: ignore[arg-type]
            max_tokens=LINE_MAX_TOKENS,
            prefer=prefer,
        )
        return await rpc.send(routes.BATCH_ORDERS, req)

    async def _start(self, state: BatchState, start: BatchStart) -> str:
        """Hand the batch to its node; answers why it failed ("" when it runs)."""
        try:
            async with self.session.post(
                f"{state.node_address}/v1/batch/run",
                data=msgspec.json.encode(start),
                headers={ORDER_HEADER: state.order, "Content-Type": "application/json"},
            ) as resp:
                if resp.status == 202:
                    return ""
                return f"node {state.node_id} refused the batch: {resp.status} {await resp.text()}"
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return f"node {state.node_id} unreachable: {e}"

    # ------------------------------------------------------------ progress

    async def _node(
        self, state: BatchState, suffix: str = "", method: str = "GET"
    ) -> BatchProgress | None:
        """The node's view of the batch; None when it cannot be reached now."""
        url = f"{state.node_address}/v1/batch/{state.id}{suffix}"
        try:
            async with self.session.request(
                method, url, headers={ORDER_HEADER: state.order}
            ) as resp:
                raw = await resp.read()
                if resp.status == 404:
                    return BatchProgress(
                        batch_id=state.id,
                        status="failed",
                        message=f"node {state.node_id} no longer runs this batch (restarted?)",
                    )
                if resp.status != 200:
                    return None
                return msgspec.json.decode(raw, type=BatchProgress)
        except (aiohttp.ClientError, TimeoutError, OSError, msgspec.DecodeError):
            return None

    async def _refresh(self, c: Credential, state: BatchState) -> BatchState:
        if state.status in TERMINAL or not state.node_address:
            return state
        progress = await self._node(state)
        now = int(time.time())
        if progress is None:
            if now > state.expires_at:
                state.status, state.expired_at = "expired", now
                await self._save(c, state)
            return state
        state.counts = Counts(
            total=progress.total, completed=progress.completed, failed=progress.failed
        )
        if progress.status == "in_progress":
            return state
        if progress.status == "failed":
            state.fail("batch_failed", progress.message)
        else:
            state.output_file_id = file_id(state.bucket, state.output_key)
            if progress.errors_written:
                state.error_file_id = file_id(state.bucket, state.error_key)
            if progress.status == "cancelled":
                state.status, state.cancelled_at = "cancelled", now
            else:
                state.status, state.completed_at = "completed", now
        await self._save(c, state)
        return state

    async def _cancel(self, c: Credential, batch_id: str) -> BatchState:
        state = await self._refresh(c, await self._load(c, batch_id))
        if state.status in TERMINAL:
            raise OpenAIError(
                f"batch {batch_id} is already {state.status}",
                status=409,
                code="batch_not_cancellable",
            )
        await self._node(state, "/cancel", "POST")
        state.status, state.cancelling_at = "cancelling", int(time.time())
        await self._save(c, state)
        return state

    async def _list(self, request: web.Request, c: Credential) -> web.Response:
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise bad_request("'limit' must be 1..100", "limit")
        after = request.query.get("after", "")
        bucket = await self.files.default_bucket(c)
        page = await self.files.client(c).list_objects(
            ListObjectsRequest(
                bucket=bucket,
                prefix=STATE_PREFIX,
                start_after=f"{STATE_PREFIX}{after}.json" if after else "",
                limit=limit,
            )
        )
        data = []
        for e in page.entries:
            batch_id = e.key[len(STATE_PREFIX) :].removesuffix(".json")
            data.append((await self._refresh(c, await self._load(c, batch_id))).public())
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "has_more": page.truncated,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )


async def _first_model(chunks: AsyncIterator[bytes]) -> str:
    """The ``model`` of the input's first line (a batch runs one model)."""
    buf = b""
    async with contextlib.aclosing(chunks):  # type: ignore[type-var]
        async for chunk in chunks:
            buf += chunk
            if b"\n" in buf:
                break
    line = buf.split(b"\n", 1)[0].strip()
    try:
        first = msgspec.json.decode(line)
        model = first["body"]["model"]
    except (msgspec.DecodeError, KeyError, TypeError) as e:
        raise bad_request(
            "the input's first line must be a request whose body names a 'model'",
            "input_file_id",
            code="invalid_input_file",
        ) from e
    if not isinstance(model, str) or not model:
        raise bad_request("the input's first line names no model", "input_file_id")
    return model


async def _abort(client: Client, bucket: str, uploads: list[tuple[str, UploadInfo]]) -> None:
    for key, up in uploads:
        try:
            await client.multipart.abort(bucket, key, up.upload_id)
        except SkymeshError as e:  # it expires on its own
            log.info("could not abort %s/%s: %s", bucket, key, e)


def _no_batch(batch_id: str) -> OpenAIError:
    return OpenAIError(f"no such batch: {batch_id!r}", status=404, code="batch_not_found")
