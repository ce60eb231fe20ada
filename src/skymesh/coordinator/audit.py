"""Audits: ask nodes for random Merkle chunks of pieces they hold, and score the answers.

Each round picks up to ``audits_per_round`` online nodes at random (not yet
disqualified or gone), then one random piece that node holds and one random
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
| timeout, connection refused, 403 (order refused), 502-504 | unknown |
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
from skymesh.coordinator.model import NodeRecord
from skymesh.coordinator.reputation import AuditOutcome, ReputationBook
from skymesh.wire.messages import ORDER_HEADER, AuditChunk, PieceAction
from skymesh.wire.pieces import derive_piece_id
from skymesh.wire.signing import encode_header

log = logging.getLogger(__name__)

CHUNK = DEFAULT_CHUNK_SIZE  # uploaders hash with 64 KiB chunks; roots are over those


@dataclass(frozen=True)
class AuditTarget:
    node_id: str
    piece_id: str
    piece_size: int
    merkle_root: bytes


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
    ) -> None:
        self.m = m
        self.book = book
        self.session = session
        self.per_round = per_round
        self.timeout = timeout
        self.rng = rng or random.Random()
        self.outcomes: collections.Counter[str] = collections.Counter()  # for metrics

    async def step(self) -> list[AuditResult]:
        """One round: a random chunk on each of up to ``per_round`` random online nodes."""
        now = self.m.clock()
        reps = await self.book.refresh()
        candidates = []
        for node in await self.m.registry.all_nodes():
            rep = reps.get(node.node_id)
            if rep is not None and (rep.disqualified or rep.exited):
                continue
            if self.m.registry.is_online(node, now):
                candidates.append(node)
        chosen = self.rng.sample(candidates, min(self.per_round, len(candidates)))
        results = await asyncio.gather(*(self.audit_node(n) for n in chosen))
        return [r for r in results if r is not None]

    async def audit_node(self, node: NodeRecord) -> AuditResult | None:
        """Audit one random chunk of one random piece on ``node``; None if it holds none."""
        target = await self._pick(node.node_id)
        if target is None:
            return None
        index = self.rng.randrange(-(-target.piece_size // CHUNK))
        outcome, reason = await self._ask(node, target, index)
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
        )

    async def _ask(
        self, node: NodeRecord, target: AuditTarget, index: int
    ) -> tuple[AuditOutcome, str]:
        order = self.m.orders.order(node.node_id, target.piece_id, PieceAction.AUDIT, CHUNK)
        url = f"{node.address.rstrip('/')}/v1/pieces/{target.piece_id}/audit"
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.get(
                    url,
                    params={"chunk": str(index)},
                    headers={ORDER_HEADER: encode_header(order)},
                ) as resp:
                    status = resp.status
                    raw = await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            return AuditOutcome.UNKNOWN, f"no answer: {e.__class__.__name__} {e}"
        if status != 200:
            detail = raw[:200].decode(errors="replace")
            if status in (403, 502, 503, 504):
                return AuditOutcome.UNKNOWN, f"HTTP {status}: {detail}"
            return AuditOutcome.FAILURE, f"HTTP {status}: {detail}"
        try:
            answer = msgspec.json.decode(raw, type=AuditChunk)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            return AuditOutcome.FAILURE, f"malformed answer: {e}"
        reason = check_answer(target, index, answer)
        return (AuditOutcome.FAILURE, reason) if reason else (AuditOutcome.SUCCESS, "")
