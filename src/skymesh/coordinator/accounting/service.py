"""The accounting subsystem: settlements from nodes, the hourly rollup loop, usage and
payouts for the admin (docs/operations.md "Accounting and payouts").

| route | auth | request -> response |
|---|---|---|
| POST /v1/nodes/settlements | node (signed batch) | Signed[SettlementBatch] -> SettlementResult |
| GET /v1/admin/accounting?by=&since=&until= | admin | AccountingUsage |
| GET /v1/admin/payouts?month=YYYY-MM | admin | PayoutReport |
| GET /v1/projects/self/usage?since=&until=&step= | project | ProjectUsage (the caller's) |
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from skymesh.coordinator.accounting.payouts import Prices, parse_month
from skymesh.coordinator.accounting.report import payout_report, project_usage, usage
from skymesh.coordinator.accounting.rollup import Rollup
from skymesh.coordinator.accounting.settlement import Settlements
from skymesh.coordinator.endpoints import Call, RouteTable, seconds_param
from skymesh.coordinator.keyring import Keyring
from skymesh.coordinator.lifecycle import Chore
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.errors import BadRequest
from skymesh.loops import DrivenLoop
from skymesh.wire import routes
from skymesh.wire.accounting import (
    AccountingUsage,
    PayoutReport,
    ProjectUsage,
    SettlementResult,
)
from skymesh.wire.signing import Signed

#: What ``OWN_USAGE`` covers when the caller names no ``since``: the last 30 days.
OWN_USAGE_SPAN = 30 * 86400.0


class AccountingService:
    """Settlements (``settlements``), the ``accounting`` loop (``rollup``), reports."""

    def __init__(self, m: Metainfo, keyring: Keyring) -> None:
        config = m.config
        self.m = m
        self.settlements = Settlements(m.db, m.registry, keyring, clock=m.clock)
        self.rollup = Rollup(
            m.db,
            interval=config.accounting_interval,
            offline_after=config.offline_after,
            clock=m.clock,
        )
        self.prices = Prices(
            storage_gb_month=config.price_storage_gb_month,
            egress_gb=config.price_egress_gb,
            compute_1k_tokens=config.price_compute_1k_tokens,
        )
        self.holdback = tuple(config.payout_holdback)
        self.loop = DrivenLoop("accounting", self.rollup.step)

    @property
    def chores(self) -> Sequence[Chore]:
        return (Chore(self.loop),)

    def add_routes(self, table: RouteTable) -> None:
        db = self.m.db

        async def settle(_call: Call, signed: Signed) -> SettlementResult:
            return await self.settlements.settle(signed)

        async def accounting(call: Call, _req: None) -> AccountingUsage:
            since = seconds_param(call.request, "since", 0.0)
            until = seconds_param(call.request, "until", math.inf)
            if until <= since:
                raise BadRequest("until must be after since")
            return await usage(db, call.request.query.get("by", "node"), since, until)

        async def payouts(call: Call, _req: None) -> PayoutReport:
            month = parse_month(call.request.query.get("month", ""))
            return await payout_report(db, month, self.prices, self.holdback)

        async def own_usage(call: Call, _req: None) -> ProjectUsage:
            now = self.m.clock()
            until = seconds_param(call.request, "until", now)
            since = seconds_param(call.request, "since", until - OWN_USAGE_SPAN)
            step = seconds_param(call.request, "step", 86400.0)
            if until <= since:
                raise BadRequest("until must be after since")
            return await project_usage(db, call.project_id, since, until, step, self.prices)

        table.add(routes.SETTLE_ORDERS, settle)
        table.add(routes.OWN_USAGE, own_usage)
        table.add(routes.ACCOUNTING_USAGE, accounting)
        table.add(routes.PAYOUTS, payouts)
