"""Graceful exit: a node asks to leave, repair moves its pieces, then it is drained.

The request is signed by the node's own key (``Signed[DrainRequest]``), not sent
with the admin token: leaving is the operator's decision about their own node, and
in a network of independent operators the operator holds the node key, never the
coordinator's admin token. The signature also means nobody else can drain a node
(which would cost it its share of data).

From the request on, the node gets no new pieces and its pieces are *misplaced*
(still healthy and readable, see ``durability/health.py``), so the repair checker
queues every segment holding one and the worker moves it: a replacement is stored
elsewhere and the row swapped in one transaction, so a segment's healthy count never
drops during the drain. When a checker scan finds the node holds no piece, the exit
is finished (``drained_at``); the node may then be stopped.
"""

from __future__ import annotations

import sqlalchemy as sa

from skymesh.coordinator.db.schema import pieces
from skymesh.coordinator.overlay.registry import MAX_CLOCK_SKEW, Registry
from skymesh.coordinator.overlay.reputation import ReputationBook
from skymesh.errors import Forbidden, NotFound
from skymesh.wire.durability import DrainRequest, DrainStatus
from skymesh.wire.signing import Signed, open_signed


async def request_drain(registry: Registry, book: ReputationBook, signed: Signed) -> DrainStatus:
    """Start (or report) the graceful exit of the node that signed ``signed``."""
    node_id = signed.signer_id
    node = (await registry.lookup([node_id])).get(node_id)
    if node is None:
        raise NotFound(f"node {node_id} is not registered here; nothing to drain")
    req = open_signed(signed, DrainRequest, trusted=[node.public_key])
    if req.node_id != node_id:
        raise Forbidden("a node may only drain itself")
    skew = registry.clock() - req.timestamp
    if abs(skew) > MAX_CLOCK_SKEW:
        raise Forbidden(
            f"drain timestamp is {skew:+.0f}s off the coordinator's clock"
            f" (at most {MAX_CLOCK_SKEW:.0f}s allowed): fix the node's clock and retry"
        )
    rep = await book.request_exit(node_id)
    left = await book.db.read(
        lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(pieces).where(pieces.c.node_id == node_id)
        ).scalar_one()
    )
    assert rep.exit_requested_at is not None
    return DrainStatus(
        node_id=node_id,
        requested_at=rep.exit_requested_at,
        pieces_left=int(left),
        drained_at=rep.exit_finished_at,
    )
