"""The gateway's Prometheus metrics: S3 and OpenAI requests, and piece transfers to nodes.

S3 and OpenAI requests are counted where they are dispatched (``s3/app.py``,
``openai/app.py``). Piece transfers are seen on the gateway's HTTP session to the
nodes through an aiohttp :class:`~aiohttp.TraceConfig` (:meth:`GatewayMetrics.trace`),
so the client library, which makes them, knows nothing of metrics.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from prometheus_client import Counter, Histogram

from skymesh import metrics
from skymesh.client.buffers import BufferPool
from skymesh.wire.node import PIECE_PATH

_PIECES = PIECE_PATH.split("{", 1)[0]  # "/v1/pieces/"


class GatewayMetrics:
    """Every gateway metric, on the service's own registry."""

    def __init__(self, buffers: BufferPool | None = None) -> None:
        self.registry = reg = metrics.registry()
        self.s3_requests = Counter(
            "skymesh_gateway_s3_requests",
            "S3 requests answered, by operation and HTTP status.",
            ["operation", "status"],
            registry=reg,
        )
        self.s3_duration = Histogram(
            "skymesh_gateway_s3_request_duration_seconds",
            "Time from a request's arrival to its handler's return (a streamed body's"
            " last byte written), by operation.",
            ["operation"],
            buckets=metrics.LATENCY_BUCKETS,
            registry=reg,
        )
        self.s3_received = Counter(
            "skymesh_gateway_s3_received_bytes",
            "Request body bytes read from S3 clients, by operation.",
            ["operation"],
            registry=reg,
        )
        self.s3_sent = Counter(
            "skymesh_gateway_s3_sent_bytes",
            "Response body bytes sent to S3 clients, by operation.",
            ["operation"],
            registry=reg,
        )
        # each S3 request counts under labels found once (metrics.Children)
        self._requests = metrics.Children(self.s3_requests)
        self._durations = metrics.Children(self.s3_duration)
        self._received = metrics.Children(self.s3_received)
        self._sent = metrics.Children(self.s3_sent)
        self.openai_requests = Counter(
            "skymesh_gateway_openai_requests",
            "OpenAI API requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=reg,
        )
        self.openai_tokens = Counter(
            "skymesh_gateway_openai_tokens",
            "Tokens of served inference requests, by model and kind (prompt, completion).",
            ["model", "kind"],
            registry=reg,
        )
        self.openai_first_token = Histogram(
            "skymesh_gateway_openai_time_to_first_token_seconds",
            "Time from a chat request's arrival to the first event from its node, by model.",
            ["model"],
            buckets=metrics.LATENCY_BUCKETS,
            registry=reg,
        )
        self.piece_transfers = Counter(
            "skymesh_gateway_piece_transfers",
            "Piece uploads and downloads to nodes, by node address, direction and outcome"
            " (ok: a 2xx answer; error: any other answer or no answer).",
            ["node", "direction", "outcome"],
            registry=reg,
        )
        self.piece_duration = Histogram(
            "skymesh_gateway_piece_transfer_duration_seconds",
            "Time from sending a piece request to the node's answer's headers (an upload's"
            " body is sent by then, a download's not yet), by node and direction.",
            ["node", "direction"],
            buckets=metrics.LATENCY_BUCKETS,
            registry=reg,
        )
        self.piece_bytes = Counter(
            "skymesh_gateway_piece_transfer_bytes",
            "Piece bytes sent to (upload) or announced by (download) nodes, by node and direction.",
            ["node", "direction"],
            registry=reg,
        )
        if buffers is not None:
            pool = buffers
            reg.register(
                metrics.Collect(
                    lambda: [
                        metrics.counter(
                            "skymesh_gateway_buffer_refusals",
                            "Uploads refused with 503 SlowDown: no buffer memory in time.",
                            pool.refused,
                        ),
                        metrics.gauge(
                            "skymesh_gateway_buffer_peak_bytes",
                            "The most upload buffer bytes ever lent at once.",
                            pool.peak_lent,
                        ),
                    ]
                )
            )

    # ------------------------------------------------------------ S3 and OpenAI

    def s3_request(
        self, operation: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        self._requests(operation, str(status)).inc()
        self._durations(operation).observe(seconds)
        if received:
            self._received(operation).inc(received)
        if sent:
            self._sent(operation).inc(sent)

    def openai_request(self, endpoint: str, status: int) -> None:
        self.openai_requests.labels(endpoint, str(status)).inc()

    def tokens(self, model: str, prompt: int, completion: int) -> None:
        if prompt:
            self.openai_tokens.labels(model, "prompt").inc(prompt)
        if completion:
            self.openai_tokens.labels(model, "completion").inc(completion)

    def first_token(self, model: str, seconds: float) -> None:
        self.openai_first_token.labels(model).observe(seconds)

    # ------------------------------------------------------------ piece transfers

    def trace(self) -> aiohttp.TraceConfig:
        """A trace for the session to nodes: times and counts the piece PUTs and GETs."""
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._started)
        config.on_request_end.append(self._ended)
        config.on_request_exception.append(self._failed)
        return config

    async def _started(
        self, _session: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        ctx.piece_direction = _direction(params.method, params.url.path)
        ctx.piece_started = time.perf_counter()

    async def _ended(
        self, _session: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        direction = getattr(ctx, "piece_direction", None)
        if direction is None:
            return
        node = _node(params.url)
        ok = 200 <= params.response.status < 300
        self.piece_transfers.labels(node, direction, "ok" if ok else "error").inc()
        self.piece_duration.labels(node, direction).observe(time.perf_counter() - ctx.piece_started)
        if ok:
            length = (
                params.headers.get("Content-Length")
                if direction == "upload"
                else params.response.headers.get("Content-Length")
            )
            if length is not None and length.isdigit():
                self.piece_bytes.labels(node, direction).inc(int(length))

    async def _failed(
        self, _session: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        direction = getattr(ctx, "piece_direction", None)
        if direction is not None:
            self.piece_transfers.labels(_node(params.url), direction, "error").inc()


def _direction(method: str, path: str) -> str | None:
    """ "upload" or "download" for a piece's bytes going to or from a node; else None
    (hashes, audits, deletes and every other request on the session)."""
    if not path.startswith(_PIECES) or "/" in path[len(_PIECES) :]:
        return None
    return {"PUT": "upload", "GET": "download"}.get(method)


def _node(url: Any) -> str:
    """A node's label: the host and port it serves at (its address, as placements name it)."""
    return f"{url.host}:{url.port}"
