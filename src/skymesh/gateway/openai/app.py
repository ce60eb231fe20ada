"""The OpenAI-compatible API on the gateway: ``/v1/models``, ``/v1/embeddings``, ``/v1/chat/completions``.

Mounted on the S3 server as a middleware that claims a request before the S3
router sees it when the path is one of the OpenAI paths and the request either
carries ``Authorization: Bearer ...`` (S3 never sends it: SigV4 uses
``AWS4-HMAC-SHA256``) or carries no S3 signature and names no virtual-hosted
bucket. Path-style S3 cannot collide: bucket names have 3 to 63 characters, so
no bucket is called ``v1``. A virtual-hosted request for the key ``v1/models``
goes to S3 unless it carries a bearer token.

Auth: the bearer token is an inference API key of a project (:mod:`.keys`: made
at the coordinator, revocable, checked there and trusted for a few seconds);
requests run as that project.

Each request is routed (:mod:`skymesh.compute.routing`) over the coordinator's
list of compute nodes; the gateway asks the coordinator for signed inference
orders for the best few and tries them in turn. A node that fails before the
first token is retried on the next; a stream that breaks after it ends with an
SSE error event, never a silent truncation. What each order served is reported
to the coordinator for metering in the background (:mod:`.usage`), and a request
that names no routing weights gets its project's. A sample of deterministic
requests is run again on another operator's node after the answer and the two
compared (:mod:`.spotcheck`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from skymesh.client.buffers import BufferPool
from skymesh.compute.catalog import KNOWN
from skymesh.compute.errors import ModelNotFound
from skymesh.compute.routing import Candidate, rank
from skymesh.config import Credential, GatewayConfig
from skymesh.errors import SkymeshError
from skymesh.failover import Endpoints
from skymesh.gateway.metrics import GatewayMetrics
from skymesh.gateway.openai.batches import BatchAPI
from skymesh.gateway.openai.directory import ComputeDirectory, order_of
from skymesh.gateway.openai.errors import OpenAIError, error_response, from_error
from skymesh.gateway.openai.files import ProjectFiles
from skymesh.gateway.openai.keys import BearerKeys
from skymesh.gateway.openai.schema import (
    DEFAULT_MAX_TOKENS,
    MAX_BODY,
    ChatParams,
    Routing,
    decode,
    parse_chat,
    parse_embeddings,
    read_body,
)
from skymesh.gateway.openai.spotcheck import SpotChecker
from skymesh.gateway.openai.stored import StoredInputs
from skymesh.gateway.openai.usage import UsageReporter, UsageTally
from skymesh.rpc import RpcClient, error_from_body
from skymesh.wire.base import ErrorBody
from skymesh.wire.inference import (
    ChatEvent,
    ChatRequest,
    ComputeNode,
    EmbedRequest,
    EmbedResponse,
)
from skymesh.wire.signing import ORDER_HEADER, Signed, encode_header

log = logging.getLogger(__name__)

PATHS = ("/v1/models", "/v1/embeddings", "/v1/chat/completions")
BATCH_PATHS = ("/v1/files", "/v1/batches")  # and everything under them
TRIES = 3  # nodes tried per request, best first
NODE_MAX_BODY = 1024 * 1024  # what a node's HTTP server reads (aiohttp's default)
EMBED_ORDER_TOKENS = 2048 * 256  # what one embeddings request may feed a node
NODE_HEADER = "X-Skymesh-Node"
REGION_HEADER = "X-Skymesh-Region"
_json = msgspec.json.Encoder()


class _NodeFailed(Exception):
    """This node could not serve the request; the next one may."""

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy  # it answered 429: healthy, only full


class OpenAIGateway:
    def __init__(
        self,
        config: GatewayConfig,
        credentials: Mapping[str, Credential],
        session: aiohttp.ClientSession,
        buffers: BufferPool | None = None,  # the gateway's upload budget, shared with S3
        coordinators: Endpoints | None = None,  # the S3 side's, to share what it learns
        projects: Mapping[str, Credential] | None = None,  # project id -> acting credential
    ) -> None:
        self.coordinators = coordinators or Endpoints.failover(
            config.coordinators, config.coordinator_timeout
        )
        self.config = config
        self.credentials = credentials  # access key id -> credential (live: keys get added)
        self.session = session
        # who calls: inference API keys
        self.keys = BearerKeys(config, credentials, self._rpc, projects=projects)
        self.directory = ComputeDirectory(session, routes=config.node_routes)
        self.files = ProjectFiles(
            config, session, buffers, self.coordinators
        )  # /v1/files: batch inputs and outputs
        self.batches = BatchAPI(self.files, self.directory, session)
        self.stored = StoredInputs(self.files, self.directory, session)  # skymesh.input_object
        self._rpcs: dict[str, RpcClient] = {}
        self.usage = UsageReporter()  # metering: reports each served order to the coordinator
        # runs a sample of answered requests again on another operator's node, compares
        self.spot = SpotChecker(config, self.directory, self._embed_on, self._chat_pieces_on)
        self.requests = 0
        self.errors = 0
        self.failovers = 0
        self.metrics: GatewayMetrics | None = None  # requests, tokens, first tokens when set

    # ------------------------------------------------------------ mounting

    def install(self, app: web.Application) -> None:
        """Claim OpenAI requests ahead of the S3 router (see the module docstring)."""

        @web.middleware
        async def openai_first(request: web.Request, handler: Any) -> web.StreamResponse:
            if self.claims(request):
                return await self.dispatch(request)
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.append(openai_first)

    def claims(self, request: web.Request) -> bool:
        path = request.path
        if path not in PATHS and not path.startswith(("/v1/models/", *BATCH_PATHS)):
            return False
        auth = request.headers.get("Authorization", "")
        if auth:
            return auth.startswith("Bearer ")
        if any(k.lower() == "x-amz-signature" for k in request.query):
            return False
        host = request.host.rsplit(":", 1)[0].lower()
        return not any(host.endswith("." + s.lower()) for s in self.config.virtual_host_suffixes)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        resp = await self._dispatch(request)
        if self.metrics is not None:
            self.metrics.openai_request(_endpoint(request.path), resp.status)
        return resp

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            credential = await self.keys.authenticate(request)
            rpc = self._rpc(credential)
            path, method = request.path, request.method
            if path == "/v1/models" and method == "GET":
                return await self._list_models(rpc)
            if path.startswith("/v1/models/") and method == "GET":
                return await self._get_model(rpc, path[len("/v1/models/") :])
            if path == "/v1/embeddings" and method == "POST":
                return await self._embeddings(request, rpc, credential)
            if path == "/v1/chat/completions" and method == "POST":
                return await self._chat(request, rpc)
            if path.startswith(BATCH_PATHS[0]):
                return await self.files.handle(request, credential)
            if path.startswith(BATCH_PATHS[1]):
                return await self.batches.handle(request, credential, rpc)
            raise OpenAIError(
                f"{method} is not allowed on {path}", status=405, code="method_not_allowed"
            )
        except OpenAIError as e:
            self.errors += 1
            return error_response(e)
        except SkymeshError as e:
            self.errors += 1
            if e.status >= 500:
                log.warning("%s %s failed: %s", request.method, request.path, e)
            return error_response(from_error(e))

    def _rpc(self, c: Credential) -> RpcClient:
        rpc = self._rpcs.get(c.api_key)
        if rpc is None:
            rpc = RpcClient(
                self.coordinators, self.session, {"Authorization": f"Bearer {c.api_key}"}
            )
            self._rpcs[c.api_key] = rpc
        return rpc

    async def _body(self, request: web.Request) -> dict[str, Any]:
        return decode(await read_body(request, MAX_BODY))

    # ------------------------------------------------------------ models

    def _model_entries(self, nodes: list[ComputeNode]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for n in nodes:
            for m in n.advert.models:
                entry = out.setdefault(
                    m.name,
                    {
                        "id": m.name,
                        "object": "model",
                        "created": 0,
                        "owned_by": KNOWN[m.name].owned_by if m.name in KNOWN else "skymesh",
                        "kind": m.kind,
                        "context_length": m.context_length,
                        "dimensions": m.dimensions or None,
                        "regions": [],
                        "nodes": 0,
                        "pricing": {"input": m.price_in, "output": m.price_out, "unit": "USD/1M"},
                    },
                )
                entry["nodes"] += 1
                if n.region not in entry["regions"]:
                    entry["regions"].append(n.region)
                pricing = entry["pricing"]
                pricing["input"] = min(pricing["input"], m.price_in)
                pricing["output"] = min(pricing["output"], m.price_out)
        for entry in out.values():
            entry["regions"].sort()
        return out

    async def _list_models(self, rpc: RpcClient) -> web.Response:
        entries = self._model_entries(await self.directory.nodes(rpc))
        return web.json_response({"object": "list", "data": sorted(entries.values(), key=_id)})

    async def _get_model(self, rpc: RpcClient, model: str) -> web.Response:
        entry = self._model_entries(await self.directory.nodes(rpc)).get(model)
        if entry is None:
            raise _model_not_found(model)
        return web.json_response(entry)

    # ------------------------------------------------------------ routing

    async def _plan(
        self, rpc: RpcClient, model: str, kind: str, routing: Routing, max_tokens: int, body: bytes
    ) -> list[tuple[Candidate, Signed]]:
        """The best few nodes for this request, each with an order signed for ``body``."""
        nodes = await self.directory.nodes(rpc)
        offers = [(n, m) for n in nodes for m in n.advert.models if m.name == model]
        if not offers:
            raise _model_not_found(model)
        if all(m.kind != kind for _, m in offers):
            other = "/v1/embeddings" if kind == "chat" else "/v1/chat/completions"
            raise OpenAIError(
                f"{model} is not a {kind} model: use it with {other}",
                param="model",
                code="model_not_supported",
            )
        serving = [n for n, m in offers if m.kind == kind]
        candidates = self.directory.candidates(serving)
        weights = routing.weights if routing.weights_named else await self.directory.weights(rpc)
        ranked = rank(candidates, model, weights, routing.regions or None)
        if not ranked and any(
            c.queue_full() and c.healthy and (not routing.regions or c.region in routing.regions)
            for c in candidates
        ):
            raise OpenAIError(
                f"every compute node that may serve {model} is busy: retry after a second",
                status=429,
                code="overloaded",
                retry_after=1,
            )
        if not ranked:
            where = f" in regions {', '.join(routing.regions)}" if routing.regions else ""
            raise OpenAIError(
                f"no healthy compute node{where} can take {model} now: retry shortly",
                status=503,
                code="no_healthy_backend",
                retry_after=1,
            )
        best = ranked[:TRIES]
        digest = hashlib.sha256(body).hexdigest()
        orders = await self.directory.orders(
            rpc, model, [c.node_id for c in best], max_tokens, digest
        )
        by_id = {c.node_id: c for c in best}
        return [(by_id[order_of(o).node_id], o) for o in orders]

    def _retry_or_raise(self, c: Candidate, status: int, raw: bytes) -> None:
        """Raise the node's error to the caller when it is the caller's fault; else fail over."""
        try:
            body = msgspec.json.decode(raw, type=ErrorBody)
        except (msgspec.DecodeError, msgspec.ValidationError):
            body = ErrorBody(code="", message=raw[:200].decode(errors="replace") or str(status))
        err = error_from_body(status, body)
        if status in (400, 413):  # the request's fault: every node would say the same
            raise from_error(err)
        if status != 429:  # a busy node is healthy, just full
            self.directory.failed(c.node_id)
        log.info("compute node %s failed (%s %s); trying the next", c.node_id, status, body.code)
        raise _NodeFailed(body.message, busy=status == 429)

    # ------------------------------------------------------------ embeddings

    async def _embeddings(
        self, request: web.Request, rpc: RpcClient, credential: Credential
    ) -> web.Response:
        p = parse_embeddings(await self._body(request))
        if p.input_object:  # inputs in a stored object: served inside its residency
            return await self.stored.embeddings(p, credential, rpc)
        body = _node_body(EmbedRequest(model=p.model, input=p.inputs))
        fails: list[_NodeFailed] = []
        plan = await self._plan(rpc, p.model, "embedding", p.routing, EMBED_ORDER_TOKENS, body)
        for c, order in plan:
            try:
                result = await self._embed_on(c, order, body)
            except _NodeFailed as e:
                self.failovers += 1
                fails.append(e)
                continue
            self.usage.report(rpc, order, result.prompt_tokens, 0)
            if self.metrics is not None:
                self.metrics.tokens(p.model, result.prompt_tokens, 0)
            if p.dimensions is not None and p.dimensions != result.dimensions:
                raise OpenAIError(
                    f"{p.model} makes {result.dimensions}-dimensional vectors; omit 'dimensions'"
                    f" or set it to {result.dimensions}",
                    param="dimensions",
                    code="invalid_value",
                )
            if self.spot.sample():  # after the answer, in the background
                self.spot.embeddings(rpc, p.model, p.routing.regions, c, order, body, result)
            data = []
            for i, raw in enumerate(result.embeddings):
                vector: Any = (
                    base64.b64encode(raw).decode()
                    if p.encoding_format == "base64"
                    else list(memoryview(raw).cast("f"))
                )
                data.append({"object": "embedding", "index": i, "embedding": vector})
            resp = web.json_response(
                {
                    "object": "list",
                    "data": data,
                    "model": p.model,
                    "usage": {
                        "prompt_tokens": result.prompt_tokens,
                        "total_tokens": result.prompt_tokens,
                    },
                }
            )
            _tag(resp, c)
            return resp
        raise _all_failed(p.model, fails)

    async def _embed_on(self, c: Candidate, order: Signed, body: bytes) -> EmbedResponse:
        try:
            async with self.session.post(
                f"{c.address}/v1/infer/embeddings",
                data=body,
                headers={ORDER_HEADER: encode_header(order), "Content-Type": "application/json"},
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    self._retry_or_raise(c, resp.status, raw)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            self.directory.failed(c.node_id)
            raise _NodeFailed(f"node {c.node_id} unreachable: {e}") from e
        try:
            result = msgspec.json.decode(raw, type=EmbedResponse)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            self.directory.failed(c.node_id)
            raise _NodeFailed(f"node {c.node_id} answered garbage: {e}") from e
        self.directory.succeeded(c.node_id)
        return result

    # ------------------------------------------------------------ chat

    async def _chat(self, request: web.Request, rpc: RpcClient) -> web.StreamResponse:
        p = parse_chat(await self._body(request))
        max_tokens = p.max_tokens or DEFAULT_MAX_TOKENS
        node_req = ChatRequest(
            model=p.model,
            messages=p.messages,
            max_tokens=max_tokens,
            temperature=p.temperature,
            top_p=p.top_p,
            stop=p.stop,
            seed=p.seed,
        )
        body = _node_body(node_req)
        began = time.perf_counter()
        # only greedy answers are deterministic, so only they can be compared
        check = p.temperature == 0 and self.spot.sample()
        fails: list[_NodeFailed] = []
        for c, order in await self._plan(rpc, p.model, "chat", p.routing, max_tokens, body):
            tally = UsageTally(keep=self.spot.chat_tokens if check else 0)
            try:
                events = tally.watch(await self._open_chat(c, order, body))
                first = await anext(events)
                if self.metrics is not None:
                    self.metrics.first_token(p.model, time.perf_counter() - began)
            except _NodeFailed as e:
                self.failovers += 1
                fails.append(e)
                continue
            except StopAsyncIteration:
                self.failovers += 1
                self.directory.failed(c.node_id)
                fails.append(_NodeFailed(f"node {c.node_id} closed the stream before any token"))
                continue
            try:
                if p.stream:
                    return await self._stream(request, p, c, first, events)
                return await self._collect(p, c, first, events)
            except _NodeFailed as e:  # from _collect: nothing sent yet, the next node may
                self.failovers += 1
                fails.append(e)
                continue
            finally:
                await events.aclose()  # hang up on the node, which then stops generating
                self.usage.report(
                    rpc,
                    order,
                    tally.prompt_tokens,
                    tally.completion_tokens,
                    complete=tally.complete,
                )
                if self.metrics is not None:
                    self.metrics.tokens(p.model, tally.prompt_tokens, tally.completion_tokens)
                if check and tally.complete:  # the answer is out: compare in the background
                    self.spot.chat(
                        rpc,
                        p.model,
                        p.routing.regions,
                        c,
                        order,
                        body,
                        tally.pieces,
                        tally.finish_reason,
                    )
        raise _all_failed(p.model, fails)

    async def _open_chat(
        self, c: Candidate, order: Signed, body: bytes
    ) -> AsyncGenerator[ChatEvent, None]:
        """The node's event stream; fails with _NodeFailed before the first event."""
        try:
            resp = await self.session.post(
                f"{c.address}/v1/infer/chat",
                data=body,
                headers={ORDER_HEADER: encode_header(order), "Content-Type": "application/json"},
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            self.directory.failed(c.node_id)
            raise _NodeFailed(f"node {c.node_id} unreachable: {e}") from e
        if resp.status != 200:
            try:
                raw = await resp.read()
            finally:
                resp.release()
            self._retry_or_raise(c, resp.status, raw)

        async def events() -> AsyncGenerator[ChatEvent, None]:
            try:
                while True:
                    try:
                        line = await resp.content.readline()
                    except (aiohttp.ClientError, TimeoutError, OSError) as e:
                        self.directory.failed(c.node_id)
                        raise _NodeFailed(f"node {c.node_id} broke the stream: {e}") from e
                    if not line:
                        self.directory.failed(c.node_id)
                        raise _NodeFailed(f"node {c.node_id} ended the stream early")
                    try:
                        event = msgspec.json.decode(line, type=ChatEvent)
                    except (msgspec.DecodeError, msgspec.ValidationError) as e:
                        self.directory.failed(c.node_id)
                        raise _NodeFailed(f"node {c.node_id} sent a bad event: {e}") from e
                    yield event
                    if event.finish_reason is not None or event.error is not None:
                        self.directory.succeeded(c.node_id)
                        return
            finally:
                resp.release()

        return events()

    async def _chat_pieces_on(
        self, c: Candidate, order: Signed, body: bytes, keep: int
    ) -> tuple[list[str], str | None]:
        """A chat on node ``c``: its first ``keep`` text pieces, and its finish reason (None:
        cut off there, and the node told to stop)."""
        events = await self._open_chat(c, order, body)
        pieces: list[str] = []
        try:
            async for event in events:
                if event.error is not None:
                    raise _NodeFailed(event.error.message)
                if event.finish_reason is not None:
                    return pieces, event.finish_reason
                if event.delta:
                    pieces.append(event.delta)
                    if len(pieces) >= keep:
                        return pieces, None
        finally:
            await events.aclose()  # hang up: the node stops generating
        raise _NodeFailed(f"node {c.node_id} ended the stream early")

    async def _collect(
        self, p: ChatParams, c: Candidate, first: ChatEvent, events: AsyncIterator[ChatEvent]
    ) -> web.Response:
        text: list[str] = []
        event = first
        while True:
            if event.error is not None:
                raise _NodeFailed(event.error.message)
            text.append(event.delta)
            if event.finish_reason is not None:
                break
            event = await anext(events)
        resp = web.json_response(
            {
                "id": _completion_id(),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": p.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(text)},
                        "logprobs": None,
                        "finish_reason": event.finish_reason,
                    }
                ],
                "usage": _usage(event),
            }
        )
        _tag(resp, c)
        return resp

    async def _stream(
        self,
        request: web.Request,
        p: ChatParams,
        c: Candidate,
        first: ChatEvent,
        events: AsyncIterator[ChatEvent],
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        _tag(resp, c)
        await resp.prepare(request)
        cid, created = _completion_id(), int(time.time())

        def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": p.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if p.include_usage:
                out["usage"] = None
            return out

        async def send(obj: object) -> None:
            await resp.write(b"data: " + _json.encode(obj) + b"\n\n")

        await send(chunk({"role": "assistant", "content": ""}))
        event = first
        try:
            while True:
                if event.error is not None:
                    raise _NodeFailed(event.error.message)
                if event.delta:
                    await send(chunk({"content": event.delta}))
                if event.finish_reason is not None:
                    break
                event = await anext(events)
        except (_NodeFailed, StopAsyncIteration) as e:
            log.warning("chat stream from node %s broke: %s", c.node_id, e)
            err = OpenAIError(
                f"the compute node serving this stream failed midway ({e}); the reply is"
                " incomplete: retry the request",
                status=502,
                code="stream_interrupted",
            )
            await send(err.body())
            await resp.write_eof()
            return resp
        await send(chunk({}, event.finish_reason))
        if p.include_usage:
            final = chunk({})
            final["choices"] = []
            final["usage"] = _usage(event)
            await send(final)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def close(self) -> None:
        await self.spot.close()
        await self.usage.close()
        await self.directory.close()


def _endpoint(path: str) -> str:
    """A request's endpoint label: its path, less ids (``/v1/models/{model}``...)."""
    for prefix in (*PATHS, *BATCH_PATHS):
        if path == prefix:
            return prefix
    for prefix in ("/v1/models", *BATCH_PATHS):
        if path.startswith(prefix + "/"):
            return prefix + "/{id}"
    return "other"


def _node_body(req: object) -> bytes:
    body = _json.encode(req)
    if len(body) > NODE_MAX_BODY:
        raise OpenAIError(
            f"the request is {len(body)} bytes for the node, over its {NODE_MAX_BODY}:"
            " split the input over several requests",
            status=413,
            code="request_too_large",
        )
    return body


def _id(entry: dict[str, Any]) -> str:
    return str(entry["id"])


def _usage(event: ChatEvent) -> dict[str, int]:
    return {
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "total_tokens": event.prompt_tokens + event.completion_tokens,
    }


def _completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def _tag(resp: web.StreamResponse, c: Candidate) -> None:
    resp.headers[NODE_HEADER] = c.node_id
    resp.headers[REGION_HEADER] = c.region


def _model_not_found(model: str) -> OpenAIError:
    return from_error(
        ModelNotFound(
            f"the model {model!r} does not exist or no node serves it: see GET /v1/models"
        )
    )


def _all_failed(model: str, fails: list[_NodeFailed]) -> OpenAIError:
    if fails and all(f.busy for f in fails):
        return OpenAIError(
            f"every compute node serving {model} is busy: retry after a second",
            status=429,
            code="overloaded",
            retry_after=1,
        )
    last = str(fails[-1]) if fails else "no node answered"
    return OpenAIError(
        f"every compute node tried for {model} failed (last: {last}): retry shortly",
        status=503,
        code="no_healthy_backend",
        retry_after=1,
    )
