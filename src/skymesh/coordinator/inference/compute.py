"""Compute adverts from heartbeats, and signed inference orders for gateways.

Adverts are soft state: each heartbeat of a ``--compute`` node replaces its
advert, and a node that stops beating drops out with its liveness. So they live
in memory, not in the database; a restarted coordinator knows them again within
one heartbeat interval.

| route | auth | request -> response |
|---|---|---|
| GET /v1/compute/nodes | project | ComputeNodeList (online, not barred) |
| POST /v1/compute/orders | project | InferenceOrderRequest -> InferenceOrders |
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Iterator, Mapping

from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.overlay.registry import Registry
from skymesh.errors import BadRequest, NotFound
from skymesh.wire import routes
from skymesh.wire.identity import Identity
from skymesh.wire.inference import (
    ComputeAdvert,
    ComputeNode,
    ComputeNodeList,
    InferenceOrder,
    InferenceOrderRequest,
    InferenceOrders,
    ModelOffer,
)
from skymesh.wire.registry import Heartbeat
from skymesh.wire.signing import sign

log = logging.getLogger(__name__)

ORDER_TTL = 60.0  # seconds: an inference order is used at once or not at all
MAX_ORDER_NODES = 8
MAX_MODELS = 64
MAX_NAME = 128
MAX_TOKENS = 1_000_000


def _valid(advert: ComputeAdvert) -> str | None:
    """Why an advert is unusable, or None."""
    if len(advert.models) > MAX_MODELS:
        return f"more than {MAX_MODELS} models"
    for m in advert.models:
        if not m.name or len(m.name) > MAX_NAME or not m.name.isprintable():
            return "a model name is empty, too long or unprintable"
        if m.kind not in ("embedding", "chat"):
            return f"model {m.name} has unknown kind {m.kind!r}"
        prices = (m.price_in, m.price_out)
        if not all(math.isfinite(p) and p >= 0 for p in prices) or m.context_length < 1:
            return f"model {m.name} has a bad price or context length"
    numbers = (
        advert.latency_ms,
        advert.tokens_per_second,
        advert.pue,
        advert.grid_gco2_kwh,
        advert.watts,
    )
    if not all(math.isfinite(x) and x >= 0 for x in numbers):
        return "a load or energy figure is negative or not finite"
    if advert.concurrency < 1 or advert.queue_depth < 0 or advert.queue_limit < 0:
        return "bad concurrency or queue figures"
    return None


class ComputeAdverts(Mapping[str, ComputeAdvert]):
    """The latest usable compute advert of each node, by node id, from its heartbeats."""

    def __init__(self) -> None:
        self._adverts: dict[str, ComputeAdvert] = {}
        self._rejected: dict[str, str] = {}

    def __getitem__(self, node_id: str) -> ComputeAdvert:
        return self._adverts[node_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._adverts)

    def __len__(self) -> int:
        return len(self._adverts)

    def observe(self, node_id: str, beat: Heartbeat) -> None:
        """A verified heartbeat arrived (the registry's ``on_heartbeat``)."""
        advert = beat.compute
        if advert is None:
            self._adverts.pop(node_id, None)
            return
        problem = _valid(advert)
        if problem is not None:
            if self._rejected.get(node_id) != problem:  # once per new fault, not per beat
                log.warning("ignoring the compute advert of node %s: %s", node_id, problem)
            self._rejected[node_id] = problem
            self._adverts.pop(node_id, None)
            return
        self._rejected.pop(node_id, None)
        self._adverts[node_id] = advert


class ComputeBook:
    """The compute nodes a project may use, and the orders that let gateways use them."""

    def __init__(
        self,
        registry: Registry,
        adverts: ComputeAdverts,
        identity: Identity,
        *,
        order_ttl: float = ORDER_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.adverts = adverts
        self.identity = identity
        self.order_ttl = order_ttl
        self.clock = clock
        self.orders_issued = 0

    async def nodes(self) -> ComputeNodeList:
        """Online compute nodes that are not disqualified, exiting or suspended."""
        known = await self.registry.lookup(list(self.adverts))
        barred, _unvetted = await self.registry.placement_filters()
        now = self.clock()
        out = [
            ComputeNode(node_id=n.node_id, address=n.address, region=n.region, advert=advert)
            for node_id, advert in sorted(self.adverts.items())
            if (n := known.get(node_id)) is not None
            and self.registry.is_online(n, now)
            and node_id not in barred
        ]
        return ComputeNodeList(nodes=out)

    async def orders(self, project_id: str, req: InferenceOrderRequest) -> InferenceOrders:
        if not 1 <= len(req.node_ids) <= MAX_ORDER_NODES:
            raise BadRequest(f"ask orders for 1 to {MAX_ORDER_NODES} nodes")
        if not 1 <= req.max_tokens <= MAX_TOKENS:
            raise BadRequest(f"max_tokens must be 1..{MAX_TOKENS}")
        listed = {n.node_id: n for n in (await self.nodes()).nodes}
        now = self.clock()
        signed = []
        for node_id in req.node_ids:
            node = listed.get(node_id)
            offer = None if node is None else _offer(node, req.model)
            if node is None or offer is None:
                raise NotFound(
                    f"node {node_id} is not an online compute node serving {req.model!r}:"
                    " list /v1/compute/nodes again"
                )
            order = InferenceOrder(
                serial=secrets.token_hex(16),
                coordinator_id=self.identity.id,
                node_id=node_id,
                project_id=project_id,
                model=req.model,
                max_tokens=req.max_tokens,
                expires_at=now + self.order_ttl,
                issued_at=now,
                price_in=offer.price_in,  # priced as offered
                price_out=offer.price_out,
                region=node.region,
            )
            signed.append(sign(self.identity, order))
        self.orders_issued += len(signed)
        return InferenceOrders(orders=signed)


def _offer(node: ComputeNode, model: str) -> ModelOffer | None:
    return next((m for m in node.advert.models if m.name == model), None)


def add_compute_routes(table: RouteTable, book: ComputeBook) -> None:
    async def list_nodes(_call: Call, _req: None) -> ComputeNodeList:
        return await book.nodes()

    async def orders(call: Call, req: InferenceOrderRequest) -> InferenceOrders:
        return await book.orders(call.project_id, req)

    table.add(routes.COMPUTE_NODES, list_nodes)
    table.add(routes.INFERENCE_ORDERS, orders)
