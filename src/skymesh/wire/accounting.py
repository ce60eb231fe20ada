"""The accounting protocol: nodes settle served ``get`` orders; admins read hourly
usage and monthly payouts (docs/operations.md "Accounting and payouts")."""

from __future__ import annotations

from skymesh.wire.base import Base
from skymesh.wire.signing import Signed

#: Settlements in one signed batch: each is a coordinator-signed order (~0.7 KiB as
#: JSON inside the node's envelope), and a NODE route's body is at most 64 KiB.
MAX_SETTLEMENTS = 64


class OrderSettlement(Base, frozen=True):
    """What a node served under one ``get`` order: the order exactly as the
    coordinator signed it, and the bytes served under it (at most its ``max_bytes``)."""

    order: Signed  # Signed[Order]
    served_bytes: int


class SettlementBatch(Base, frozen=True):
    """``POST /v1/nodes/settlements``, signed by the node: its final tallies."""

    node_id: str
    timestamp: float
    settlements: list[OrderSettlement]


class SettlementRefusal(Base, frozen=True):
    """A settlement not counted, and why (it will never be: the node forgets it)."""

    serial: str
    reason: str


class SettlementResult(Base, frozen=True):
    """Settlements counted now, those already counted before (by serial), and refusals."""

    accepted: int
    duplicates: int
    refused: list[SettlementRefusal] = []


class AccountingRow(Base, frozen=True):
    """Totals of one node, operator or project over a span of hours.

    ``byte_hours``: stored bytes integrated over time (bytes x hours). Node and
    operator rows count piece bytes on disk (erasure-coded), project rows the
    objects' sizes. ``egress_bytes`` are settled client reads, ``repair_egress_bytes``
    settled repair reads (node and operator rows only).
    """

    key: str  # the node id, operator name or project id
    name: str = ""  # the project's name, the node's operator
    byte_hours: float = 0.0
    stored_bytes: int = 0  # at the last tally of the span
    egress_bytes: int = 0
    repair_egress_bytes: int = 0
    audits_success: int = 0
    audits_failed: int = 0
    uptime_seconds: float = 0.0
    requests: int = 0  # inference requests metered
    tokens: int = 0  # inference tokens (prompt + completion)
    # estimated energy (docs/operations.md "Energy"): kWh at the plug and gCO2 of
    # storage (node and operator rows: the pieces they hold; project rows: its objects'
    # pieces) and of inference over ``compute_tokens_estimated`` of the ``tokens`` (those
    # served by nodes with an energy profile on record; the rest are not estimated)
    storage_kwh: float = 0.0
    storage_gco2: float = 0.0
    compute_kwh: float = 0.0
    compute_gco2: float = 0.0
    compute_tokens_estimated: int = 0


class AccountingUsage(Base, frozen=True):
    """``GET /v1/admin/accounting?by=&since=&until=``: rows over whole hours in the span."""

    by: str  # node | operator | project
    since: float
    until: float
    rows: list[AccountingRow]


class PayoutRow(Base, frozen=True):
    """One operator's pay for one month (amounts in USD at the configured prices)."""

    operator: str
    nodes: int
    storage_gb_month: float
    egress_gb: float
    repair_egress_gb: float
    tokens: int
    storage_amount: float
    egress_amount: float
    compute_amount: float
    gross: float
    held: float  # held back from nodes still in their first months (the schedule)
    net: float
    # estimated energy of its storage and inference (not priced; docs/operations.md "Energy")
    kwh: float = 0.0
    gco2: float = 0.0


class PayoutReport(Base, frozen=True):
    """``GET /v1/admin/payouts?month=YYYY-MM``: every operator with usage that month."""

    month: str
    hours: int
    price_storage_gb_month: float
    price_egress_gb: float
    price_compute_1k_tokens: float
    holdback: list[float]  # percent held back in a node's 1st, 2nd, ... month
    rows: list[PayoutRow]


class UsagePoint(Base, frozen=True):
    """A project's usage over one step of a :class:`ProjectUsage` series."""

    start: float  # unix seconds: the first hour of the step
    byte_hours: float = 0.0  # the objects' sizes integrated over the step (bytes x hours)
    stored_bytes: int = 0  # at the step's last tally
    egress_bytes: int = 0
    requests: int = 0  # inference requests
    tokens: int = 0  # inference tokens (prompt + completion)


class ProjectUsage(Base, frozen=True):
    """``GET /v1/projects/self/usage?since=&until=&step=`` (project key): the caller's own
    hourly rollups, summed per ``step`` seconds and over the whole span, and the span's
    cost at the coordinator's prices (the rates operators are paid: storage per GB-month
    of 730 hours, egress per GB, inference per 1000 tokens; amounts in USD)."""

    project_id: str
    since: float
    until: float
    step: float
    points: list[UsagePoint]  # steps with usage only, oldest first
    total: AccountingRow
    price_storage_gb_month: float
    price_egress_gb: float
    price_compute_1k_tokens: float
    storage_amount: float
    egress_amount: float
    compute_amount: float
    amount: float
