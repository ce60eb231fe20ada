"""The node registry: signed joins and heartbeats, and who is online.

A node's id derives from its public key, so a join signed by the key whose id
is the ``node_id`` proves the claim, and a rejoin can only come from the same key.
Heartbeats are verified with the key registered at join. A node is online when
its last heartbeat (or join) is at most ``offline_after`` seconds old.

The registry keeps every node in memory (placement and downloads read it on each
request); its own writes update that copy at once, and it reloads from the
database when the copy is older than ``cache_ttl``, which is how replicas over a
shared database see each other's joins and heartbeats.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import nodes
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.reputation import Reputation, ReputationBook, suspended
from skymesh.errors import BadRequest, Forbidden
from skymesh.wire.identity import Identity
from skymesh.wire.registry import (
    Heartbeat,
    HeartbeatResponse,
    JoinResponse,
    NodeInfo,
    NodeList,
    NodeStatus,
)
from skymesh.wire.signing import Signed, open_signed

MAX_CLOCK_SKEW = 300.0  # seconds a signed join or heartbeat may be off our clock
MAX_LABEL = 64
MAX_ADDRESS = 512
MAX_BYTES = 2**62  # what a BIGINT holds, with room to add
MISS_RELOAD_INTERVAL = 1.0  # unknown ids reload the cache at most this often

_SELECT_ALL = sa.select(nodes)
_UPDATE_JOIN = (
    nodes.update()
    .where(nodes.c.node_id == sa.bindparam("b_node_id"))
    .values(
        address=sa.bindparam("address"),
        region=sa.bindparam("region"),
        operator=sa.bindparam("operator"),
        capacity_bytes=sa.bindparam("capacity_bytes"),
        used_bytes=sa.bindparam("used_bytes"),
        version=sa.bindparam("version"),
        last_seen=sa.bindparam("last_seen"),
    )
)
_UPDATE_HEARTBEAT = (
    nodes.update()
    .where(nodes.c.node_id == sa.bindparam("b_node_id"))
    .values(
        address=sa.bindparam("address"),
        capacity_bytes=sa.bindparam("capacity_bytes"),
        used_bytes=sa.bindparam("used_bytes"),
        last_seen=sa.bindparam("last_seen"),
    )
)


def _reputation_fields(rep: Reputation | None) -> dict[str, Any]:
    """NodeStatus fields from a node's reputation (none before its first audit or exit)."""
    if rep is None:
        return {}
    return {
        "audit_score": rep.audit_score,
        "unknown_score": rep.unknown_score,
        "audits": rep.audits_success + rep.audits_failed,
        "vetted": rep.vetted,
        "disqualified": rep.disqualified,
        "exit": "drained" if rep.exited else "draining" if rep.exiting else "",
    }


def _check_address(address: str) -> None:
    parts = urlsplit(address)
    if len(address) > MAX_ADDRESS or parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"node address must be an http(s) base URL, got {address[:100]!r}")


def _check_label(name: str, value: str) -> None:
    if not value or len(value) > MAX_LABEL or not value.isprintable():
        raise BadRequest(f"node {name} must be 1-{MAX_LABEL} printable characters")


def _check_sizes(capacity: int, used: int) -> None:
    if not (0 <= capacity <= MAX_BYTES and 0 <= used <= MAX_BYTES):
        raise BadRequest(f"capacity and used bytes must be within 0..{MAX_BYTES}")


class Registry:
    """Every registered node; ``reputation`` bars and vets nodes for placement.

    ``on_heartbeat`` is told of every accepted heartbeat (compute adverts ride on them).
    """

    def __init__(
        self,
        db: Database,
        identity: Identity,
        reputation: ReputationBook,
        *,
        heartbeat_interval: float,
        offline_after: float,
        clock: Callable[[], float] = time.time,
        cache_ttl: float = 2.0,
        on_heartbeat: Callable[[str, Heartbeat], None] | None = None,
    ) -> None:
        self.db = db
        self.identity = identity
        self.reputation = reputation
        self.heartbeat_interval = heartbeat_interval
        self.offline_after = offline_after
        self.clock = clock
        self.cache_ttl = cache_ttl
        self.on_heartbeat = on_heartbeat
        self._nodes: dict[str, NodeRecord] = {}
        self._loaded_at = -float("inf")

    # ------------------------------------------------------------ reads

    async def load(self) -> None:
        rows = await self.db.read(lambda conn: conn.execute(_SELECT_ALL).all())
        self._nodes = {r.node_id: NodeRecord(**r._asdict()) for r in rows}
        self._loaded_at = time.monotonic()

    async def all_nodes(self) -> list[NodeRecord]:
        """Every known node (from the cache, reloaded when stale)."""
        if time.monotonic() - self._loaded_at > self.cache_ttl:
            await self.load()
        return list(self._nodes.values())

    async def lookup(self, node_ids: Iterable[str]) -> dict[str, NodeRecord]:
        """The known nodes among ``node_ids``.

        Missing ids reload the cache (another replica may have seen the join), but
        at most once a ``MISS_RELOAD_INTERVAL``, so made-up ids cannot keep the
        database busy.
        """
        wanted = set(node_ids)
        age = time.monotonic() - self._loaded_at
        missing = not wanted <= self._nodes.keys()
        if age > self.cache_ttl or (missing and age > MISS_RELOAD_INTERVAL):
            await self.load()
        return {i: self._nodes[i] for i in wanted if i in self._nodes}

    async def placement_filters(self) -> tuple[set[str], set[str]]:
        """(nodes that get no new pieces, unvetted nodes) from their reputation.

        Barred: disqualified, exiting or exited, or suspended for unanswered audits.
        Unvetted: every node without ``vetting_audits`` successful audits yet.
        """
        book = self.reputation
        nodes_now = await self.all_nodes()
        reps = await book.refresh()
        barred: set[str] = set()
        unvetted: set[str] = set()
        for n in nodes_now:
            rep = reps.get(n.node_id)
            if rep is None:
                unvetted.add(n.node_id)
                continue
            if rep.disqualified or rep.exit_requested_at is not None or suspended(rep, book.params):
                barred.add(n.node_id)
            elif not rep.vetted:
                unvetted.add(n.node_id)
        return barred, unvetted

    def is_online(self, node: NodeRecord, now: float | None = None) -> bool:
        return node.is_online(self.clock() if now is None else now, self.offline_after)

    async def node_list(self) -> NodeList:
        now = self.clock()
        reps = await self.reputation.refresh()
        return NodeList(
            nodes=[
                NodeStatus(
                    node_id=n.node_id,
                    address=n.address,
                    region=n.region,
                    operator=n.operator,
                    capacity_bytes=n.capacity_bytes,
                    used_bytes=n.used_bytes,
                    online=self.is_online(n, now),
                    last_seen=n.last_seen,
                    joined_at=n.joined_at,
                    **_reputation_fields(reps.get(n.node_id)),
                )
                for n in sorted(await self.all_nodes(), key=lambda n: (n.region, n.node_id))
            ]
        )

    # ------------------------------------------------------------ writes

    def _check_fresh(self, timestamp: float, now: float, what: str) -> None:
        if abs(now - timestamp) > MAX_CLOCK_SKEW:
            raise Forbidden(
                f"{what} timestamp is {now - timestamp:+.0f}s off the coordinator's clock"
                f" (at most {MAX_CLOCK_SKEW:.0f}s allowed)"
            )

    async def join(self, signed: Signed) -> JoinResponse:
        info = open_signed(signed, NodeInfo)
        if info.node_id != signed.signer_id:
            raise Forbidden("a node may only join as the id of its own key")
        now = self.clock()
        self._check_fresh(info.timestamp, now, "join")
        _check_address(info.address)
        _check_label("region", info.region)
        _check_label("operator", info.operator)
        _check_sizes(info.capacity_bytes, info.used_bytes)
        if len(info.version) > MAX_LABEL:
            raise BadRequest("node version too long")
        values = {
            "address": info.address,
            "region": info.region,
            "operator": info.operator,
            "capacity_bytes": info.capacity_bytes,
            "used_bytes": info.used_bytes,
            "version": info.version,
            "last_seen": now,
        }

        def txn(conn: sa.Connection) -> sa.Row:
            updated = conn.execute(_UPDATE_JOIN, {"b_node_id": info.node_id, **values})
            if updated.rowcount == 0:
                conn.execute(
                    nodes.insert().values(
                        node_id=info.node_id,
                        public_key=signed.signer,
                        joined_at=now,
                        **values,
                    )
                )
            return conn.execute(sa.select(nodes).where(nodes.c.node_id == info.node_id)).one()

        row = await self.db.write(txn)
        self._nodes[info.node_id] = NodeRecord(**row._asdict())
        return JoinResponse(
            coordinator_id=self.identity.id,
            coordinator_public_key=self.identity.public_key,
            heartbeat_interval=self.heartbeat_interval,
        )

    async def heartbeat(self, signed: Signed) -> HeartbeatResponse:
        node_id = signed.signer_id
        known = (await self.lookup([node_id])).get(node_id)
        if known is None:
            return HeartbeatResponse(heartbeat_interval=self.heartbeat_interval, known=False)
        beat = open_signed(signed, Heartbeat, trusted=[known.public_key])
        if beat.node_id != node_id:
            raise Forbidden("heartbeat names another node than its signer")
        now = self.clock()
        self._check_fresh(beat.timestamp, now, "heartbeat")
        _check_address(beat.address)
        _check_sizes(beat.capacity_bytes, beat.used_bytes)
        params = {
            "b_node_id": node_id,
            "address": beat.address,
            "capacity_bytes": beat.capacity_bytes,
            "used_bytes": beat.used_bytes,
            "last_seen": now,
        }
        updated = await self.db.write(lambda conn: conn.execute(_UPDATE_HEARTBEAT, params).rowcount)
        if updated == 0:  # removed from the database behind our back
            self._nodes.pop(node_id, None)
            return HeartbeatResponse(heartbeat_interval=self.heartbeat_interval, known=False)
        self._nodes[node_id] = dataclasses.replace(
            known,
            address=beat.address,
            capacity_bytes=beat.capacity_bytes,
            used_bytes=beat.used_bytes,
            last_seen=now,
        )
        if self.on_heartbeat is not None:
            self.on_heartbeat(node_id, beat)
        return HeartbeatResponse(heartbeat_interval=self.heartbeat_interval)
