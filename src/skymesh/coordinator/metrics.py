"""The coordinator's Prometheus metrics (``GET /metrics``, admin).

API requests are counted by the route table (:meth:`CoordinatorMetrics.api_request`),
database transactions by the database (:class:`~.db.engine.TxnObserver`). The rest is
read at scrape time from what the subsystems already count: the background loops,
the durability chores' totals, orders signed, reputation; nodes by state and the
leases held are read just before a scrape (:meth:`CoordinatorMetrics.exposition`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from skymesh import metrics
from skymesh.coordinator.accounting.settlement import Settlements
from skymesh.coordinator.db.engine import TxnObserver
from skymesh.coordinator.durability.service import DurabilityService
from skymesh.coordinator.inference.metering import Meter
from skymesh.coordinator.lease_keeper import LeaseKeeper
from skymesh.coordinator.orders import OrderSigner
from skymesh.coordinator.overlay.service import OverlayService
from skymesh.loops import DrivenLoop
from skymesh.wire.registry import NodeStatus

#: Every state :func:`node_state` names, so each has a sample even at zero.
NODE_STATES = (
    "online",
    "unvetted",
    "suspended",
    "offline",
    "exiting",
    "exited",
    "disqualified",
    "not_admitted",
)


def node_state(n: NodeStatus) -> str:
    """One state per node, the first that holds: not admitted (operator revoked or
    region not allowed), disqualified, exited, exiting, offline, suspended (online but
    failing to answer audits: no new pieces), unvetted (online, not yet vetted by
    audits), online."""
    if not n.admitted:
        return "not_admitted"
    if n.disqualified:
        return "disqualified"
    if n.exit == "drained":
        return "exited"
    if n.exit:
        return "exiting"
    if not n.online:
        return "offline"
    if n.suspended:
        return "suspended"
    return "online" if n.vetted else "unvetted"


@dataclass(frozen=True)
class Watched:
    """The parts of a coordinator whose counters are read at scrape time."""

    loops: Mapping[str, DrivenLoop]  # every chore's loop, by name
    leases: LeaseKeeper
    overlay: OverlayService
    durability: DurabilityService
    orders: OrderSigner
    meter: Meter
    settlements: Settlements


class CoordinatorMetrics(TxnObserver):
    """Every coordinator metric, on the service's own registry."""

    def __init__(self) -> None:
        self.registry = reg = metrics.registry()
        self.api_requests = Counter(
            "skymesh_coordinator_api_requests",
            "API requests answered, by method, route (its declared path) and HTTP status.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.api_duration = Histogram(
            "skymesh_coordinator_api_request_duration_seconds",
            "Time to answer an API request, by method and route.",
            ["method", "route"],
            buckets=metrics.LATENCY_BUCKETS,
            registry=reg,
        )
        self.db_duration = Histogram(
            "skymesh_coordinator_db_transaction_duration_seconds",
            "Time a metadata transaction took, tries and backoff included, by kind (read, write).",
            ["kind"],
            buckets=metrics.LATENCY_BUCKETS,
            registry=reg,
        )
        self.db_transactions = Counter(
            "skymesh_coordinator_db_transactions",
            "Metadata transactions, by kind and outcome (ok, error).",
            ["kind", "outcome"],
            registry=reg,
        )
        self.db_retries = Counter(
            "skymesh_coordinator_db_retries",
            "Transaction tries run again, by kind and reason (conflict: a PostgreSQL"
            " serialization failure or deadlock; connection_lost).",
            ["kind", "reason"],
            registry=reg,
        )
        self.db_gave_up = Counter(
            "skymesh_coordinator_db_conflicts_exhausted",
            "Writes that still conflicted after their last try (answered 503).",
            ["kind"],
            registry=reg,
        )
        self.nodes = Gauge(
            "skymesh_coordinator_nodes",
            "Registered nodes by state (each node in one: online, unvetted, suspended,"
            " offline, exiting, exited, disqualified, not_admitted).",
            ["state"],
            registry=reg,
        )
        self._watched: Watched | None = None
        # each request and transaction counts under labels found once (metrics.Children)
        self._requests = metrics.Children(self.api_requests)
        self._durations = metrics.Children(self.api_duration)
        self._transactions = metrics.Children(self.db_transactions)
        self._txn_durations = metrics.Children(self.db_duration)

    # ------------------------------------------------------------ counted as they happen

    def api_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests(method, route, str(status)).inc()
        self._durations(method, route).observe(seconds)

    def transaction(self, kind: str, seconds: float, ok: bool) -> None:
        self._transactions(kind, "ok" if ok else "error").inc()
        self._txn_durations(kind).observe(seconds)

    def retry(self, kind: str, reason: str) -> None:
        self.db_retries.labels(kind, reason).inc()

    def gave_up(self, kind: str) -> None:
        self.db_gave_up.labels(kind).inc()

    # ------------------------------------------------------------ read at scrape time

    def watch(self, watched: Watched) -> None:
        """Read the loops, chores' totals, nodes and leases at each scrape."""
        self._watched = watched

        def every_loop() -> list[DrivenLoop]:  # the lease keeper's own loop too
            return [*watched.loops.values(), watched.leases.loop]

        self.registry.register(metrics.LoopCollector(every_loop))
        self.registry.register(metrics.Collect(lambda: list(_totals(watched))))

    async def exposition(self) -> bytes:
        """The metrics as text, with nodes by state read from the registry first."""
        watched = self._watched
        if watched is not None:
            counts = dict.fromkeys(NODE_STATES, 0)
            for n in (await watched.overlay.registry.node_list()).nodes:
                counts[node_state(n)] += 1
            for state, count in counts.items():
                self.nodes.labels(state).set(count)
        return metrics.exposition(self.registry)


def _totals(w: Watched) -> Iterable[Metric]:
    """What the subsystems count since start."""
    d = w.durability
    yield metrics.labelled_counter(
        "skymesh_coordinator_audits",
        "Audits of a node's piece chunk, by outcome.",
        "outcome",
        dict(d.auditor.outcomes),
    )
    r = d.repair_worker.totals
    yield metrics.labelled_counter(
        "skymesh_coordinator_repairs",
        "Segment repairs, by outcome (repaired; stale: the segment changed meanwhile; failed).",
        "outcome",
        {"repaired": r.repaired, "stale": r.stale, "failed": r.failed},
    )
    yield metrics.counter(
        "skymesh_coordinator_repair_pieces_rebuilt", "Pieces rebuilt by repairs.", r.pieces_rebuilt
    )
    yield metrics.labelled_counter(
        "skymesh_coordinator_repair_transferred_bytes",
        "Piece bytes repairs downloaded from and uploaded to nodes, by direction.",
        "direction",
        {"download": r.bytes_downloaded, "upload": r.bytes_uploaded},
    )
    g = d.gc.totals
    yield metrics.labelled_counter(
        "skymesh_coordinator_gc_pieces",
        "Garbage pieces handled, by outcome (deleted; missing: already gone; failed and"
        " deferred: kept for a retry; dropped: the node is gone).",
        "outcome",
        {
            "deleted": g.deleted,
            "missing": g.missing,
            "failed": g.failed,
            "deferred": g.deferred,
            "dropped": g.dropped,
        },
    )
    yield metrics.counter(
        "skymesh_coordinator_gc_deleted_bytes", "Bytes of garbage pieces deleted.", g.bytes
    )
    t = d.reconciler.totals
    yield metrics.labelled_counter(
        "skymesh_coordinator_retain_filters",
        "Retain filters sent to nodes, by outcome (sent, failed).",
        "outcome",
        {"sent": t.nodes_sent, "failed": t.nodes_failed},
    )
    yield metrics.counter(
        "skymesh_coordinator_retain_removed_pieces",
        "Pieces nodes reported removing under their previous retain filter.",
        t.removed_reported,
    )
    yield metrics.counter(
        "skymesh_coordinator_orders_signed", "Orders signed for nodes.", w.orders.signed
    )
    yield metrics.counter(
        "skymesh_coordinator_disqualifications",
        "Nodes disqualified by their audit score.",
        w.overlay.reputation.disqualifications,
    )
    yield metrics.counter(
        "skymesh_coordinator_compute_exclusions",
        "Nodes excluded from compute by spot checks.",
        w.overlay.compute.exclusions,
    )
    yield metrics.counter(
        "skymesh_coordinator_stale_nodes_expired",
        "Unvetted nodes forgotten after staying unseen.",
        w.overlay.registry.expired,
    )
    yield metrics.counter(
        "skymesh_coordinator_usage_reports_recorded",
        "Inference usage reports recorded for metering.",
        w.meter.recorded,
    )
    st = w.settlements
    yield metrics.labelled_counter(
        "skymesh_coordinator_settlements",
        "Get orders nodes settled, by outcome (accepted, duplicate, refused).",
        "outcome",
        {"accepted": st.accepted, "duplicate": st.duplicates, "refused": st.refused},
    )
    held = w.leases.held
    leases = GaugeMetricFamily(
        "skymesh_coordinator_lease_held",
        "1 for each background loop whose lease this coordinator holds, 0 for the others.",
        labels=["loop"],
    )
    for name in sorted(w.loops):
        leases.add_metric([name], 1.0 if name in held else 0.0)
    yield leases
