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

| route | auth | request -> response |
|---|---|---|
| POST /v1/compute/batch-orders | project | BatchOrderRequest -> BatchOrderGrant |
| POST /v1/compute/read-orders | project | ReadOrderRequest -> BatchOrderGrant (a read order) |
| POST /v1/compute/batch-scope/v1/codec | batch order | CodecParams |
| POST /v1/compute/batch-scope/v1/objects/download | batch order | the input version only |
| POST /v1/compute/batch-scope/v1/uploads/{get,begin-part,commit-part,parts,complete,abort} | batch order | the two uploads only |
| POST /v1/compute/batch-scope/v1/segments/begin | batch order | a stream of the two uploads only |
| POST /v1/compute/batch-scope/usage | batch order + node signature | Signed[BatchUsage] -> UsageRecorded |

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

from skymesh.coordinator.api import PROJECT_ROUTES, Operation
from skymesh.coordinator.auth import Auth
from skymesh.coordinator.compute import ComputeBook
from skymesh.coordinator.metainfo import buckets
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metering import MAX_PROMPT_TOKENS, Meter, Served
from skymesh.coordinator.residency import Residency, residency
from skymesh.errors import BadRequest, Forbidden, Unavailable
from skymesh.rpc import json_response, read_json
from skymesh.wire import messages as msg
from skymesh.wire.batch import (
    SCOPE_PREFIX,
    BatchOrder,
    BatchOrderGrant,
    BatchOrderRequest,
    BatchUsage,
    ReadOrderRequest,
)
from skymesh.wire.identity import id_from_public_key
from skymesh.wire.signing import Signed, decode_header, open_signed, sign

BATCH_ORDER_TTL = 24 * 3600.0 + 600.0  # the completion window, and a little to finish writing
MAX_BATCH_TOKENS = 4096  # per chat line
MAX_PREFER = 64
KIND = {"/v1/embeddings": "embedding", "/v1/chat/completions": "chat"}


class NoComputeInResidency(Unavailable):
    """No online compute node inside the bucket's residency serves the model."""

    code = "NoComputeInResidency"


def choose_batch_node(
    nodes: Sequence[msg.ComputeNode],
    model: str,
    kind: str,
    where: Residency,
    prefer: Sequence[str] = (),
    regions: Sequence[str] = (),
) -> msg.ComputeNode | None:
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
        price_in=offer.price_in,  # metering: priced as offered when signed
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
) -> tuple[msg.ComputeNode, msg.ModelOffer, str]:
    """The node chosen inside the bucket's residency, its offer, and the bucket's constraint.

    Raises :class:`NoComputeInResidency` (naming the residency) when there is none.
    """
    bucket = await buckets.get_bucket(m, project_id, msg.BucketRequest(name=bucket_name))
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
    if isinstance(req, msg.DownloadRequest):
        return (req.bucket, req.key, req.version_id) == (
            order.bucket,
            order.input_key,
            order.input_version,
        )
    if isinstance(req, msg.BeginSegmentRequest):
        return req.stream_id in _uploads(order)
    upload_id = getattr(req, "upload_id", None)
    return (
        upload_id is not None
        and req.bucket == order.bucket
        and _uploads(order).get(upload_id) == req.key
    )


SCOPED_PATHS = (
    "/v1/codec",
    "/v1/objects/download",
    "/v1/uploads/get",
    "/v1/uploads/begin-part",
    "/v1/uploads/commit-part",
    "/v1/uploads/parts",
    "/v1/uploads/complete",
    "/v1/uploads/abort",
    "/v1/segments/begin",
)


def add_batch_routes(
    app: web.Application, auth: Auth, book: ComputeBook, m: Metainfo, meter: Meter
) -> None:
    async def orders(request: web.Request) -> web.Response:
        project_id = await auth.project_of(request)
        req = await read_json(request, BatchOrderRequest)
        return json_response(await issue_batch_order(book, m, project_id, req))

    async def read_orders(request: web.Request) -> web.Response:
        project_id = await auth.project_of(request)
        req = await read_json(request, ReadOrderRequest)
        return json_response(await issue_read_order(book, m, project_id, req))

    def verified(request: web.Request) -> BatchOrder:
        value = request.headers.get(msg.ORDER_HEADER)
        if not value:
            raise Forbidden(f"scoped batch routes need a batch order in {msg.ORDER_HEADER}")
        order = open_signed(decode_header(value), BatchOrder, [book.identity.public_key])
        if order.expires_at < book.clock():
            raise Forbidden("the batch order has expired")
        return order

    def scoped(kind: type | None, op: Operation) -> Any:
        async def handle(request: web.Request) -> web.Response:
            order = verified(request)
            req: Any = None if kind is None else await read_json(request, kind)
            if not in_scope(order, req):
                raise Forbidden(f"batch {order.batch_id}'s order does not cover this request")
            result: Any = await op(m, order.project_id, req)
            return json_response({} if result is None else result)

        return handle

    async def usage(request: web.Request) -> web.Response:
        order = verified(request)
        served = batch_served(order, await read_json(request, Signed))
        return json_response(await meter.record_served([served]))

    app.router.add_post("/v1/compute/batch-orders", orders)
    app.router.add_post("/v1/compute/read-orders", read_orders)
    app.router.add_post(SCOPE_PREFIX + "/usage", usage)
    routes = {path: (kind, op) for path, kind, op in PROJECT_ROUTES}
    for path in SCOPED_PATHS:
        kind, op = routes[path]
        app.router.add_post(SCOPE_PREFIX + path, scoped(kind, op))
