"""Batch orders: a batch runs only on a compute node inside its input bucket's residency.

The gateway asks for an order naming the input object version and the two
multipart uploads it opened for the output and error files. The coordinator
reads the bucket's location constraint, keeps only online compute nodes inside
it that serve the model (:func:`choose_batch_node`, pure), and signs a
:class:`~skymesh.wire.batch.BatchOrder` for the first of them in the gateway's
ranking. With none inside, it refuses (503 ``NoComputeInResidency``): it never
widens the residency to find one.

The same order is the node's whole authority at the coordinator: the scoped
routes ``/v1/compute/batch-scope/v1/...`` mirror the few project routes a read
and a multipart write need, and answer only for that object version and those
two uploads, as the order's project. So a node running a batch holds no API key
and can touch nothing else of the project.

The routes are ``BATCH_ORDERS``, ``READ_ORDERS``, ``BATCH_USAGE`` and ``BATCH_SCOPED``
in ``skymesh.wire.routes``.

Metering: the node that ran the batch reports what its lines consumed, once,
signed with its own key (:func:`batch_served`); the row's key is the batch
order's serial, so the whole batch is one usage record priced as signed into
the order.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from skymesh.coordinator.endpoints import Call, Operation, RouteTable
from skymesh.coordinator.inference.compute import ComputeBook
from skymesh.coordinator.inference.metering import MAX_PROMPT_TOKENS, Meter, Served
from skymesh.coordinator.keyring import Keyring
from skymesh.coordinator.metainfo import buckets
from skymesh.coordinator.metainfo.api import PROJECT_OPERATIONS, ProjectOperation
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.overlay.residency import Residency, residency
from skymesh.errors import BadRequest, Forbidden, Unavailable
from skymesh.wire import routes
from skymesh.wire.batch import (
    BatchOrder,
    BatchOrderGrant,
    BatchOrderRequest,
    BatchUsage,
    ReadOrderRequest,
)
from skymesh.wire.identity import id_from_public_key
from skymesh.wire.inference import ComputeNode, ModelOffer
from skymesh.wire.metainfo import BeginSegmentRequest, BucketRequest, DownloadRequest
from skymesh.wire.metering import UsageRecorded
from skymesh.wire.signing import ORDER_HEADER, Signed, decode_header, open_signed, sign

BATCH_ORDER_TTL = 24 * 3600.0 + 600.0  # the completion window, and a little to finish writing
MAX_BATCH_TOKENS = 4096  # per chat line
MAX_PREFER = 64
KIND = {"/v1/embeddings": "embedding", "/v1/chat/completions": "chat"}


class NoComputeInResidency(Unavailable):
    """No online compute node inside the bucket's residency serves the model."""

    code = "NoComputeInResidency"


def choose_batch_node(
    nodes: Sequence[ComputeNode],
    model: str,
    kind: str,
    where: Residency,
    prefer: Sequence[str] = (),
    regions: Sequence[str] = (),
) -> ComputeNode | None:
    """The node to run a batch (or a read order) on: inside ``where``, serving ``model``
    as ``kind``, and in ``regions`` when the request names some (never loosened).

    Among those, the first in ``prefer`` (the gateway's ranking by measured
    latency, price and carbon); then the shortest queue. None when no node inside
    qualifies: the caller refuses, and nothing outside is ever considered.
    """
    inside = [
        n
        for n in nodes
        if where.allows(n.region)
        and (not regions or n.region in regions)
        and any(m.name == model and m.kind == kind for m in n.advert.models)
    ]
    rank: dict[str, int] = {}
    for i, node_id in enumerate(prefer):
        rank.setdefault(node_id, i)  # a node named twice keeps its first place
    last = len(prefer)
    inside.sort(key=lambda n: (rank.get(n.node_id, last), n.advert.queue_depth, n.node_id))
    return inside[0] if inside else None


async def issue_batch_order(
    book: ComputeBook, m: Metainfo, project_id: str, req: BatchOrderRequest
) -> BatchOrderGrant:
    """Sign a batch order for a node inside ``req.bucket``'s residency, or refuse."""
    kind = KIND.get(req.endpoint)
    if kind is None:
        raise BadRequest(f"endpoint must be one of {', '.join(KIND)}")
    if not 1 <= req.max_tokens <= MAX_BATCH_TOKENS:
        raise BadRequest(f"max_tokens must be 1..{MAX_BATCH_TOKENS}")
    if len(req.prefer) > MAX_PREFER:
        raise BadRequest(f"prefer at most {MAX_PREFER} nodes")
    if req.output_upload in ("", req.error_upload) or not req.batch_id:
        raise BadRequest("name a batch id and two distinct uploads")
    node, offer, constraint = await _node_inside(
        book, m, project_id, req.bucket, req.model, kind, req.prefer, (), "the batch"
    )
    now = book.clock()
    order = BatchOrder(
        serial=secrets.token_hex(16),
        coordinator_id=book.identity.id,
        node_id=node.node_id,
        project_id=project_id,
        batch_id=req.batch_id,
        bucket=req.bucket,
        input_key=req.input_key,
        input_version=req.input_version,
        output_key=req.output_key,
        output_upload=req.output_upload,
        error_key=req.error_key,
        error_upload=req.error_upload,
        model=req.model,
        endpoint=req.endpoint,
        max_tokens=req.max_tokens,
        residency=constraint,
        expires_at=now + BATCH_ORDER_TTL,
        issued_at=now,
        price_in=offer.price_in,  # priced as offered when signed
        price_out=offer.price_out,
        region=node.region,
    )
    book.orders_issued += 1
    return BatchOrderGrant(
        order=sign(book.identity, order),
        node_id=node.node_id,
        address=node.address,
        region=node.region,
    )


async def _node_inside(
    book: ComputeBook,
    m: Metainfo,
    project_id: str,
    bucket_name: str,
    model: str,
    kind: str,
    prefer: Sequence[str],
    regions: Sequence[str],
    what: str,
) -> tuple[ComputeNode, ModelOffer, str]:
    """The node chosen inside the bucket's residency, its offer, and the bucket's constraint.

    Raises :class:`NoComputeInResidency` (naming the residency) when there is none.
    """
    bucket = await buckets.get_bucket(m, project_id, BucketRequest(name=bucket_name))
    where = residency(bucket.region, m.config.jurisdictions)
    node = choose_batch_node((await book.nodes()).nodes, model, kind, where, prefer, regions)
    if node is None:
        scope = "anywhere" if where.anywhere else f"inside residency {where.describe()}"
        also = f" in regions {', '.join(regions)}" if regions else ""
        raise NoComputeInResidency(
            f"no online compute node {scope} of bucket {bucket_name!r}{also} serves {model!r}"
            f" as {kind}: {what} does not run outside the bucket's residency"
        )
    offer = next(o for o in node.advert.models if o.name == model and o.kind == kind)
    return node, offer, bucket.region


async def issue_read_order(
    book: ComputeBook, m: Metainfo, project_id: str, req: ReadOrderRequest
) -> BatchOrderGrant:
    """Sign a read order: one interactive request on a node inside the object's residency.

    The order opens only ``bucket/key@version_id`` at the scoped routes (no uploads)
    and lives as long as an inference order.
    """
    kind = KIND.get(req.endpoint)
    if kind != "embedding":
        raise BadRequest("read orders serve /v1/embeddings only")
    if len(req.prefer) > MAX_PREFER or len(req.regions) > MAX_PREFER:
        raise BadRequest(f"prefer and regions: at most {MAX_PREFER} each")
    if not req.key or not req.version_id:
        raise BadRequest("name the object's key and version")
    node, offer, constraint = await _node_inside(
        book, m, project_id, req.bucket, req.model, kind, req.prefer, req.regions, "the request"
    )
    now = book.clock()
    order = BatchOrder(
        serial=secrets.token_hex(16),
        coordinator_id=book.identity.id,
        node_id=node.node_id,
        project_id=project_id,
        batch_id="read_" + secrets.token_hex(12),
        bucket=req.bucket,
        input_key=req.key,
        input_version=req.version_id,
        output_key="",
        output_upload="",
        error_key="",
        error_upload="",
        model=req.model,
        endpoint=req.endpoint,
        max_tokens=1,
        residency=constraint,
        expires_at=now + book.order_ttl,
        issued_at=now,
        price_in=offer.price_in,
        price_out=offer.price_out,
        region=node.region,
        purpose="read",
    )
    book.orders_issued += 1
    return BatchOrderGrant(
        order=sign(book.identity, order),
        node_id=node.node_id,
        address=node.address,
        region=node.region,
    )


def batch_served(order: BatchOrder, signed: Signed) -> Served:
    """The usage record of a batch, from its node's signed report: checked, never trusted.

    Only the node the order names can sign it (a gateway also holds the order but
    not the node's key, so it cannot inflate counts), it must be for this order,
    and the totals must fit the lines that ran: completion tokens within the
    order's per-line cap (none for embeddings), prompt tokens within the per-request
    cap of interactive metering. The key is the order's serial: the batch counts
    once, however often it is reported.
    """
    usage = open_signed(signed, BatchUsage, lambda key: id_from_public_key(key) == order.node_id)
    if (usage.order_serial, usage.batch_id) != (order.serial, order.batch_id):
        raise Forbidden("the usage report is for another batch order")
    cap_out = 0 if order.endpoint == "/v1/embeddings" else order.max_tokens
    if not 0 <= usage.lines <= 10**9:
        raise BadRequest("lines must be 0..10^9")
    if not 0 <= usage.prompt_tokens <= usage.lines * MAX_PROMPT_TOKENS:
        raise BadRequest(f"prompt_tokens must be 0..{MAX_PROMPT_TOKENS} per line")
    if not 0 <= usage.completion_tokens <= usage.lines * cap_out:
        raise BadRequest(f"completion_tokens must be 0..{cap_out} per line under this order")
    return Served(
        serial=order.serial,
        project_id=order.project_id,
        model=order.model,
        node_id=order.node_id,
        region=order.region,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        price_in=order.price_in,
        price_out=order.price_out,
        complete=usage.complete,
        issued_at=order.issued_at,
    )


# ---------------------------------------------------------------- the scope of an order


def _uploads(order: BatchOrder) -> dict[str, str]:
    if order.purpose != "batch":  # a read order writes nothing
        return {}
    return {order.output_upload: order.output_key, order.error_upload: order.error_key}


def in_scope(order: BatchOrder, req: Any) -> bool:
    """Whether a scoped request touches only what ``order`` grants."""
    if req is None:  # codec parameters
        return True
    if isinstance(req, DownloadRequest):
        return (req.bucket, req.key, req.version_id) == (
            order.bucket,
            order.input_key,
            order.input_version,
        )
    if isinstance(req, BeginSegmentRequest):
        return req.stream_id in _uploads(order)
    upload_id = getattr(req, "upload_id", None)
    return (
        upload_id is not None
        and req.bucket == order.bucket
        and _uploads(order).get(upload_id) == req.key
    )


async def verified_order(book: ComputeBook, keyring: Keyring, request: web.Request) -> BatchOrder:
    """The batch order in the request's order header, signed by a current coordinator key
    (any coordinator of the network may have issued it) and unexpired, or Forbidden."""
    value = request.headers.get(ORDER_HEADER)
    if not value:
        raise Forbidden(f"scoped batch routes need a batch order in {ORDER_HEADER}")
    order = await keyring.open(decode_header(value), BatchOrder)
    if order.expires_at < book.clock():
        raise Forbidden("the batch order has expired")
    return order


def add_batch_routes(table: RouteTable, book: ComputeBook, m: Metainfo, meter: Meter) -> None:
    """Batch and read orders, and the project routes each order opens for its node.

    The table checks each scoped route's order with :func:`verified_order` first.
    """

    async def orders(call: Call, req: BatchOrderRequest) -> BatchOrderGrant:
        return await issue_batch_order(book, m, call.project_id, req)

    async def read_orders(call: Call, req: ReadOrderRequest) -> BatchOrderGrant:
        return await issue_read_order(book, m, call.project_id, req)

    def scoped(op: ProjectOperation) -> Operation:
        async def run(call: Call, req: Any) -> Any:
            order = call.order
            assert order is not None  # BATCH_ORDER routes always carry one
            if not in_scope(order, req):
                raise Forbidden(f"batch {order.batch_id}'s order does not cover this request")
            return await op(m, order.project_id, req)

        return run

    async def usage(call: Call, signed: Signed) -> UsageRecorded:
        assert call.order is not None
        return await meter.record_served([batch_served(call.order, signed)])

    table.add(routes.BATCH_ORDERS, orders)
    table.add(routes.READ_ORDERS, read_orders)
    table.add(routes.BATCH_USAGE, usage)
    for route in routes.BATCH_SCOPED:
        table.add_scoped(routes.SCOPE_PREFIX, route, scoped(PROJECT_OPERATIONS[route]))
