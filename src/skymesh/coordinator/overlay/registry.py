"""The node registry: signed joins and heartbeats, and who is online.

A node's id derives from its public key, so a join signed by the key whose id
is the ``node_id`` proves the claim, and a rejoin can only come from the same key.
Heartbeats are verified with the key registered at join. A node is online when
its last heartbeat (or join) is at most ``offline_after`` seconds old.

A node registers only with its operator's join token and only at an address
the coordinator may reach (``overlay.admission``, ``overlay.addresses``); each
record says whether the node is *admitted* (its operator is, and allows its
region), which placement, health, audits and compute routing all honour.
Unvetted nodes that never stored anything are forgotten once unseen for
``stale_after`` seconds (:meth:`Registry.expire_stale`, the ``expire-nodes`` loop).

The registry keeps every node and operator in memory (placement and downloads
read it on each request); its own writes update that copy at once, and it reloads
from the database when the copy is older than ``cache_ttl``, which is how replicas
over a shared database see each other's joins, heartbeats and revocations.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import garbage_pieces, node_reputation, nodes, operators, pieces
from skymesh.coordinator.keyring import Keyring
from skymesh.coordinator.overlay.addresses import NodeNetworks, parse_node_address
from skymesh.coordinator.overlay.admission import OperatorBook, admit_join, operator_record
from skymesh.coordinator.overlay.compute_reputation import ComputeStanding
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.placement import PlacementIndex, placement_index
from skymesh.coordinator.overlay.reputation import Reputation, ReputationBook, suspended
from skymesh.errors import BadRequest, Forbidden
from skymesh.wire.identity import Identity
from skymesh.wire.registry import (
    AdmitOperatorRequest,
    Heartbeat,
    HeartbeatResponse,
    JoinResponse,
    NodeInfo,
    NodeList,
    NodeStatus,
    OperatorAdmission,
    OperatorInfo,
    OperatorList,
)
from skymesh.wire.signing import Signed, open_signed

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW = 300.0  # seconds a signed join or heartbeat may be off our clock
MAX_LABEL = 64
MAX_BYTES = 2**62  # what a BIGINT holds, with room to add
MAX_MISSES_READ = 256  # unknown ids of one lookup read from the database, at most
EXPIRE_BATCH = 500  # stale nodes removed per transaction

# the columns in NodeRecord's field order (all but the last, ``admitted``)
_SELECT_ALL = sa.select(*(nodes.c[f.name] for f in dataclasses.fields(NodeRecord)[:-1]))
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
        pue=sa.bindparam("pue"),
        grid_gco2_kwh=sa.bindparam("grid_gco2_kwh"),
        storage_watts_per_tb=sa.bindparam("storage_watts_per_tb"),
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


def _compute_fields(st: ComputeStanding | None) -> dict[str, Any]:
    """NodeStatus fields from a node's compute standing (none before its first spot check)."""
    if st is None:
        return {}
    return {"compute_score": st.score, "spot_checks": st.checks, "compute_excluded": st.excluded}


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


def _check_label(name: str, value: str) -> None:
    if not value or len(value) > MAX_LABEL or not value.isprintable():
        raise BadRequest(f"node {name} must be 1-{MAX_LABEL} printable characters")


def _check_sizes(capacity: int, used: int) -> None:
    if not (0 <= capacity <= MAX_BYTES and 0 <= used <= MAX_BYTES):
        raise BadRequest(f"capacity and used bytes must be within 0..{MAX_BYTES}")


MAX_PUE = 10.0
MAX_GCO2_KWH = 5000.0  # the dirtiest grids are near 1,000
MAX_WATTS_PER_TB = 1000.0


def _check_energy(info: NodeInfo) -> None:
    """A declared energy profile within physical bounds (it weights placement)."""
    if not (
        1.0 <= info.pue <= MAX_PUE
        and 0.0 <= info.grid_gco2_kwh <= MAX_GCO2_KWH
        and 0.0 <= info.storage_watts_per_tb <= MAX_WATTS_PER_TB
    ):
        raise BadRequest(
            f"node energy profile out of bounds: pue 1..{MAX_PUE:g}, grid_gco2_kwh"
            f" 0..{MAX_GCO2_KWH:g}, storage_watts_per_tb 0..{MAX_WATTS_PER_TB:g}"
        )


def _proven(rep: Reputation | None) -> bool:
    """The node has a record of holding data: audited, vetted or asked to exit."""
    return rep is not None and (
        rep.vetted
        or rep.audits_success + rep.audits_failed > 0
        or rep.exit_requested_at is not None
    )


def _delete_stale(conn: sa.Connection, ids: list[str], cutoff: float) -> list[str]:
    """Delete the nodes of ``ids`` still unseen since ``cutoff`` and holding no piece."""
    holds = sa.exists().where(pieces.c.node_id == nodes.c.node_id)
    queued = sa.exists().where(garbage_pieces.c.node_id == nodes.c.node_id)
    stale = sa.and_(
        nodes.c.node_id.in_(ids),
        nodes.c.last_seen < cutoff,
        nodes.c.used_bytes == 0,
        ~holds,
        ~queued,
    )
    gone = list(conn.execute(sa.select(nodes.c.node_id).where(stale)).scalars())
    if gone:
        conn.execute(nodes.delete().where(nodes.c.node_id.in_(gone)))
        conn.execute(node_reputation.delete().where(node_reputation.c.node_id.in_(gone)))
    return gone


class Registry:
    """Every registered node; ``reputation`` bars and vets nodes for placement.

    Every join and heartbeat answer carries ``keyring``'s signed statement of the
    network's coordinator keys, which is how nodes follow keys added and retired.

    ``operators`` admits nodes; ``networks`` are where their addresses may be;
    ``stale_after`` (seconds, 0: never) is how long an unvetted node that never
    stored anything may stay unseen. ``on_heartbeat`` is told of every accepted
    heartbeat (compute adverts ride on them).
    """

    def __init__(
        self,
        db: Database,
        identity: Identity,
        keyring: Keyring,
        reputation: ReputationBook,
        *,
        heartbeat_interval: float,
        offline_after: float,
        operators: OperatorBook,
        networks: NodeNetworks,
        stale_after: float,
        clock: Callable[[], float] = time.time,
        cache_ttl: float = 2.0,
        on_heartbeat: Callable[[str, Heartbeat], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.identity = identity
        self.keyring = keyring
        self.reputation = reputation
        self.heartbeat_interval = heartbeat_interval
        self.offline_after = offline_after
        self.operators = operators
        self.networks = networks
        self.stale_after = stale_after
        self.clock = clock
        self.cache_ttl = cache_ttl
        self.on_heartbeat = on_heartbeat
        self._nodes: dict[str, NodeRecord] = {}
        # changes whenever a node joins, leaves or is (re)admitted in the copy, not when a
        # heartbeat updates one: placement_filters' result holds while it stays the same
        self._membership = 0
        self._filters: tuple[tuple[int, int], set[str], set[str]] | None = None
        self._index: tuple[tuple[int, int], PlacementIndex] | None = None
        self._loaded_at = -float("inf")
        # node id -> the address this process checked against ``networks``; a
        # heartbeat from another address (or after a restart) is checked again
        self._checked: dict[str, str] = {}
        self.expired = 0  # stale nodes forgotten since start, for metrics

    # ------------------------------------------------------------ reads

    def _record(self, row: sa.Row) -> NodeRecord:
        return NodeRecord(*(*row, self.operators.admits(row.operator, row.region)))

    async def load(self) -> None:
        def read(conn: sa.Connection) -> tuple[list[sa.Row], list[sa.Row]]:
            return list(conn.execute(_SELECT_ALL)), list(conn.execute(sa.select(operators)))

        node_rows, operator_rows = await self.db.read(read)
        self.operators.replace(operator_rows)
        admits = self.operators.admits
        # positional, not row._asdict(): this runs for every node on every reload; one
        # tuple of the row's columns and ``admitted`` (NodeRecord's fields in order)
        self._nodes = {r[0]: NodeRecord(*(*r, admits(r.operator, r.region))) for r in node_rows}
        self._membership += 1
        self._loaded_at = time.monotonic()

    def _readmit(self) -> None:
        """Recompute every node's ``admitted`` after the operators changed here."""
        admits = self.operators.admits
        self._nodes = {
            i: dataclasses.replace(n, admitted=admits(n.operator, n.region))
            for i, n in self._nodes.items()
        }
        self._membership += 1

    async def all_nodes(self) -> list[NodeRecord]:
        """Every known node (from the cache, reloaded when stale)."""
        if time.monotonic() - self._loaded_at > self.cache_ttl:
            await self.load()
        return list(self._nodes.values())

    async def lookup(self, node_ids: Iterable[str]) -> dict[str, NodeRecord]:
        """The known nodes among ``node_ids``.

        Missing ids are read from the database by key (another replica may have seen
        the join a moment ago: a placement it made names the node, and the commit
        comes here): one indexed read of at most ``MAX_MISSES_READ`` ids, so made-up
        ids cost little.
        """
        wanted = set(node_ids)
        if time.monotonic() - self._loaded_at > self.cache_ttl:
            await self.load()
        missing = sorted(wanted - self._nodes.keys())[:MAX_MISSES_READ]
        if missing:
            select = _SELECT_ALL.where(nodes.c.node_id.in_(missing))
            for row in await self.db.read(lambda conn: list(conn.execute(select))):
                self._nodes[row.node_id] = self._record(row)
                self._membership += 1
        return {i: self._nodes[i] for i in wanted if i in self._nodes}

    async def placement_filters(self) -> tuple[set[str], set[str]]:
        """(nodes that get no new pieces, unvetted nodes) from admission and reputation.

        Barred: not admitted (operator revoked, or the region not its operator's),
        disqualified, exiting or exited, or suspended for unanswered audits.
        Unvetted: every node without ``vetting_audits`` successful audits yet.
        """
        book = self.reputation
        nodes_now = await self.all_nodes()
        reps = await book.refresh()
        key = (self._membership, book.version)
        if self._filters is not None and self._filters[0] == key:
            return self._filters[1], self._filters[2]
        barred: set[str] = set()
        unvetted: set[str] = set()
        for n in nodes_now:
            rep = reps.get(n.node_id)
            if not n.admitted:
                barred.add(n.node_id)
            elif rep is None:
                unvetted.add(n.node_id)
            elif (
                rep.disqualified or rep.exit_requested_at is not None or suspended(rep, book.params)
            ):
                barred.add(n.node_id)
            elif not rep.vetted:
                unvetted.add(n.node_id)
        self._filters = (key, barred, unvetted)
        return barred, unvetted

    async def placement_index(self) -> PlacementIndex:
        """The usable nodes by region for upload placement (``overlay.placement``).

        Kept while :meth:`placement_filters`' answer holds (no join, leave,
        (re)admission or reputation change); it reads heartbeats' updates live.
        """
        barred, unvetted = await self.placement_filters()
        assert self._filters is not None
        key = self._filters[0]
        if self._index is None or self._index[0] != key:
            self._index = (key, placement_index(self._nodes, barred, unvetted))
        return self._index[1]

    def is_online(self, node: NodeRecord, now: float | None = None) -> bool:
        return node.is_online(self.clock() if now is None else now, self.offline_after)

    async def node_list(self, compute: Mapping[str, ComputeStanding] | None = None) -> NodeList:
        """Every node with its reputation, and its ``compute`` standing where given."""
        now = self.clock()
        standings = compute or {}
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
                    admitted=n.admitted,
                    version=n.version,
                    suspended=suspended(reps.get(n.node_id), self.reputation.params),
                    pue=n.pue,
                    grid_gco2_kwh=n.grid_gco2_kwh,
                    storage_watts_per_tb=n.storage_watts_per_tb,
                    **_reputation_fields(reps.get(n.node_id)),
                    **_compute_fields(standings.get(n.node_id)),
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

    async def _check_address(self, node_id: str, address: str) -> None:
        """The address is a base URL (every time) into ``networks`` (once per new address)."""
        parse_node_address(address)
        if self._checked.get(node_id) != address:
            await self.networks.check(address)
            self._checked[node_id] = address

    async def join(self, signed: Signed) -> JoinResponse:
        """Register or update the signer: admitted by its token (or its registration)."""
        info = open_signed(signed, NodeInfo)
        if info.node_id != signed.signer_id:
            raise Forbidden("a node may only join as the id of its own key")
        now = self.clock()
        self._check_fresh(info.timestamp, now, "join")
        parse_node_address(info.address)
        _check_label("region", info.region)
        _check_sizes(info.capacity_bytes, info.used_bytes)
        _check_energy(info)
        if len(info.version) > MAX_LABEL:
            raise BadRequest("node version too long")
        # Admission before the address's network check: only admitted nodes make us
        # resolve a name.
        token = await self.operators.verify(info.join_token) if info.join_token else None
        current = None if token is None else self.operators.operators.get(token.operator)
        if token is not None and (current is None or current.token_id != token.token_id):
            # a genuine token this copy does not know: another replica may have issued it
            await self.load()
        known = (await self.lookup([info.node_id])).get(info.node_id)
        known_operator = None if known is None else known.operator
        op = admit_join(token, known_operator, info.region, self.operators.operators, now)
        await self._check_address(info.node_id, info.address)
        values = {
            "address": info.address,
            "region": info.region,
            "operator": op.name,
            "capacity_bytes": info.capacity_bytes,
            "used_bytes": info.used_bytes,
            "version": info.version,
            "last_seen": now,
            "pue": info.pue,
            "grid_gco2_kwh": info.grid_gco2_kwh,
            "storage_watts_per_tb": info.storage_watts_per_tb,
        }

        def txn(conn: sa.Connection) -> sa.Row:
            # Admission again, on the operator's row as committed: the copy checked above
            # may be up to cache_ttl old (the token replaced, or the operator revoked,
            # through another coordinator), and within this transaction a racing
            # re-admission or revocation comes wholly before the join or after it.
            row = conn.execute(
                sa.select(operators).where(operators.c.name == op.name)
            ).one_or_none()
            book = {} if row is None else {op.name: operator_record(row)}
            admit_join(token, known_operator, info.region, book, now)
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
            return conn.execute(_SELECT_ALL.where(nodes.c.node_id == info.node_id)).one()

        try:
            row = await self.db.write(txn)
        except Forbidden:
            await self.load()  # the copy was stale: take the operators as they are now
            raise
        self._nodes[info.node_id] = self._record(row)
        self._membership += 1
        return JoinResponse(
            coordinator_id=self.identity.id,
            coordinator_public_key=self.identity.public_key,
            heartbeat_interval=self.heartbeat_interval,
            keys=await self.keyring.statement(),
        )

    async def heartbeat(self, signed: Signed) -> HeartbeatResponse:
        """Refresh a known node; a revoked operator's node is refused, one not admitted
        (no operator row, its region withdrawn) is asked to join again, which says why."""
        node_id = signed.signer_id
        known = (await self.lookup([node_id])).get(node_id)
        if known is None:
            return HeartbeatResponse(heartbeat_interval=self.heartbeat_interval, known=False)
        beat = open_signed(signed, Heartbeat, trusted=[known.public_key])
        if beat.node_id != node_id:
            raise Forbidden("heartbeat names another node than its signer")
        now = self.clock()
        self._check_fresh(beat.timestamp, now, "heartbeat")
        if not known.admitted:
            if self.operators.is_revoked(known.operator):
                raise Forbidden(f"operator {known.operator!r} was revoked", code="OperatorRevoked")
            return HeartbeatResponse(heartbeat_interval=self.heartbeat_interval, known=False)
        await self._check_address(node_id, beat.address)
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
            self._membership += 1
            return HeartbeatResponse(heartbeat_interval=self.heartbeat_interval, known=False)
        self._nodes[node_id] = dataclasses.replace(
            known,
            address=beat.address,
            capacity_bytes=beat.capacity_bytes,
            used_bytes=beat.used_bytes,
            last_seen=now,
        )
        if self.on_heartbeat is not None:
            await self.on_heartbeat(node_id, beat)
        return HeartbeatResponse(
            heartbeat_interval=self.heartbeat_interval, keys=await self.keyring.statement()
        )

    # ------------------------------------------------------------ operators

    async def admit_operator(self, req: AdmitOperatorRequest) -> OperatorAdmission:
        """Admit (or re-admit) an operator; its nodes' standing follows at once."""
        op, token = await self.operators.admit(req)
        self._readmit()
        count = sum(1 for n in self._nodes.values() if n.operator == op.name)
        return OperatorAdmission(operator=op.info(count), join_token=token)

    async def revoke_operator(self, name: str) -> OperatorInfo:
        """Revoke ``name``: from now on none of its nodes is admitted."""
        op = await self.operators.revoke(name)
        self._readmit()
        count = sum(1 for n in self._nodes.values() if n.operator == name)
        log.warning(
            "operator %s revoked: its %d node(s) get no pieces, are not audited or routed"
            " to, and their pieces will be repaired elsewhere",
            name,
            count,
        )
        return op.info(count)

    async def operator_list(self) -> OperatorList:
        counts = Counter(n.operator for n in await self.all_nodes())
        return OperatorList(
            operators=[
                op.info(counts[name]) for name, op in sorted(self.operators.operators.items())
            ]
        )

    # ------------------------------------------------------------ expiry

    async def expire_stale(self) -> int:
        """Forget unvetted nodes unseen for ``stale_after`` that never stored anything.

        Never stored anything: no piece or queued garbage piece on it, no used bytes
        in its last report, and no audit, vetting or exit on record. The count removed.
        """
        if self.stale_after <= 0:
            return 0
        cutoff = self.clock() - self.stale_after
        reps = await self.reputation.refresh()
        candidates = [
            n.node_id
            for n in await self.all_nodes()
            if n.last_seen < cutoff and n.used_bytes == 0 and not _proven(reps.get(n.node_id))
        ]
        gone: list[str] = []
        for i in range(0, len(candidates), EXPIRE_BATCH):
            batch = candidates[i : i + EXPIRE_BATCH]
            gone += await self.db.write(functools.partial(_delete_stale, ids=batch, cutoff=cutoff))
        for node_id in gone:
            self._nodes.pop(node_id, None)
            self._checked.pop(node_id, None)
        self._membership += 1
        self.reputation.forget(gone)
        if gone:
            self.expired += len(gone)
            log.info(
                "forgot %d unvetted node(s) unseen for %.0f s that never stored anything",
                len(gone),
                self.stale_after,
            )
        return len(gone)
