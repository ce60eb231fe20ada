"""Audits: ask nodes for random Merkle chunks of pieces they hold, and score the answers.

Each round picks up to ``audits_per_round`` online nodes at random (admitted,
not yet disqualified or gone), then one random piece that node holds and one random
64 KiB chunk of it. Sampling nodes first, not segments, gives every node the same
audit rate whatever it stores, so new nodes get vetted and a small node cannot hide
behind big ones (Storj moved to per-node audits for the same reason).

The node answers with the chunk and its inclusion proof (``AuditChunk``); the
chunk is checked against the Merkle root recorded from the node's own signed
receipt. A node cannot pass without the bytes: the proof binds the chunk to the
root, and the root was fixed when the piece was stored.

| answer | outcome |
|---|---|
| chunk and proof verify | success |
| wrong bytes, bad proof, wrong length, piece missing (404), 400, 500 | failure |
| timeout, 502-504 | unknown, and the node is *contained* |
| connection refused, 403 (order refused) | unknown |

**Containment** (Storj's idea): a node that is up but does not answer could be
stalling on a chunk it no longer has, hoping each audit is a fresh draw. So a
contained node is asked for the *same* chunk at its next audit (contained nodes
are audited every round), until it answers: a correct answer releases it, a wrong
one is a failure, and ``contained_retries`` more re-asks without an answer count
as one failed audit. Offline answers (refused connections) neither count nor
release. The pending audit lives in this coordinator's memory: a restart or
another replica forgets it, which costs a stalling node nothing more than a fresh
draw, never an honest node a failure.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from dataclasses import dataclass

import aiohttp
import msgspec
import sqlalchemy as sa

from skymesh.codec.merkle import DEFAULT_CHUNK_SIZE, leaf_hash, verify_inclusion
from skymesh.coordinator.db.schema import pieces, segments
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.reputation import AuditOutcome, ReputationBook, suspended
from skymesh.piecetransfer.exchange import piece_url
from skymesh.wire.node import PIECE_AUDIT_PATH, AuditChunk, PieceAction
from skymesh.wire.pieces import derive_piece_id
from skymesh.wire.signing import ORDER_HEADER, encode_header

log = logging.getLogger(__name__)

CHUNK = DEFAULT_CHUNK_SIZE  # uploaders hash with 64 KiB chunks; roots are over those


@dataclass(frozen=True)
class AuditTarget:
    node_id: str
    piece_id: str
    piece_size: int
    merkle_root: bytes
    root_piece_id: str = ""  # with piece_num: to check a contained piece is still held
    piece_num: int = 0


@dataclass
class Contained:
    """A node's pending audit: the chunk it must answer before it gets another."""

    target: AuditTarget
    chunk: int
    reasks: int = 0


@dataclass(frozen=True)
class AuditResult:
    node_id: str
    piece_id: str
    chunk: int
    outcome: AuditOutcome
    reason: str = ""


def _count_on(node_id: str) -> sa.Select:
    return sa.select(sa.func.count()).select_from(pieces).where(pieces.c.node_id == node_id)


def _piece_on(node_id: str, offset: int) -> sa.Select:
    join = pieces.join(
        segments,
        sa.and_(
            segments.c.stream_id == pieces.c.stream_id,
            segments.c.part == pieces.c.part,
            segments.c.idx == pieces.c.idx,
        ),
    )
    return (
        sa.select(
            segments.c.root_piece_id,
            segments.c.piece_size,
            pieces.c.piece_num,
            pieces.c.merkle_root,
        )
        .select_from(join)
        .where(pieces.c.node_id == node_id)
        .order_by(pieces.c.stream_id, pieces.c.part, pieces.c.idx)
        .limit(1)
        .offset(offset)
    )


def check_answer(target: AuditTarget, index: int, answer: AuditChunk) -> str:
    """Why ``answer`` fails the audit of chunk ``index``; "" when it passes (pure)."""
    leaf_count = -(-target.piece_size // CHUNK)
    want_len = min(CHUNK, target.piece_size - index * CHUNK)
    if answer.piece_id != target.piece_id or answer.chunk_index != index:
        return "answered for another piece or chunk"
    if answer.leaf_count != leaf_count:
        return f"claims {answer.leaf_count} chunks, the piece has {leaf_count}"
    if len(answer.data) != want_len:
        return f"sent {len(answer.data)} bytes of a {want_len}-byte chunk"
    if not verify_inclusion(
        target.merkle_root, index, leaf_count, leaf_hash(answer.data), answer.proof
    ):
        return "chunk does not match the piece's Merkle root"
    return ""


class Auditor:
    """One coordinator's audits; :meth:`step` is a round (drive it with a DrivenLoop)."""

    def __init__(
        self,
        m: Metainfo,
        book: ReputationBook,
        session: aiohttp.ClientSession,
        *,
        per_round: int,
        timeout: float,
        rng: random.Random | None = None,
        contained_retries: int = 3,
    ) -> None:
        self.m = m
        self.book = book
        self.session = session
        self.per_round = per_round
        self.timeout = timeout
        self.rng = rng or random.Random()
        self.contained_retries = max(1, contained_retries)
        self.contained: dict[str, Contained] = {}  # node id -> its pending audit
        self.outcomes: collections.Counter[str] = collections.Counter()  # for metrics

    async def step(self) -> list[AuditResult]:
        """One round: contained nodes, then a random chunk on random online nodes.

        Up to ``per_round`` nodes in all, but every contained node each round.
        """
        now = self.m.clock()
        reps = await self.book.refresh()
        candidates = []
        for node in await self.m.registry.all_nodes():
            rep = reps.get(node.node_id)
            if not node.admitted or (rep is not None and (rep.disqualified or rep.exited)):
                continue
            if self.m.registry.is_online(node, now):
                candidates.append(node)
        held = [n for n in candidates if n.node_id in self.contained]
        free = [n for n in candidates if n.node_id not in self.contained]
        chosen = held + self.rng.sample(free, max(0, min(self.per_round - len(held), len(free))))
        results = await asyncio.gather(*(self.audit_node(n) for n in chosen))
        return [r for r in results if r is not None]

    async def audit_node(self, node: NodeRecord) -> AuditResult | None:
        """Audit ``node``: its pending chunk if contained, else a random chunk of a random piece.

        None if it holds no piece.
        """
        pending = self.contained.get(node.node_id)
        if pending is not None and not await self._still_held(pending.target):
            pending = None  # deleted or repaired away meanwhile: nothing to hold it to
            del self.contained[node.node_id]
        if pending is None:
            target = await self._pick(node.node_id)
            if target is None:
                if suspended(self.book.cached(node.node_id), self.book.params):
                    # online (it heartbeats) and nothing to audit: let the suspension
                    # lift, or a node emptied by repair while it was down stays barred
                    await self.book.record_reachable(node.node_id)
                return None
            index = self.rng.randrange(-(-target.piece_size // CHUNK))
        else:
            target, index = pending.target, pending.chunk
        outcome, reason, stalled = await self._ask(node, target, index)
        outcome, reason = self._contain(node.node_id, target, index, outcome, reason, stalled)
        self.outcomes[outcome.value] += 1
        if outcome is not AuditOutcome.SUCCESS:
            log.info(
                "audit of node %s piece %s chunk %d: %s (%s)",
                node.node_id,
                target.piece_id,
                index,
                outcome.value,
                reason,
            )
        await self.book.record(node.node_id, outcome)
        return AuditResult(node.node_id, target.piece_id, index, outcome, reason)

    def _contain(
        self,
        node_id: str,
        target: AuditTarget,
        index: int,
        outcome: AuditOutcome,
        reason: str,
        stalled: bool,
    ) -> tuple[AuditOutcome, str]:
        """Containment bookkeeping for one answer; the outcome to record."""
        pending = self.contained.get(node_id)
        if outcome is not AuditOutcome.UNKNOWN:
            self.contained.pop(node_id, None)  # answered, right or wrong: released
            return outcome, reason
        if not stalled:
            return outcome, reason  # offline: neither counts against it nor releases it
        if pending is None:
            self.contained[node_id] = Contained(target, index)
            return outcome, f"contained, the same chunk is asked again: {reason}"
        pending.reasks += 1
        if pending.reasks >= self.contained_retries:
            del self.contained[node_id]
            return AuditOutcome.FAILURE, (
                f"contained: no answer to {pending.reasks} re-asks of this chunk ({reason})"
            )
        return outcome, f"contained, re-ask {pending.reasks} of {self.contained_retries}: {reason}"

    async def _still_held(self, target: AuditTarget) -> bool:
        join = pieces.join(
            segments,
            sa.and_(
                segments.c.stream_id == pieces.c.stream_id,
                segments.c.part == pieces.c.part,
                segments.c.idx == pieces.c.idx,
            ),
        )
        q = (
            sa.select(pieces.c.node_id)
            .select_from(join)
            .where(
                pieces.c.node_id == target.node_id,
                pieces.c.piece_num == target.piece_num,
                segments.c.root_piece_id == target.root_piece_id,
            )
            .limit(1)
        )
        return await self.m.db.read(lambda conn: conn.execute(q).first() is not None)

    async def _pick(self, node_id: str) -> AuditTarget | None:
        rng = self.rng

        def txn(conn: sa.Connection) -> sa.Row | None:
            count = conn.execute(_count_on(node_id)).scalar_one()
            if not count:
                return None
            return conn.execute(_piece_on(node_id, rng.randrange(count))).one_or_none()

        row = await self.m.db.read(txn)
        if row is None:
            return None
        return AuditTarget(
            node_id=node_id,
            piece_id=derive_piece_id(row.root_piece_id, row.piece_num),
            piece_size=row.piece_size,
            merkle_root=row.merkle_root,
            root_piece_id=row.root_piece_id,
            piece_num=row.piece_num,
        )

    async def _ask(
        self, node: NodeRecord, target: AuditTarget, index: int
    ) -> tuple[AuditOutcome, str, bool]:
        """(outcome, why, stalled): stalled is an up node that gave no answer (containment)."""
        order = self.m.orders.order(node.node_id, target.piece_id, PieceAction.AUDIT, CHUNK)
        url = piece_url(node.address, target.piece_id, PIECE_AUDIT_PATH)
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.get(
                    url,
                    params={"chunk": str(index)},
                    headers={ORDER_HEADER: encode_header(order)},
                ) as resp:
                    status = resp.status
                    raw = await resp.read()
        except aiohttp.ConnectionTimeoutError as e:  # never reached: down, not stalling
            return AuditOutcome.UNKNOWN, f"no connection: {e}", False
        except TimeoutError:
            return AuditOutcome.UNKNOWN, f"no answer within {self.timeout} s", True
        except (aiohttp.ClientError, OSError) as e:
            # A dropped connection mid-answer is a stall; a refused one is a node that is down.
            stalled = isinstance(e, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError)
            return AuditOutcome.UNKNOWN, f"no answer: {e.__class__.__name__} {e}", stalled
        if status != 200:
            detail = raw[:200].decode(errors="replace")
            if status in (403, 502, 503, 504):
                return AuditOutcome.UNKNOWN, f"HTTP {status}: {detail}", status != 403
            return AuditOutcome.FAILURE, f"HTTP {status}: {detail}", False
        try:
            answer = msgspec.json.decode(raw, type=AuditChunk)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            return AuditOutcome.FAILURE, f"malformed answer: {e}", False
        reason = check_answer(target, index, answer)
        if reason:
            return AuditOutcome.FAILURE, reason, False
        return AuditOutcome.SUCCESS, "", False
