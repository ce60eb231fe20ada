"""Compute adverts from heartbeats, and signed inference orders for gateways.

Adverts are soft state: each heartbeat of a ``--compute`` node replaces its
advert, and a node that stops beating drops out with its liveness. They are kept
in the database all the same (``compute_adverts``), written by whichever
coordinator a heartbeat reached and read through a copy reloaded when older than
``cache_ttl``: with several coordinators over one database, a node heartbeating
to one is routed to by all.

Who may serve compute (:func:`compute_refusal`, pure): a node advertising models
is listed, and so can be named in an inference, batch or read order, only while
it is online and admitted and not barred from placement (disqualified, exiting,
suspended), its operator holds **compute admission**, it is **vetted for
compute** (its storage audits record ``vetting_audits`` successes, the
coordinator's ``compute_vetting_audits``; 0: at once), and spot checks have not
excluded it (``overlay.compute_reputation``). Every order goes through
:meth:`ComputeBook.nodes`, so a gateway is never handed any other node.

| route | auth | request -> response |
|---|---|---|
| GET /v1/compute/nodes | project | ComputeNodeList (those that may serve compute) |
| POST /v1/compute/orders | project | InferenceOrderRequest -> InferenceOrders |
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec
import sqlalchemy as sa

from skymesh.coordinator.db.cache import RowCache
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import compute_adverts
from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.overlay.admission import OperatorRecord
from skymesh.coordinator.overlay.compute_reputation import ComputeReputationBook
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.registry import Registry
from skymesh.coordinator.overlay.reputation import Reputation
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
_HEX = frozenset("0123456789abcdef")


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
    """The latest usable compute advert of each node, by node id, from its heartbeats.

    As a mapping it is this coordinator's copy: its own heartbeats at once, other
    coordinators' once :meth:`refresh` reloads it (at most ``cache_ttl`` old)."""

    def __init__(
        self, db: Database, cache_ttl: float = 2.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.clock = clock
        self._cache = RowCache(db, compute_adverts, _decode_row, cache_ttl)
        self._rejected: dict[str, str] = {}

    def __getitem__(self, node_id: str) -> ComputeAdvert:
        return self._cache.rows[node_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cache.rows)

    def __len__(self) -> int:
        return len(self._cache.rows)

    async def refresh(self) -> None:
        """Reload the copy from the database when it is older than ``cache_ttl``."""
        await self._cache.refresh()

    async def observe(self, node_id: str, beat: Heartbeat) -> None:
        """A verified heartbeat arrived (the registry's ``on_heartbeat``)."""
        advert = beat.compute
        problem = None if advert is None else _valid(advert)
        if problem is not None:
            if self._rejected.get(node_id) != problem:  # once per new fault, not per beat
                log.warning("ignoring the compute advert of node %s: %s", node_id, problem)
            self._rejected[node_id] = problem
        else:
            self._rejected.pop(node_id, None)
        if advert is None or problem is not None:
            if node_id in self._cache.rows:  # (the copy holds every row, from any replica)
                await self.db.write(
                    lambda conn: conn.execute(_DELETE_ADVERT, {"b_node_id": node_id})
                )
                self._cache.rows.pop(node_id, None)
            return
        params = {
            "b_node_id": node_id,
            "advert": _encoder.encode(advert),
            "updated_at": self.clock(),
        }

        def txn(conn: sa.Connection) -> None:
            if conn.execute(_UPDATE_ADVERT, params).rowcount == 0:
                conn.execute(
                    compute_adverts.insert().values(
                        node_id=node_id, advert=params["advert"], updated_at=params["updated_at"]
                    )
                )

        await self.db.write(txn)
        self._cache.put(node_id, advert)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ComputeAdvert)
# (an UPDATE's bind names must differ from its columns')
_UPDATE_ADVERT = (
    compute_adverts.update()
    .where(compute_adverts.c.node_id == sa.bindparam("b_node_id"))
    .values(advert=sa.bindparam("advert"), updated_at=sa.bindparam("updated_at"))
)
_DELETE_ADVERT = compute_adverts.delete().where(
    compute_adverts.c.node_id == sa.bindparam("b_node_id")
)


def _decode_row(row: Any) -> ComputeAdvert:
    return _decoder.decode(row.advert)


def compute_refusal(
    node: NodeRecord,
    operator: OperatorRecord | None,
    rep: Reputation | None,
    vetting_audits: int,
    excluded: bool,
) -> str | None:
    """Why an admitted, online, unbarred node may still not serve compute, or None (pure).

    ``operator``: the node's operator row; ``rep``: its audit reputation (None: never
    audited); ``vetting_audits``: successful audits that vet a node for compute;
    ``excluded``: spot checks excluded it.
    """
    if operator is None or not operator.compute:
        return f"operator {node.operator!r} holds no compute admission"
    passed = 0 if rep is None else rep.audits_success
    if passed < vetting_audits:
        return f"not vetted for compute: {passed} of {vetting_audits} successful audits"
    if excluded:
        return "excluded from compute by spot checks of its answers"
    return None


class ComputeBook:
    """The compute nodes a project may use, and the orders that let gateways use them.

    ``standing`` is the compute reputation from spot checks; ``vetting_audits`` the
    successful audits a node needs before it serves compute (0: none).
    """

    def __init__(
        self,
        registry: Registry,
        adverts: ComputeAdverts,
        identity: Identity,
        standing: ComputeReputationBook,
        *,
        vetting_audits: int,
        order_ttl: float = ORDER_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.adverts = adverts
        self.identity = identity
        self.standing = standing
        self.vetting_audits = vetting_audits
        self.order_ttl = order_ttl
        self.clock = clock
        self.orders_issued = 0

    async def nodes(self) -> ComputeNodeList:
        """The nodes that may serve compute now (see the module docstring)."""
        await self.adverts.refresh()  # adverts other coordinators received
        known = await self.registry.lookup(list(self.adverts))
        barred, _unvetted = await self.registry.placement_filters()  # reputation refreshed
        excluded = await self.standing.excluded()
        operators = self.registry.operators.operators
        reputation = self.registry.reputation
        now = self.clock()
        out = [
            ComputeNode(
                node_id=n.node_id,
                address=n.address,
                region=n.region,
                advert=advert,
                operator=n.operator,
            )
            for node_id, advert in sorted(self.adverts.items())
            if (n := known.get(node_id)) is not None
            and self.registry.is_online(n, now)
            and node_id not in barred
            and compute_refusal(
                n,
                operators.get(n.operator),
                reputation.cached(node_id),
                self.vetting_audits,
                node_id in excluded,
            )
            is None
        ]
        return ComputeNodeList(nodes=out)

    async def orders(self, project_id: str, req: InferenceOrderRequest) -> InferenceOrders:
        if not 1 <= len(req.node_ids) <= MAX_ORDER_NODES:
            raise BadRequest(f"ask orders for 1 to {MAX_ORDER_NODES} nodes")
        if not 1 <= req.max_tokens <= MAX_TOKENS:
            raise BadRequest(f"max_tokens must be 1..{MAX_TOKENS}")
        digest = req.request_sha256
        if digest and (len(digest) != 64 or not _HEX.issuperset(digest)):
            raise BadRequest("request_sha256 must be 64 lower-case hex digits, or empty")
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
                request_sha256=digest,
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
