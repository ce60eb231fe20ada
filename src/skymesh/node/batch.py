"""Batch runs on a compute node: read the input through the client library, write the outputs back.

The gateway posts a coordinator-signed :class:`~skymesh.wire.batch.BatchOrder`
(``X-Skymesh-Order``) with the three data keys (:class:`BatchStart`). The node
checks the order (a trusted coordinator, this node, unexpired, serial unused),
answers 202 and runs the batch in the background:

- it reads the input object version through a client that holds the three
  data keys and nothing else (:class:`~skymesh.client.keys.GivenKeys`): pieces
  straight from the nodes that hold them, the coordinator reached only through
  the order's scoped routes, so the data stays inside the bucket's residency;
- each JSONL line runs on the local engine, one line per worker slot, so
  interactive requests interleave with a long batch;
- successes stream into the output upload (one part), failures (a malformed
  line, a wrong model or URL, an input the model refuses) into the error upload,
  completed only when there is one. A bad line never fails the batch;
- when the run ends (completed, cancelled or failed midway) the node reports the
  tokens of the lines that ran to the coordinator itself, signed with its own
  key (:class:`~skymesh.wire.batch.BatchUsage`), before the gateway can see the
  run finished. The node is the party paid for them; the gateway never relays
  the counts, so it can neither inflate nor repeat them.

| route | auth | answer |
|---|---|---|
| POST /v1/batch/run | batch order (serial spent) | 202 BatchProgress |
| GET /v1/batch/{id} | batch order of that batch | BatchProgress |
| POST /v1/batch/{id}/cancel | batch order of that batch | BatchProgress |
| POST /v1/infer/embeddings-object | read order (serial spent) | ObjectEmbedRequest -> OpenAI embeddings body |

The last one is an interactive request over stored data (``skymesh.input_object``
on the gateway): the same order check, scoped client and embeddings path as a
batch line, answered in the request; metered by the node as a batch is.

Runs live in memory: a node restarted mid-batch has forgotten it (the gateway
then reports the batch failed).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from skymesh.client.client import Client
from skymesh.client.keys import GivenKeys
from skymesh.client.metainfo import MetainfoClient
from skymesh.compute import requests
from skymesh.compute.engines import ChatEngine, EmbeddingEngine
from skymesh.compute.errors import Overloaded
from skymesh.errors import BadRequest, Forbidden, NotFound, SkymeshError, Unavailable
from skymesh.node.compute import NodeCompute
from skymesh.rpc import NO_REDIRECTS, RpcClient, json_response, read_json
from skymesh.wire import routes
from skymesh.wire.batch import (
    BatchOrder,
    BatchProgress,
    BatchStart,
    BatchUsage,
    ObjectEmbedRequest,
)
from skymesh.wire.metainfo import CompletePart
from skymesh.wire.signing import ORDER_HEADER, decode_header, encode_header, open_signed, sign

log = logging.getLogger(__name__)

MAX_LINE = 1024 * 1024  # bytes of one input line
MAX_RUNS = 1000  # runs remembered, finished ones included
MAX_OBJECT = 4 * 1024 * 1024  # bytes of an interactive request's input object (the API's cap)
METER_TRIES = 4  # usage report attempts (1, 2, 4 s apart): each batch counts once anyway
_encoder = msgspec.json.Encoder()
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)


class LineError(Exception):
    """This line cannot run; it goes to the error file."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass
class BatchRun:
    order: BatchOrder
    header: str  # the order as shown to the coordinator's scoped routes
    keys: BatchStart
    status: str = "in_progress"
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors_written: bool = False
    message: str = ""
    cancelled: bool = False
    prompt_tokens: int = 0  # of the lines that ran, for metering
    completion_tokens: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def progress(self) -> BatchProgress:
        return BatchProgress(
            batch_id=self.order.batch_id,
            status=self.status,  # type: ignore[arg-type]
            total=self.total,
            completed=self.completed,
            failed=self.failed,
            errors_written=self.errors_written,
            message=self.message,
        )


class NodeBatches:
    """The batches this node runs, by batch id."""

    def __init__(self, compute: NodeCompute, clock: Callable[[], float] = time.time) -> None:
        self.compute = compute
        self.clock = clock
        self.runs: dict[str, BatchRun] = {}
        self._metering: set[asyncio.Task[None]] = set()  # reports of read orders, in flight

    def install(self, app: web.Application) -> None:
        app.router.add_post("/v1/batch/run", self._run)
        app.router.add_get("/v1/batch/{batch_id}", self._status)
        app.router.add_post("/v1/batch/{batch_id}/cancel", self._cancel)
        app.router.add_post("/v1/infer/embeddings-object", self._embed_object)

    def _order(self, request: web.Request) -> tuple[BatchOrder, str]:
        value = request.headers.get(ORDER_HEADER)
        if not value:
            raise Forbidden(f"a batch needs a signed batch order in {ORDER_HEADER}")
        signed = decode_header(value)
        order = open_signed(signed, BatchOrder, self.compute.verifier.trusted_keys)
        if order.node_id != self.compute.node_id:
            raise Forbidden("the batch order is for another node")
        if order.expires_at < self.clock():
            raise Forbidden("the batch order has expired")
        return order, encode_header(signed)

    def _known(self, request: web.Request) -> BatchRun:
        order, _ = self._order(request)
        run = self.runs.get(request.match_info["batch_id"])
        if run is None or run.order.serial != order.serial:
            raise NotFound(f"this node runs no batch {request.match_info['batch_id']!r}")
        return run

    async def _run(self, request: web.Request) -> web.Response:
        order, header = self._order(request)
        if order.purpose != "batch":
            raise Forbidden("a read order cannot start a batch")
        serials = self.compute.verifier.serials
        if serials.spent(order.serial):
            raise Forbidden("the batch order was used before")
        if order.model not in self.compute.specs:
            raise NotFound(f"this node does not serve {order.model!r}")
        keys = await read_json(request, BatchStart)
        if not serials.use(order.serial, "batch", order.expires_at):
            raise Forbidden("the batch order was used before")
        self._forget_finished()
        run = BatchRun(order=order, header=header, keys=keys)
        self.runs[order.batch_id] = run
        run.task = asyncio.create_task(self._execute(run), name=f"batch {order.batch_id}")
        return json_response(run.progress(), status=202)

    def _forget_finished(self) -> None:
        """Keep at most MAX_RUNS runs: the oldest finished ones go (their gateway has
        read the outcome, or will find the batch gone and report it failed)."""
        finished = [k for k, r in self.runs.items() if r.task is not None and r.task.done()]
        for batch_id in finished[: max(0, len(self.runs) - MAX_RUNS + 1)]:
            del self.runs[batch_id]

    async def _status(self, request: web.Request) -> web.Response:
        return json_response(self._known(request).progress())

    async def _cancel(self, request: web.Request) -> web.Response:
        run = self._known(request)
        run.cancelled = True
        return json_response(run.progress())

    def close(self) -> None:
        """Stop every run (the node is stopping); their gateways will see them gone."""
        for run in self.runs.values():
            if run.task is not None and not run.task.done():
                run.task.cancel()
        for task in self._metering:
            task.cancel()

    # ------------------------------------------------------------ one request over stored data

    async def _embed_object(self, request: web.Request) -> web.Response:
        """Embed the inputs of the one object version a read order opens, on this node.

        The object is read as a batch input is (scoped client, pieces from the nodes
        holding them), so the data leaves its residency no more than for a batch.
        """
        order, header = self._order(request)
        if order.purpose != "read" or order.endpoint != "/v1/embeddings":
            raise Forbidden("this route needs a read order for /v1/embeddings")
        serials = self.compute.verifier.serials
        if serials.spent(order.serial):
            raise Forbidden("the read order was used before")
        req = await read_json(request, ObjectEmbedRequest)
        if req.model != order.model:
            raise Forbidden(f"the read order is for {order.model!r}, not {req.model!r}")
        if order.model not in self.compute.specs:
            raise NotFound(f"this node does not serve {order.model!r}")
        if not serials.use(order.serial, "read", order.expires_at):
            raise Forbidden("the read order was used before")
        keys = {(order.bucket, order.input_key): req.input_data_key}
        async with aiohttp.ClientSession(timeout=_TIMEOUT, middlewares=NO_REDIRECTS) as session:
            client = _scoped_client(self.compute.config.coordinators, header, keys, session)
            handle = await client.open_object(order.bucket, order.input_key, order.input_version)
            if handle.info.size > MAX_OBJECT:
                raise BadRequest(f"the input object is over {MAX_OBJECT} bytes")
            raw = b"".join([chunk async for chunk in handle.read()])
        try:
            inputs = object_inputs(order.input_key, raw)
            body = {"model": order.model, "input": inputs, "encoding_format": req.encoding_format}
            result = await self._embeddings(order.model, body)
        except LineError as e:
            raise SkymeshError(str(e), code=e.code, status=e.status) from e
        task = asyncio.create_task(self._meter_read(order, header, result["usage"]))
        self._metering.add(task)
        task.add_done_callback(self._metering.discard)
        return json_response(result)

    async def _meter_read(self, order: BatchOrder, header: str, usage: dict[str, int]) -> None:
        async with aiohttp.ClientSession(timeout=_TIMEOUT, middlewares=NO_REDIRECTS) as session:
            rpc = self._order_rpc(header, session)
            await self._meter(order, rpc, 1, usage["prompt_tokens"], 0, True)

    # ------------------------------------------------------------ running

    async def _execute(self, run: BatchRun) -> None:
        o = run.order
        keys = {
            (o.bucket, o.input_key): run.keys.input_data_key,
            (o.bucket, o.output_key): run.keys.output_data_key,
            (o.bucket, o.error_key): run.keys.error_data_key,
        }
        failure = ""
        try:
            async with aiohttp.ClientSession(timeout=_TIMEOUT, middlewares=NO_REDIRECTS) as session:
                client = _scoped_client(self.compute.config.coordinators, run.header, keys, session)
                try:
                    await self._write(run, client)
                except Exception as e:
                    log.warning("batch %s failed: %s", o.batch_id, e)
                    failure = str(e) or type(e).__name__
                # metered before the status says the run ended, so whoever sees it
                # ended sees its usage too
                await self._meter(
                    o,
                    self._order_rpc(run.header, session),
                    run.completed,
                    run.prompt_tokens,
                    run.completion_tokens,
                    complete=not failure and not run.cancelled,
                )
        except asyncio.CancelledError:
            run.status, run.message = "failed", "the node stopped during the batch"
            raise
        except Exception as e:
            log.warning("batch %s failed: %s", o.batch_id, e)
            failure = failure or str(e) or type(e).__name__
        if failure:
            run.status, run.message = "failed", failure
            return
        run.status = "cancelled" if run.cancelled else "completed"
        log.info(
            "batch %s %s: %d done, %d failed", o.batch_id, run.status, run.completed, run.failed
        )

    def _order_rpc(self, header: str, session: aiohttp.ClientSession) -> RpcClient:
        """The coordinator, called with the batch order as the only credential."""
        return RpcClient(self.compute.config.coordinators, session, {ORDER_HEADER: header})

    async def _meter(
        self,
        order: BatchOrder,
        rpc: RpcClient,
        lines: int,
        prompt_tokens: int,
        completion_tokens: int,
        complete: bool,
    ) -> None:
        """Report the tokens of the lines that ran, signed by this node (retried: once is once)."""
        identity = self.compute.identity
        if lines == 0 or identity is None:
            return
        usage = BatchUsage(
            order_serial=order.serial,
            batch_id=order.batch_id,
            lines=lines,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            complete=complete,
        )
        signed = sign(identity, usage)
        for attempt in range(METER_TRIES):
            try:
                await rpc.send(routes.BATCH_USAGE, signed)
                return
            except Unavailable as e:
                if attempt + 1 == METER_TRIES:
                    log.warning("batch %s: usage not reported: %s", order.batch_id, e)
                    return
                await asyncio.sleep(2.0**attempt)
            except SkymeshError as e:  # refused: retrying would not help
                log.warning("batch %s: usage refused: %s", order.batch_id, e)
                return

    async def _write(self, run: BatchRun, client: Client) -> None:
        o = run.order
        handle = await client.open_object(o.bucket, o.input_key, o.input_version)
        errors: list[bytes] = []

        async def output() -> AsyncIterator[bytes]:
            async for raw in _lines(handle.read()):
                if run.cancelled:
                    return
                run.total += 1
                ok, line, usage = await self._line(o, raw, lambda: run.cancelled)
                if ok:
                    run.completed += 1
                    run.prompt_tokens += usage.get("prompt_tokens", 0)
                    run.completion_tokens += usage.get("completion_tokens", 0)
                    yield line
                else:
                    run.failed += 1
                    errors.append(line)

        part = await client.multipart.upload_part(
            o.bucket, o.output_key, o.output_upload, 1, output()
        )
        await client.multipart.complete(
            o.bucket, o.output_key, o.output_upload, [CompletePart(part_number=1, etag=part.etag)]
        )
        if not errors:
            await client.multipart.abort(o.bucket, o.error_key, o.error_upload)
            return

        async def error_lines() -> AsyncIterator[bytes]:
            for line in errors:
                yield line

        part = await client.multipart.upload_part(
            o.bucket, o.error_key, o.error_upload, 1, error_lines()
        )
        await client.multipart.complete(
            o.bucket, o.error_key, o.error_upload, [CompletePart(part_number=1, etag=part.etag)]
        )
        run.errors_written = True

    async def _line(
        self, o: BatchOrder, raw: bytes, cancelled: Callable[[], bool]
    ) -> tuple[bool, bytes, dict[str, int]]:
        """One input line -> (succeeded, the output or error line, newline-terminated, usage)."""
        custom_id: str | None = None
        request_id = secrets.token_hex(12)
        try:
            try:
                item = msgspec.json.decode(raw)
            except msgspec.DecodeError as e:
                raise LineError("invalid_json", f"the line is not valid JSON: {e}") from e
            if not isinstance(item, dict):
                raise LineError("invalid_json", "each line must be a JSON object")
            custom_id = item.get("custom_id") if isinstance(item.get("custom_id"), str) else None
            if custom_id is None:
                raise LineError("missing_custom_id", "each line needs a string 'custom_id'")
            if item.get("method", "POST") != "POST" or item.get("url") != o.endpoint:
                raise LineError(
                    "invalid_url", f"this batch runs 'POST {o.endpoint}'; the line asks otherwise"
                )
            body = item.get("body")
            if not isinstance(body, dict) or body.get("model") != o.model:
                raise LineError(
                    "model_mismatch", f"each line's body must name the batch's model {o.model!r}"
                )
            if o.endpoint == "/v1/embeddings":
                result = await self._embeddings(o.model, body)
            else:
                result = await self._chat(o, body, cancelled)
        except LineError as e:
            return False, _error_line(custom_id, request_id, e.status, e.code, str(e)), {}
        except SkymeshError as e:
            return False, _error_line(custom_id, request_id, e.status, e.code, e.message), {}
        out = {
            "id": "batch_req_" + secrets.token_hex(12),
            "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": request_id, "body": result},
            "error": None,
        }
        return True, _encoder.encode(out) + b"\n", result["usage"]

    async def _slot_run(self, fn: Callable[..., Any], *args: object) -> Any:
        """Run ``fn`` in a worker slot, waiting (not failing) while the queue is full."""
        pool = self.compute.pool
        while True:
            try:
                async with pool.slot():
                    return await pool.run(fn, *args)
            except Overloaded as e:
                await asyncio.sleep(min(e.retry_after or 1.0, 5.0))

    async def _embeddings(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """OpenAI's embeddings body for ``body`` (checked as the API checks it)."""
        r = requests.parse_embeddings(body)
        inputs, encoding = r.inputs, r.encoding_format
        engine = await self.compute.engine(model)
        if not isinstance(engine, EmbeddingEngine):
            raise LineError("model_not_supported", f"{model} is not an embedding model")
        started = time.perf_counter()
        vectors, counts = await self._slot_run(engine.embed, inputs)
        tokens = sum(counts)
        self.compute.pool.record_tokens(tokens, time.perf_counter() - started)
        data = []
        for i, row in enumerate(vectors):
            raw = row.astype("<f4").tobytes()
            vector: Any = (
                base64.b64encode(raw).decode()
                if encoding == "base64"
                else list(memoryview(raw).cast("f"))
            )
            data.append({"object": "embedding", "index": i, "embedding": vector})
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def _chat(
        self, o: BatchOrder, body: dict[str, Any], cancelled: Callable[[], bool]
    ) -> dict[str, Any]:
        r = requests.parse_chat(body)  # as the API checks it
        messages = [{"role": m.role, "content": m.content} for m in r.messages]
        max_tokens = r.max_tokens or requests.DEFAULT_MAX_TOKENS
        if not 1 <= max_tokens <= o.max_tokens:
            raise LineError("invalid_value", f"'max_tokens' must be 1..{o.max_tokens} in a batch")
        engine = await self.compute.engine(o.model)
        if not isinstance(engine, ChatEngine):
            raise LineError("model_not_supported", f"{o.model} is not a chat model")
        text: list[str] = []

        def work() -> Any:
            return engine.generate(
                messages,
                max_tokens=max_tokens,
                temperature=r.temperature,
                top_p=r.top_p,
                stop=r.stop,
                seed=r.seed,
                emit=text.append,
                cancelled=cancelled,
            )

        started = time.perf_counter()
        gen = await self._slot_run(work)
        self.compute.pool.record_tokens(gen.completion_tokens, time.perf_counter() - started)
        return {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": o.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(text)},
                    "logprobs": None,
                    "finish_reason": gen.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "total_tokens": gen.prompt_tokens + gen.completion_tokens,
            },
        }


def _scoped_client(
    coordinators: list[str],
    header: str,
    keys: dict[tuple[str, str], bytes],
    session: aiohttp.ClientSession,
) -> Client:
    """A client holding only ``keys``, reaching the coordinator through the order's scope."""
    bases = [url.rstrip("/") + routes.SCOPE_PREFIX for url in coordinators]
    rpc = RpcClient(bases, session, headers={ORDER_HEADER: header})
    return Client(MetainfoClient(rpc), GivenKeys(keys), session)


def object_inputs(key: str, raw: bytes) -> list[str]:
    """The embeddings inputs a stored object holds, by its key's suffix.

    ``.json``: a string or a list of strings (what ``input`` takes); ``.jsonl``: one
    JSON string per non-blank line; anything else: UTF-8 text, one input per
    non-blank line. The suffix decides, so a text line that looks like JSON stays text.
    """
    try:
        if key.endswith(".json"):
            value = msgspec.json.decode(raw)
        elif key.endswith(".jsonl"):
            value = [msgspec.json.decode(line) for line in raw.splitlines() if line.strip()]
        else:
            value = [line.strip() for line in raw.decode().splitlines() if line.strip()]
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise LineError("invalid_input_object", f"the input object cannot be read: {e}") from e
    inputs = [value] if isinstance(value, str) else value
    if (
        not isinstance(inputs, list)
        or not 1 <= len(inputs) <= requests.MAX_INPUTS
        or not all(isinstance(s, str) and s for s in inputs)
    ):
        raise LineError(
            "invalid_input_object",
            f"the input object must hold 1 to {requests.MAX_INPUTS} non-empty strings"
            " (.json: a string or a list of strings; .jsonl: a JSON string per line;"
            " other keys: UTF-8 text, an input per line)",
        )
    return inputs


def _error_line(custom_id: str | None, request_id: str, status: int, code: str, msg: str) -> bytes:
    out = {
        "id": "batch_req_" + secrets.token_hex(12),
        "custom_id": custom_id,
        "response": {
            "status_code": status,
            "request_id": request_id,
            "body": {"error": {"message": msg, "type": "invalid_request_error", "code": code}},
        },
        "error": {"code": code, "message": msg},
    }
    return _encoder.encode(out) + b"\n"


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Non-blank lines of a byte stream; a line over MAX_LINE fails the batch."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            line = bytes(buf[start:end]).strip()
            start = end + 1
            if line:
                yield line
        del buf[:start]
        if len(buf) > MAX_LINE:
            raise BadRequest(f"an input line is over {MAX_LINE} bytes")
    if buf.strip():
        yield bytes(buf).strip()
