"""Compute reputation: how a node's inference answers compared with other operators' nodes.

A gateway runs a fraction of requests twice, on two nodes of different operators,
and reports whether the answers agreed (``inference/spotcheck.py`` checks the
evidence). Each report moves both nodes' **compute score**, a beta reputation
with forgetting as the audit score (:mod:`.reputation`): an agreement adds to
``alpha``, a disagreement to ``beta``, both decay by ``lam`` first, and a fresh
node starts at ``alpha = 1 / (1 - lam)``, so ``n`` disagreements in a row from a
fresh start leave a score of ``lam ** n`` (0.95: five fall below 0.8).

A disagreement implicates both nodes: the coordinator never sees prompts or
answers and cannot tell which one lied. So the score alone excludes nobody. A
node is **excluded** from compute routing when its score is below
``exclude_threshold`` *and* nodes of at least ``exclude_operators`` distinct other
operators *contradict* it: within ``window`` seconds, it disagreed with that
operator's nodes at least :data:`CONTRADICTION_MIN` times and more often than it
agreed with them (:func:`contradicting`, pure). An honest node disagrees only
with liars; a lying node disagrees with every honest operator. One lying operator,
however many nodes it runs, is one operator: it can drag an honest node's score
down but never exclude it, while it is itself excluded once checked against two
honest operators. Framing an honest node takes ``exclude_operators`` colluding
operators, each admitted by the administrator.

Exclusion is for good, as disqualification is: an excluded node gets no compute
requests, so nothing could ever raise its score again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import sqlalchemy as sa

from skymesh.coordinator.db.cache import RowCache
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import compute_reputation, spot_checks

log = logging.getLogger(__name__)

#: Disagreements with one operator's nodes before that operator can contradict a node:
#: one may be a fluke (hardware rounding), two in a window that outnumber the
#: agreements are a pattern.
CONTRADICTION_MIN = 2


@dataclass(frozen=True)
class ComputeParams:
    lam: float = 0.95
    exclude_threshold: float = 0.8
    exclude_operators: int = 2
    window: float = 7 * 24 * 3600.0  # seconds a spot check counts toward contradiction

    @property
    def alpha0(self) -> float:
        return 1.0 / (1.0 - self.lam)


@dataclass(frozen=True)
class ComputeStanding:
    """One node's compute reputation (a ``compute_reputation`` row)."""

    node_id: str
    alpha: float
    beta: float
    agreed: int = 0
    disagreed: int = 0
    excluded_at: float | None = None

    @classmethod
    def new(cls, node_id: str, params: ComputeParams) -> ComputeStanding:
        return cls(node_id=node_id, alpha=params.alpha0, beta=0.0)

    @property
    def score(self) -> float:
        total = self.alpha + self.beta
        return self.alpha / total if total > 0 else 1.0

    @property
    def checks(self) -> int:
        return self.agreed + self.disagreed

    @property
    def excluded(self) -> bool:
        return self.excluded_at is not None


def apply_check(st: ComputeStanding, agree: bool, params: ComputeParams) -> ComputeStanding:
    """The standing after one spot check (pure); exclusion is decided apart."""
    lam = params.lam
    return replace(
        st,
        alpha=lam * st.alpha + (1.0 if agree else 0.0),
        beta=lam * st.beta + (0.0 if agree else 1.0),
        agreed=st.agreed + agree,
        disagreed=st.disagreed + (not agree),
    )


def contradicting(outcomes: Mapping[str, tuple[int, int]]) -> list[str]:
    """The operators that contradict a node, from (agreements, disagreements) of its
    spot checks against each other operator's nodes in the window (pure)."""
    return sorted(
        op
        for op, (agreed, disagreed) in outcomes.items()
        if disagreed >= CONTRADICTION_MIN and disagreed > agreed
    )


def should_exclude(
    st: ComputeStanding, contradictors: Iterable[str], params: ComputeParams
) -> bool:
    """Whether the rule of the module docstring excludes this node now (pure)."""
    return (
        not st.excluded
        and st.score < params.exclude_threshold
        and len(set(contradictors)) >= params.exclude_operators
    )


@dataclass(frozen=True)
class SpotCheck:
    """A verified report: two orders for one request, on nodes of two operators."""

    serials: tuple[str, str]
    node_ids: tuple[str, str]
    operators: tuple[str, str]
    project_id: str
    agree: bool


_COLUMNS = [c.name for c in compute_reputation.columns]


def _outcomes(conn: sa.Connection, node_id: str, since: float) -> dict[str, tuple[int, int]]:
    s = spot_checks.c
    agreed = sa.func.sum(sa.case((s.agree, 1), else_=0))
    rows = conn.execute(
        sa.select(s.other_operator, agreed, sa.func.count())
        .where(s.node_id == node_id, s.reported_at >= since)
        .group_by(s.other_operator)
    ).all()
    return {op: (int(a), int(n) - int(a)) for op, a, n in rows}


def _fold(
    conn: sa.Connection, node_id: str, agree: bool, now: float, params: ComputeParams
) -> ComputeStanding:
    """Fold one outcome into ``node_id``'s row, excluding it when the rule says so (in the
    caller's transaction, after its ``spot_checks`` rows are in)."""
    where = compute_reputation.c.node_id == node_id
    row = conn.execute(sa.select(compute_reputation).where(where).with_for_update()).one_or_none()
    before = ComputeStanding(**row._asdict()) if row else ComputeStanding.new(node_id, params)
    after = apply_check(before, agree, params)
    contradictors = contradicting(_outcomes(conn, node_id, now - params.window))
    if should_exclude(after, contradictors, params):
        after = replace(after, excluded_at=now)
    values = {c: getattr(after, c) for c in _COLUMNS}
    if row is None:
        conn.execute(compute_reputation.insert().values(**values))
    else:
        conn.execute(compute_reputation.update().where(where).values(**values))
    return after


class ComputeReputationBook:
    """Compute standings, with an in-memory copy routing reads (reloaded when older
    than ``cache_ttl``, so replicas over one database see each other's reports)."""

    def __init__(
        self,
        db: Database,
        params: ComputeParams,
        *,
        clock: Callable[[], float] = time.time,
        cache_ttl: float = 2.0,
    ) -> None:
        self.db = db
        self.params = params
        self.clock = clock
        self._cache = RowCache(
            db, compute_reputation, lambda r: ComputeStanding(**r._asdict()), cache_ttl
        )
        self.exclusions = 0  # since start, for metrics

    async def load(self) -> None:
        await self._cache.load()

    async def refresh(self) -> dict[str, ComputeStanding]:
        """Every node with a standing (reloaded when the copy is stale)."""
        return await self._cache.refresh()

    async def excluded(self) -> set[str]:
        return {i for i, st in (await self.refresh()).items() if st.excluded}

    async def record(self, check: SpotCheck) -> tuple[bool, list[str]]:
        """Fold one verified spot check into both nodes' standings, all or nothing.

        Returns (recorded, node ids excluded by it); recorded is False when either
        order was reported before (each order is evidence once).
        """
        params = self.params
        now = self.clock()

        def txn(conn: sa.Connection) -> list[ComputeStanding] | None:
            s = spot_checks.c
            conn.execute(spot_checks.delete().where(s.reported_at < now - params.window))
            seen = conn.execute(sa.select(s.serial).where(s.serial.in_(check.serials))).first()
            if seen is not None:
                return None
            for me, other in ((0, 1), (1, 0)):
                conn.execute(
                    spot_checks.insert().values(
                        serial=check.serials[me],
                        node_id=check.node_ids[me],
                        other_node_id=check.node_ids[other],
                        other_operator=check.operators[other],
                        project_id=check.project_id,
                        agree=check.agree,
                        reported_at=now,
                    )
                )
            return [_fold(conn, n, check.agree, now, params) for n in check.node_ids]

        try:
            standings = await self.db.write(txn)
        except sa.exc.IntegrityError:  # a replica recorded one of these orders first
            return False, []
        if standings is None:
            return False, []
        excluded = []
        for st in standings:
            self._cache.put(st.node_id, st)
            if st.excluded_at == now:
                excluded.append(st.node_id)
                self.exclusions += 1
                log.warning(
                    "node %s excluded from compute: score %.3f below %.3f, contradicted by"
                    " nodes of %d or more other operators in spot checks",
                    st.node_id,
                    st.score,
                    params.exclude_threshold,
                    params.exclude_operators,
                )
        return True, excluded
