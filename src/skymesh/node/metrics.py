"""The node's Prometheus metrics, read at scrape time from the counters the node keeps.

Nothing here counts: the HTTP counters (``api.NodeCounters``), the piece store's
usage, the order verifier's accepted orders, the retain sweeper's removals, the
background loops and the compute pool are read as they are when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from skymesh import metrics
from skymesh.loops import DrivenLoop
from skymesh.node.api import NodeCounters
from skymesh.node.compute import NodeCompute
from skymesh.node.orders import OrderVerifier
from skymesh.node.retain import RetainSweeper
from skymesh.node.store import PieceStore


def node_registry(
    counters: NodeCounters,
    store: PieceStore,
    verifier: OrderVerifier,
    retainer: RetainSweeper,
    loops: Callable[[], Iterable[DrivenLoop]],
    compute: NodeCompute | None,
) -> CollectorRegistry:
    """A registry with every node metric (and the process's)."""
    reg = metrics.registry()
    reg.register(metrics.LoopCollector(loops))

    def collect() -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "skymesh_node_requests",
            "HTTP requests answered, by method, route and status (piece uploads are"
            " PUT /v1/pieces/{piece_id}, downloads GET; inference POST /v1/infer/...).",
            labels=["method", "route", "status"],
        )
        for key, n in sorted(counters.requests.items()):
            method, route, status = key.split(" ")
            requests.add_metric([method, route, status], n)
        yield requests
        yield metrics.labelled_counter(
            "skymesh_node_refusals",
            "Requests refused with an error, by error code.",
            "code",
            dict(counters.refusals),
        )
        yield metrics.counter(
            "skymesh_node_received_bytes",
            "Piece bytes received (uploads).",
            counters.bytes_received,
        )
        yield metrics.counter(
            "skymesh_node_sent_bytes", "Piece bytes sent (downloads).", counters.bytes_sent
        )
        yield metrics.counter(
            "skymesh_node_piece_uploads", "Pieces stored by uploads.", counters.pieces_stored
        )
        yield metrics.counter(
            "skymesh_node_piece_deletions", "Pieces deleted on order.", counters.pieces_deleted
        )
        yield metrics.counter(
            "skymesh_node_retain_removed_pieces",
            "Pieces removed because the coordinator's retain filter did not hold them.",
            retainer.removed_total,
        )
        yield metrics.labelled_counter(
            "skymesh_node_orders_accepted",
            "Signed orders accepted, by action (put, get, delete, audit); a get order"
            " shown again for the next range counts again.",
            "action",
            dict(verifier.accepted),
        )
        yield metrics.gauge("skymesh_node_pieces", "Pieces stored.", store.piece_count)
        yield metrics.gauge("skymesh_node_used_bytes", "Bytes of stored pieces.", store.used_bytes)
        yield metrics.gauge(
            "skymesh_node_free_bytes",
            "Bytes still free for pieces (capacity less used and reserved).",
            store.free_bytes,
        )
        yield metrics.gauge(
            "skymesh_node_capacity_bytes", "Bytes this node offers.", store.capacity_bytes
        )
        if compute is not None:
            yield from _compute(compute)

    reg.register(metrics.Collect(lambda: list(collect())))
    return reg


def _compute(compute: NodeCompute) -> Iterable[Metric]:
    pool = compute.pool
    requests = CounterMetricFamily(
        "skymesh_node_inference_requests",
        "Inference requests that held a worker slot (served) or were turned away with"
        " 429 because the queue was full (refused).",
        labels=["outcome"],
    )
    requests.add_metric(["served"], compute.requests_served())
    requests.add_metric(["refused"], pool.refused)
    yield requests
    tokens = CounterMetricFamily(
        "skymesh_node_inference_tokens",
        "Tokens of inference requests, by model and kind (prompt, completion).",
        labels=["model", "kind"],
    )
    for (model, kind), n in sorted(compute.tokens.items()):
        tokens.add_metric([model, kind], n)
    yield tokens
    queue = GaugeMetricFamily(
        "skymesh_node_inference_requests_in_progress",
        "Inference requests running or waiting for a slot.",
        labels=["state"],
    )
    queue.add_metric(["running"], pool.running)
    queue.add_metric(["waiting"], compute.requests_waiting())
    yield queue
