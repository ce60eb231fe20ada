"""Terminal views of metering and accounting: `skymesh usage`, `skymesh payouts` and
`skymesh routing` (rich tables, CSV).

Kept apart from ``cli.py`` so the command line stays a thin list of commands;
the numbers come from the coordinator's ``/v1/usage``, accounting, payout and
routing routes (admin token), never from its database directly.
"""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime

import aiohttp
from rich.console import Console
from rich.table import Table

from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.accounting import AccountingRow, AccountingUsage, PayoutReport
from skymesh.wire.metering import ProjectRouting, RoutingWeights, UsageSummary

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)


def parse_age(value: str) -> float | None:
    """Seconds in a span such as ``30m``, ``24h``, ``7d`` or ``2w``; None if it is not one."""
    m = _AGO.match(value.strip())
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


def parse_when(value: str, now: float | None = None) -> float:
    """Unix seconds from ``1732600000``, ``2026-11-26``, ``2026-11-26T10:00`` (UTC unless
    it names a zone) or an age such as ``30m``, ``24h``, ``7d``; ValueError says what works."""
    value = value.strip()
    now = time.time() if now is None else now
    if (age := parse_age(value)) is not None:
        return now - age
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"cannot read the time {value!r}: give unix seconds, an ISO date"
            " (2026-11-26 or 2026-11-26T10:00) or an age (30m, 24h, 7d)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_weights(pairs: list[str]) -> RoutingWeights:
    """``["latency=1", "carbon=5"]`` -> RoutingWeights; ValueError names the bad pair."""
    values: dict[str, float] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or name not in ("latency", "price", "carbon"):
            raise ValueError(f"{pair!r}: write NAME=NUMBER with NAME latency, price or carbon")
        try:
            values[name] = float(raw)
        except ValueError:
            raise ValueError(f"{pair!r}: {raw!r} is not a number") from None
    if not values:
        raise ValueError("give at least one weight, e.g. carbon=5")
    return RoutingWeights(**values)


async def fetch_usage(
    url: str, token: str, *, project: str, by: list[str], since: float, until: float | None
) -> UsageSummary:
    query: dict[str, str] = {"group_by": ",".join(by), "since": repr(since)}
    if until is not None:
        query["until"] = repr(until)
    if project:
        query["project"] = project
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        rpc = RpcClient(url, session, {"Authorization": f"Bearer {token}"})
        return await rpc.send(routes.USAGE, None, query=query)


async def fetch_routing(url: str, token: str, project: str) -> list[ProjectRouting]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        rpc = RpcClient(url, session, {"Authorization": f"Bearer {token}"})
        if project:
            return [await rpc.send(routes.GET_ROUTING, None, params={"project": project})]
        return (await rpc.send(routes.ALL_ROUTING, None)).projects


async def change_routing(
    url: str, token: str, project: str, weights: RoutingWeights | None
) -> ProjectRouting:
    """Set some weights of ``project``; ``weights`` None resets them to the defaults."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        rpc = RpcClient(url, session, {"Authorization": f"Bearer {token}"})
        params = {"project": project}
        if weights is None:
            return await rpc.send(routes.RESET_ROUTING, None, params=params)
        return await rpc.send(routes.SET_ROUTING, weights, params=params)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def show_usage(summary: UsageSummary, console: Console) -> None:
    """One row per group, then the total; cost in USD at the prices signed into each order."""
    span = f"since {_when(summary.since)}" if summary.since else "all time"
    if summary.until:
        span += f" until {_when(summary.until)}"
    table = Table(title=f"inference usage, {span}", title_justify="left")
    if "project" in summary.group_by:
        table.add_column("project")
        table.add_column("project id")
    if "model" in summary.group_by:
        table.add_column("model")
    if "node" in summary.group_by:
        table.add_column("node")
        table.add_column("region")
    for name in ("requests", "tokens in", "tokens out", "cost (USD)"):
        table.add_column(name, justify="right")
    for r in summary.rows:
        keys: list[str] = []
        if "project" in summary.group_by:
            keys += [r.project_name, r.project_id]
        if "model" in summary.group_by:
            keys.append(r.model)
        if "node" in summary.group_by:
            keys += [r.node_id[:16], r.region]
        table.add_row(*keys, *_numbers(r.requests, r.prompt_tokens, r.completion_tokens, r.cost))
    if len(summary.rows) != 1:
        pad = len(table.columns) - 4
        totals = _numbers(
            sum(r.requests for r in summary.rows),
            sum(r.prompt_tokens for r in summary.rows),
            sum(r.completion_tokens for r in summary.rows),
            sum(r.cost for r in summary.rows),
        )
        table.add_section()
        table.add_row("[bold]total[/]", *[""] * (pad - 1), *totals)
    console.print(table)


def _numbers(requests: int, tokens_in: int, tokens_out: int, cost: float) -> list[str]:
    return [f"{requests:,}", f"{tokens_in:,}", f"{tokens_out:,}", f"{cost:.6f}"]


def show_routing(projects: list[ProjectRouting], console: Console) -> None:
    table = Table(title="routing weights per project", title_justify="left")
    for name in ("project", "project id", "latency /s", "price /USD", "carbon /g", "set"):
        table.add_column(name, justify="right" if "/" in name else "left")
    for p in projects:
        table.add_row(
            p.name,
            p.project_id,
            f"{p.latency:g}",
            f"{p.price:g}",
            f"{p.carbon:g}",
            "yes" if p.custom else "default",
        )
    console.print(table)


GB = 1e9
PAYOUT_COLUMNS = (
    "operator",
    "nodes",
    "storage_gb_month",
    "egress_gb",
    "repair_egress_gb",
    "tokens",
    "storage_amount",
    "egress_amount",
    "compute_amount",
    "gross",
    "held",
    "net",
    "kwh",  # estimated, storage and inference
    "gco2",
)


async def fetch_accounting(
    url: str, token: str, *, by: str, project: str, since: float, until: float | None
) -> AccountingUsage:
    """The hourly rollups by ``by``; with ``project``, only that project's row (by project)."""
    query: dict[str, str] = {"by": by, "since": repr(since)}
    if until is not None:
        query["until"] = repr(until)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        rpc = RpcClient(url, session, {"Authorization": f"Bearer {token}"})
        found = await rpc.send(routes.ACCOUNTING_USAGE, None, query=query)
    if project and by == "project":
        rows = [r for r in found.rows if project in (r.key, r.name)]
        found = AccountingUsage(by=found.by, since=found.since, until=found.until, rows=rows)
    return found


async def fetch_payouts(url: str, token: str, month: str) -> PayoutReport:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        rpc = RpcClient(url, session, {"Authorization": f"Bearer {token}"})
        return await rpc.send(routes.PAYOUTS, None, query={"month": month})


def show_accounting(usage: AccountingUsage, console: Console) -> None:
    """Storage, egress, audits and uptime per node, operator or project."""
    span = f"hours from {_when(usage.since)}" if usage.since else "all hours"
    if usage.until:
        span += f" until {_when(usage.until)}"
    table = Table(title=f"storage and egress by {usage.by}, {span}", title_justify="left")
    table.add_column(usage.by)
    table.add_column("project" if usage.by == "project" else "operator")
    columns = ["GB-hours", "stored GB", "egress GB"]
    if usage.by != "project":
        columns += ["repair GB", "audits ok/failed", "uptime h"]
    columns += ["requests", "tokens"]
    for name in columns:
        table.add_column(name, justify="right")
    for r in usage.rows:
        cells = [
            r.key[:16] if usage.by == "node" else r.key,
            r.name if usage.by != "operator" else "",
            f"{r.byte_hours / GB:.3f}",
            f"{r.stored_bytes / GB:.3f}",
            f"{r.egress_bytes / GB:.3f}",
        ]
        if usage.by != "project":
            cells += [
                f"{r.repair_egress_bytes / GB:.3f}",
                f"{r.audits_success}/{r.audits_failed}",
                f"{r.uptime_seconds / 3600:.1f}",
            ]
        cells += [f"{r.requests:,}", f"{r.tokens:,}"]
        table.add_row(*cells)
    console.print(table)
    show_energy(usage, console)


def _energy(kwh: float, gco2: float) -> list[str]:
    return [f"{kwh:.4g}", f"{gco2:.4g}"]


def inference_energy(r: AccountingRow) -> list[str]:
    """kWh and gCO2 cells of a row's inference: "not estimated" when no token served
    had an energy profile on record, the covered share when only some had."""
    if r.tokens and not r.compute_tokens_estimated:
        return ["not estimated", "not estimated"]
    cells = _energy(r.compute_kwh, r.compute_gco2)
    if r.compute_tokens_estimated < r.tokens:
        share = f" ({r.compute_tokens_estimated:,} of {r.tokens:,} tokens)"
        cells = [c + share for c in cells]
    return cells


def show_energy(usage: AccountingUsage, console: Console) -> None:
    """Estimated kWh and gCO2 of storage and inference (docs/operations.md "Energy")."""
    table = Table(title=f"estimated energy by {usage.by}", title_justify="left")
    table.add_column(usage.by)
    for name in ("storage kWh", "storage gCO2", "compute kWh", "compute gCO2"):
        table.add_column(name, justify="right")
    for r in usage.rows:
        table.add_row(
            {"node": r.key[:16], "project": r.name or r.key}.get(usage.by, r.key),
            *_energy(r.storage_kwh, r.storage_gco2),
            *inference_energy(r),
        )
    console.print(table)


def payouts_csv(report: PayoutReport) -> str:
    """One header line, then one line per operator (amounts in USD, full precision)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["month", *PAYOUT_COLUMNS])
    for r in report.rows:
        writer.writerow([report.month, *(getattr(r, c) for c in PAYOUT_COLUMNS)])
    return out.getvalue()


def _cell(value: object) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def show_payouts(report: PayoutReport, console: Console) -> None:
    held = ", ".join(f"{p:g}%" for p in report.holdback) or "none"
    table = Table(
        title=(
            f"payouts {report.month} ({report.hours} h): storage {report.price_storage_gb_month:g}"
            f" USD/GB-month, egress {report.price_egress_gb:g} USD/GB, compute"
            f" {report.price_compute_1k_tokens:g} USD/1k tokens; held back by node month: {held}"
        ),
        title_justify="left",
    )
    for name in PAYOUT_COLUMNS:
        table.add_column(name.replace("_", " "), justify="left" if name == "operator" else "right")
    for r in report.rows:
        table.add_row(*(_cell(getattr(r, c)) for c in PAYOUT_COLUMNS))
    console.print(table)
