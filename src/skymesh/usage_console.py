"""Terminal views of metering: `skymesh usage` and `skymesh routing` (rich tables).

Kept apart from ``cli.py`` so the command line stays a thin list of commands;
the numbers come from the coordinator's ``/v1/usage`` and routing routes
(admin token), never from its database directly.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import aiohttp
from rich.console import Console
from rich.table import Table

from skymesh.rpc import RpcClient
from skymesh.wire import routes
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
