"""Payout arithmetic: an operator's month of storage, egress and compute, priced.

Pure functions over each node's month (the hourly rollups summed):

- storage in GB-months: the stored bytes integrated over the month (byte-seconds)
  divided by the month's length, in GB (10^9 bytes): a node holding 1 GB all month
  earns 1 GB-month; one that joins half way through with 1 GB earns 0.5;
- egress in GB: settled client reads and repair reads, at one price;
- compute in tokens (prompt + completion), priced per 1000;
- estimated energy (kWh, gCO2) of the operator's storage and inference, beside the
  pay and not priced: for the operator to see and report;
- a share held back from nodes in their first months: ``holdback[i]`` percent in
  the node's month ``i`` counted from 0 at the month it joined (none past the list).
  Like Storj's held amount, it keeps an operator's stake in staying while its
  nodes are new; what is held is reported, its later release is the payer's step.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from skymesh.errors import BadRequest
from skymesh.wire.accounting import PayoutRow

GB = 1e9
#: The hours of a GB-month when a span is not a calendar month (a project's usage):
#: a year's hours over twelve, as cloud price lists count it.
MONTH_HOURS = 730.0


@dataclass(frozen=True)
class Prices:
    storage_gb_month: float
    egress_gb: float
    compute_1k_tokens: float

    def amounts(
        self, byte_hours: float, egress_bytes: int, tokens: int
    ) -> tuple[float, float, float]:
        """(storage, egress, compute) amounts of a span's usage: storage in GB-months of
        :data:`MONTH_HOURS`."""
        return (
            byte_hours / MONTH_HOURS / GB * self.storage_gb_month,
            egress_bytes / GB * self.egress_gb,
            tokens / 1000 * self.compute_1k_tokens,
        )


@dataclass(frozen=True)
class NodeMonth:
    """One node's month, from the hourly rollups."""

    node_id: str
    operator: str
    joined_at: float | None  # None: the node is no longer registered (no hold back)
    byte_seconds: float
    egress_bytes: int
    repair_egress_bytes: int
    tokens: int
    # estimated energy of the month (accounting.energy): storage and inference together
    kwh: float = 0.0
    gco2: float = 0.0


@dataclass(frozen=True)
class Month:
    name: str  # YYYY-MM
    year: int
    month: int
    start: float  # unix seconds, UTC
    end: float

    @property
    def hours(self) -> int:
        return round((self.end - self.start) / 3600)


def parse_month(value: str) -> Month:
    """``"2026-12"`` -> the month in UTC; BadRequest for anything else."""
    try:
        year_s, month_s = value.split("-")
        year, month = int(year_s), int(month_s)
        if len(year_s) != 4 or len(month_s) != 2 or not 1 <= month <= 12:
            raise ValueError
    except ValueError:
        raise BadRequest(f"month must be YYYY-MM, got {value!r}") from None
    days = calendar.monthrange(year, month)[1]
    start = datetime(year, month, 1, tzinfo=UTC).timestamp()
    return Month(value, year, month, start, start + days * 86_400)


def holdback_percent(joined_at: float | None, month: Month, schedule: Sequence[float]) -> float:
    """Percent held back of a node's pay for ``month`` (0 for an unknown node)."""
    if joined_at is None:
        return 0.0
    joined = datetime.fromtimestamp(joined_at, UTC)
    age = max((month.year - joined.year) * 12 + month.month - joined.month, 0)
    return float(schedule[age]) if age < len(schedule) else 0.0


def payouts(
    node_months: Iterable[NodeMonth], month: Month, prices: Prices, schedule: Sequence[float]
) -> list[PayoutRow]:
    """One row per operator, sorted by name."""
    by_operator: dict[str, list[float]] = {}
    nodes: dict[str, set[str]] = {}
    tokens: dict[str, int] = {}
    energy: dict[str, tuple[float, float]] = {}
    for n in node_months:
        storage = n.byte_seconds / (month.hours * 3600) / GB
        egress = n.egress_bytes / GB
        repair = n.repair_egress_bytes / GB
        amounts = (
            storage * prices.storage_gb_month,
            (egress + repair) * prices.egress_gb,
            n.tokens / 1000 * prices.compute_1k_tokens,
        )
        gross = sum(amounts)
        held = gross * holdback_percent(n.joined_at, month, schedule) / 100
        totals = by_operator.setdefault(n.operator, [0.0] * 7)
        for i, v in enumerate((storage, egress, repair, *amounts, held)):
            totals[i] += v
        nodes.setdefault(n.operator, set()).add(n.node_id)
        tokens[n.operator] = tokens.get(n.operator, 0) + n.tokens
        kwh, gco2 = energy.get(n.operator, (0.0, 0.0))
        energy[n.operator] = (kwh + n.kwh, gco2 + n.gco2)
    rows = []
    for operator in sorted(by_operator):
        storage, egress, repair, s_amt, e_amt, c_amt, held = by_operator[operator]
        gross = s_amt + e_amt + c_amt
        rows.append(
            PayoutRow(
                operator=operator,
                nodes=len(nodes[operator]),
                storage_gb_month=storage,
                egress_gb=egress,
                repair_egress_gb=repair,
                tokens=tokens[operator],
                storage_amount=s_amt,
                egress_amount=e_amt,
                compute_amount=c_amt,
                gross=gross,
                held=held,
                net=gross - held,
                kwh=energy[operator][0],
                gco2=energy[operator][1],
            )
        )
    return rows
