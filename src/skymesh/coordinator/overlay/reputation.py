"""Node reputation: decaying audit scores, vetting, disqualification and graceful exit.

Scores follow Storj's beta reputation with forgetting: every audit outcome
multiplies both counters by ``lambda`` and adds its weight to one of them, so old
history fades and ``alpha / (alpha + beta)`` tracks recent behaviour. A new node
starts at ``alpha = 1 / (1 - lambda)``, ``beta = 0`` (score 1, as much history as
the decay ever keeps), so one failure costs a fresh node as much as an old one:
with ``lambda = 0.999`` a node that fails every audit falls below 0.96 after 41.

Two scores, because a failed audit and an unanswered one mean different things:

- **audit score** (failures: wrong bytes, bad proof, piece missing): below
  ``audit_dq_threshold`` the node is disqualified for good; its pieces count as
  lost and it gets no new ones.
- **unknown score** (timeouts, refused connections, errors that may be ours):
  decays faster (``unknown_lambda``) and only suspends new uploads while it is
  below ``unknown_suspend_threshold``; it recovers once the node answers again,
  or, for a node holding no piece to be audited on, while it is reachable.

The pure part (:func:`apply_outcome`) is table-tested; :class:`ReputationBook` keeps
the rows (``node_reputation``) and a copy in memory for placement and repair.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace

import sqlalchemy as sa

from skymesh.coordinator.db.cache import RowCache
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import node_reputation

log = logging.getLogger(__name__)


class AuditOutcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"  # wrong data or proof, piece missing
    UNKNOWN = "unknown"  # offline, timeout, refused: says nothing about the data


@dataclass(frozen=True)
class ReputationParams:
    audit_lambda: float = 0.999
    audit_dq_threshold: float = 0.96
    unknown_lambda: float = 0.95
    unknown_suspend_threshold: float = 0.6
    vetting_audits: int = 10  # successful audits before a node gets a full share of pieces

    @property
    def audit_alpha0(self) -> float:
        return 1.0 / (1.0 - self.audit_lambda)

    @property
    def unknown_alpha0(self) -> float:
        return 1.0 / (1.0 - self.unknown_lambda)


@dataclass(frozen=True)
class Reputation:
    """One node's standing. Times are unix seconds; None: not (yet) happened."""

    node_id: str
    audit_alpha: float
    audit_beta: float
    unknown_alpha: float
    unknown_beta: float
    audits_success: int = 0
    audits_failed: int = 0
    audits_unknown: int = 0
    vetted_at: float | None = None
    disqualified_at: float | None = None
    exit_requested_at: float | None = None
    exit_finished_at: float | None = None

    @classmethod
    def new(cls, node_id: str, params: ReputationParams) -> Reputation:
        return cls(
            node_id=node_id,
            audit_alpha=params.audit_alpha0,
            audit_beta=0.0,
            unknown_alpha=params.unknown_alpha0,
            unknown_beta=0.0,
        )

    @property
    def audit_score(self) -> float:
        total = self.audit_alpha + self.audit_beta
        return self.audit_alpha / total if total > 0 else 1.0

    @property
    def unknown_score(self) -> float:
        total = self.unknown_alpha + self.unknown_beta
        return self.unknown_alpha / total if total > 0 else 1.0

    @property
    def disqualified(self) -> bool:
        return self.disqualified_at is not None

    @property
    def vetted(self) -> bool:
        return self.vetted_at is not None

    @property
    def exiting(self) -> bool:
        """Asked to leave and not done yet: its pieces are readable but must move."""
        return self.exit_requested_at is not None and self.exit_finished_at is None

    @property
    def exited(self) -> bool:
        return self.exit_finished_at is not None


def apply_outcome(
    rep: Reputation, outcome: AuditOutcome, now: float, params: ReputationParams
) -> Reputation:
    """The reputation after one audit ``outcome`` (pure)."""
    if outcome is AuditOutcome.UNKNOWN:
        lam = params.unknown_lambda
        return replace(
            rep,
            unknown_alpha=lam * rep.unknown_alpha,
            unknown_beta=lam * rep.unknown_beta + 1.0,
            audits_unknown=rep.audits_unknown + 1,
        )
    lam = params.audit_lambda
    ok = outcome is AuditOutcome.SUCCESS
    # An answered audit also proves the node is reachable.
    ulam = params.unknown_lambda
    rep = replace(
        rep,
        audit_alpha=lam * rep.audit_alpha + (1.0 if ok else 0.0),
        audit_beta=lam * rep.audit_beta + (0.0 if ok else 1.0),
        unknown_alpha=ulam * rep.unknown_alpha + 1.0,
        unknown_beta=ulam * rep.unknown_beta,
        audits_success=rep.audits_success + ok,
        audits_failed=rep.audits_failed + (not ok),
    )
    if rep.vetted_at is None and rep.audits_success >= params.vetting_audits:
        rep = replace(rep, vetted_at=now)
    if rep.disqualified_at is None and rep.audit_score < params.audit_dq_threshold:
        rep = replace(rep, disqualified_at=now)
    return rep


def apply_reachable(rep: Reputation, params: ReputationParams) -> Reputation:
    """The reputation of a node seen reachable with nothing to audit (pure).

    Only the unknown score moves, as one answered audit would move it: a node that
    holds no piece cannot answer an audit, so a suspension would otherwise never
    lift (its pieces repaired away while it was down, it gets no new ones while
    suspended). The audit score and the vetting count are untouched: nothing was
    proven about data.
    """
    ulam = params.unknown_lambda
    return replace(
        rep,
        unknown_alpha=ulam * rep.unknown_alpha + 1.0,
        unknown_beta=ulam * rep.unknown_beta,
    )


def suspended(rep: Reputation | None, params: ReputationParams) -> bool:
    """Too many unanswered audits lately: no new pieces until it answers again."""
    return rep is not None and rep.unknown_score < params.unknown_suspend_threshold


_COLUMNS = [c.name for c in node_reputation.columns]


class ReputationBook:
    """Reputation rows, with an in-memory copy that placement and repair read.

    Writes go to the database first, then to the copy; the copy is reloaded when
    older than ``cache_ttl`` so replicas over one database see each other's audits.
    """

    def __init__(
        self,
        db: Database,
        params: ReputationParams,
        *,
        clock: Callable[[], float] = time.time,
        cache_ttl: float = 2.0,
    ) -> None:
        self.db = db
        self.params = params
        self.clock = clock
        self._cache = RowCache(
            db,
            node_reputation,
            lambda r: Reputation(*r),
            cache_ttl,
            columns=[node_reputation.c[f.name] for f in fields(Reputation)],
        )
        self.disqualifications = 0  # since start, for metrics

    async def load(self) -> None:
        await self._cache.load()

    async def refresh(self) -> dict[str, Reputation]:
        """Every node with a reputation row (reloaded when the copy is stale)."""
        return await self._cache.refresh()

    @property
    def version(self) -> int:
        """Changes whenever a copy does (:attr:`RowCache.version`)."""
        return self._cache.version

    def cached(self, node_id: str) -> Reputation | None:
        """The in-memory copy (None: no audits or exit recorded yet: a fresh node)."""
        return self._cache.rows.get(node_id)

    def snapshot(self) -> dict[str, Reputation]:
        return dict(self._cache.rows)

    def forget(self, node_ids: Iterable[str]) -> None:
        """Drop the copies of nodes the registry removed (their rows are gone with them)."""
        for node_id in node_ids:
            self._cache.drop(node_id)

    async def _update(self, node_id: str, change: Callable[[Reputation], Reputation]) -> Reputation:
        params = self.params

        def txn(conn: sa.Connection) -> Reputation:
            row = conn.execute(
                sa.select(node_reputation)
                .where(node_reputation.c.node_id == node_id)
                .with_for_update()
            ).one_or_none()
            before = Reputation(**row._asdict()) if row else Reputation.new(node_id, params)
            after = change(before)
            values = {c: getattr(after, c) for c in _COLUMNS}
            if row is None:
                conn.execute(node_reputation.insert().values(**values))
            else:
                conn.execute(
                    node_reputation.update()
                    .where(node_reputation.c.node_id == node_id)
                    .values(**values)
                )
            return after

        rep = await self.db.write(txn)
        self._cache.put(node_id, rep)
        return rep

    async def record(self, node_id: str, outcome: AuditOutcome) -> Reputation:
        """Fold one audit outcome into the node's scores; logs a disqualification."""
        now = self.clock()
        rep = await self._update(node_id, lambda r: apply_outcome(r, outcome, now, self.params))
        if rep.disqualified_at == now:
            self.disqualifications += 1
            log.warning(
                "node %s disqualified: audit score %.4f below %.4f after %d failed audits;"
                " its pieces will be repaired elsewhere",
                node_id,
                rep.audit_score,
                self.params.audit_dq_threshold,
                rep.audits_failed,
            )
        return rep

    async def record_reachable(self, node_id: str) -> Reputation:
        """A reachable node with no piece to audit: see :func:`apply_reachable`."""
        return await self._update(node_id, lambda r: apply_reachable(r, self.params))

    async def request_exit(self, node_id: str) -> Reputation:
        """Mark a graceful exit (idempotent: the first request's time is kept)."""
        now = self.clock()

        def change(r: Reputation) -> Reputation:
            if r.exit_requested_at is not None:
                return r
            return replace(r, exit_requested_at=now, exit_finished_at=None)

        return await self._update(node_id, change)

    async def finish_exit(self, node_id: str) -> Reputation:
        now = self.clock()

        def change(r: Reputation) -> Reputation:
            if r.exit_requested_at is None or r.exit_finished_at is not None:
                return r
            return replace(r, exit_finished_at=now)

        rep = await self._update(node_id, change)
        log.info("node %s drained: it holds no pieces any more and may shut down", node_id)
        return rep
