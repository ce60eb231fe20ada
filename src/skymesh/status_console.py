"""`skymesh status`: the network at a glance, on one screen (rich tables).

The coordinator answers ``GET /v1/admin/status`` with what it knows (nodes, the
durability tally, the repair queue, loops, compute, its recent warnings); the CLI
adds what no coordinator knows: whether each coordinator and each gateway it is
told of answers its ``/healthz``, and with which version (:func:`probe_all`).
:func:`verdict` says what needs attention, :func:`show_status` draws it all. Kept
apart from ``cli.py`` so the command line stays a thin list of commands.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from skymesh.config import GatewayConfig, load_config
from skymesh.errors import SkymeshError
from skymesh.wire.status import NetworkStatus

PROBE_TIMEOUT = aiohttp.ClientTimeout(total=5, sock_connect=3)
EVENTS_SHOWN = 10  # the newest warnings drawn (--json has all the coordinator keeps)
BAR_WIDTH = 30


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    """One coordinator or gateway, as its ``/healthz`` answered the CLI."""

    role: str  # "coordinator" or "gateway"
    url: str
    up: bool
    version: str = ""
    id: str = ""  # a coordinator's id, from its /v1/identity
    error: str = ""  # why it is counted down


class StatusScreen(msgspec.Struct, frozen=True, kw_only=True):
    """What ``skymesh status --json`` prints: the coordinator's answer and the probes."""

    network: NetworkStatus
    probes: list[Probe]
    problems: list[str]  # red: exit status 1
    warnings: list[str]  # yellow


# ---------------------------------------------------------------- probes


def home_gateways(home: Path) -> tuple[list[str], ssl.SSLContext | None]:
    """The gateways `skymesh up` runs from ``home`` (their configs' host and port), and a
    TLS context trusting its local CA when it made one."""
    configs = [home / "gateway" / "config.toml"]
    configs += sorted(home.glob("gateway-*/config.toml"))
    configs += sorted(home.glob("gateways/*/config.toml"))
    urls: list[str] = []
    for path in configs:
        if not path.exists():
            continue
        try:
            gw = load_config(GatewayConfig, path, environ={})
        except SkymeshError:
            continue
        host = "127.0.0.1" if gw.host in ("", "0.0.0.0", "::") else gw.host
        url = f"{'https' if gw.tls_cert else 'http'}://{host}:{gw.port}"
        if url not in urls:
            urls.append(url)
    ca = home / "tls" / "ca.pem"
    context = ssl.create_default_context(cafile=str(ca)) if ca.exists() else None
    return urls, context


async def probe(
    session: aiohttp.ClientSession,
    role: str,
    url: str,
    tls: ssl.SSLContext | None = None,
) -> Probe:
    """``GET /healthz`` (and a coordinator's ``/v1/identity``, for its id and version)."""
    base = url.rstrip("/")
    try:
        async with session.get(f"{base}/healthz", timeout=PROBE_TIMEOUT, ssl=tls or True) as r:
            if r.status != 200:
                return Probe(role=role, url=url, up=False, error=f"/healthz answered {r.status}")
            health = await r.json(content_type=None)
        version = str(health.get("version", "")) if isinstance(health, dict) else ""
        peer_id = ""
        if role == "coordinator":
            async with session.get(f"{base}/v1/identity", timeout=PROBE_TIMEOUT) as r:
                if r.status == 200:
                    who = await r.json(content_type=None)
                    version, peer_id = str(who.get("version", "")), str(who.get("id", ""))
        return Probe(role=role, url=url, up=True, version=version, id=peer_id)
    except (aiohttp.ClientError, TimeoutError, ValueError, ssl.SSLError) as e:
        return Probe(role=role, url=url, up=False, error=str(e) or type(e).__name__)


async def probe_all(
    session: aiohttp.ClientSession,
    status: NetworkStatus,
    gateways: Sequence[str],
    tls: ssl.SSLContext | None = None,
) -> list[Probe]:
    """Every current coordinator with a URL, and every gateway, at once."""
    coordinators = [k.url for k in status.coordinators if k.retired_at is None and k.url]
    return list(
        await asyncio.gather(
            *(probe(session, "coordinator", u) for u in coordinators),
            *(probe(session, "gateway", u, tls) for u in gateways),
        )
    )


# ---------------------------------------------------------------- what needs attention


def verdict(status: NetworkStatus, probes: Sequence[Probe]) -> tuple[list[str], list[str]]:
    """(problems, warnings): problems make ``skymesh status`` exit 1 (see docs/operations.md)."""
    problems: list[str] = []
    warnings: list[str] = []
    for p in probes:
        if not p.up:
            problems.append(f"{p.role} {p.url} is down ({p.error})")
    if not any(p.role == "gateway" for p in probes):
        warnings.append("no gateway known: pass --gateway URL (or --home of `skymesh up`)")
    for k in status.coordinators:
        if k.retired_at is None and not k.url:
            warnings.append(f"coordinator {k.coordinator_id[:12]} has no URL recorded")
    d, q = status.durability, status.repair_queue
    lost_total = d.lost_total if d is not None else 0
    if d is None:
        warnings.append("the coordinator's first durability tally is still being made")
    if lost_total or q.below_minimum:
        lost = max(lost_total, q.below_minimum)
        problems.append(f"{lost} segments below k healthy pieces: unreadable until nodes return")
    if q.queued:
        warnings.append(f"{q.queued} segments queued for repair")
    states = _state_totals(status)
    for state, what in (("offline", "offline"), ("suspended", "suspended")):
        if states.get(state):
            warnings.append(f"{states[state]} nodes {what}")
    if states.get("disqualified"):
        warnings.append(f"{states['disqualified']} nodes disqualified")
    if not status.nodes:
        problems.append("no node has joined")
    elif not any(states.get(s) for s in ("online", "unvetted")):
        problems.append("no node is online")
    for lease in status.leases.leases:
        if not lease.held:
            problems.append(f"loop {lease.name}: no coordinator holds its lease")
        elif _failing(lease.last_error_at, lease.last_run_at):
            problems.append(f"loop {lease.name} is failing: {lease.last_error}")
    return problems, warnings


def _failing(error_at: float | None, run_at: float | None) -> bool:
    return error_at is not None and (run_at is None or error_at > run_at)


def _state_totals(status: NetworkStatus) -> dict[str, int]:
    totals: dict[str, int] = {}
    for g in status.nodes:
        for state, n in g.states.items():
            totals[state] = totals.get(state, 0) + n
    return totals


def screen(status: NetworkStatus, probes: list[Probe]) -> StatusScreen:
    problems, warnings = verdict(status, probes)
    return StatusScreen(network=status, probes=probes, problems=problems, warnings=warnings)


# ---------------------------------------------------------------- drawing


def show_status(s: StatusScreen, console: Console) -> None:
    """The whole screen: verdict, roles, nodes, segments, loops, compute, warnings."""
    st = s.network
    console.print(
        f"[bold]skymesh status[/] at {_when(st.generated_at)}, from coordinator"
        f" {st.coordinator_id[:12]} ({st.version})"
    )
    if s.problems:
        for p in s.problems:
            console.print(f"[bold red]✗ {escape(p)}[/]")
    else:
        console.print("[bold green]✓ healthy[/]")
    for w in s.warnings:
        console.print(f"[yellow]! {escape(w)}[/]")
    _roles(s, console)
    _nodes(st, console)
    _segments(st, console)
    _loops(st, console)
    _compute(st, console)
    _events(st, console)


def _up(up: bool | None, text: str = "") -> str:
    if up is None:
        return f"[dim]{text or 'unknown'}[/]"
    return f"[green]{text or 'up'}[/]" if up else f"[bold red]{text or 'DOWN'}[/]"


def _roles(s: StatusScreen, console: Console) -> None:
    st = s.network
    table = Table("role", "id", "url", "state", "version", title="roles", title_justify="left")
    probed = {(p.role, p.url): p for p in s.probes}
    for k in st.coordinators:
        cid = k.coordinator_id[:12] + (
            " (answered)" if k.coordinator_id == st.coordinator_id else ""
        )
        if k.retired_at is not None:
            table.add_row("coordinator", cid, k.url, "[dim]retired[/]", "")
            continue
        p = probed.get(("coordinator", k.url))
        if p is None:
            table.add_row("coordinator", cid, k.url or "-", _up(None, "no URL"), "")
        else:
            table.add_row("coordinator", cid, k.url, _up(p.up), p.version)
    gateways = [p for p in s.probes if p.role == "gateway"]
    for p in gateways:
        table.add_row("gateway", "", p.url, _up(p.up), p.version)
    if not gateways:
        table.add_row("gateway", "", "none known", _up(None, "pass --gateway"), "")
    states = _state_totals(st)
    versions: dict[str, int] = {}
    for g in st.nodes:
        for v, n in g.versions.items():
            versions[v] = versions.get(v, 0) + n
    serving = sum(states.get(x, 0) for x in ("online", "unvetted", "suspended"))
    table.add_row(
        "nodes",
        f"{sum(states.values())} registered",
        "",
        _up(serving > 0, f"{serving} up") if states else _up(False, "none"),
        ", ".join(f"{v or '?'} ×{n}" for v, n in sorted(versions.items())),
    )
    console.print(table)


_NODE_COLUMNS = (
    ("online", "online", "green"),
    ("unvetted", "unvetted", ""),
    ("suspended", "susp.", "yellow"),
    ("offline", "offline", "red"),
    ("exiting", "draining", "yellow"),
    ("disqualified", "disq.", "red"),
)


def _nodes(st: NetworkStatus, console: Console) -> None:
    if not st.nodes:
        console.print("[bold red]no nodes[/]")
        return
    table = Table("region", "operator", title="nodes", title_justify="left")
    for _, header, _ in _NODE_COLUMNS:
        table.add_column(header, justify="right")
    table.add_column("other", justify="right")
    table.add_column("used", justify="right")
    table.add_column("free", justify="right")
    shown = {state for state, _, _ in _NODE_COLUMNS}
    for g in st.nodes:
        cells = []
        for state, _, colour in _NODE_COLUMNS:
            n = g.states.get(state, 0)
            cells.append(f"[{colour}]{n}[/]" if n and colour else str(n))
        other = ", ".join(f"{n} {s}" for s, n in g.states.items() if s not in shown)
        table.add_row(
            escape(g.region),
            escape(g.operator),
            *cells,
            other,
            _bytes(g.used_bytes),
            _bytes(max(0, g.capacity_bytes - g.used_bytes)),
        )
    console.print(table)


def _segments(st: NetworkStatus, console: Console) -> None:
    d, q = st.durability, st.repair_queue
    if d is None:
        parts = ["first tally being made, ask again shortly"]
    else:
        age = st.generated_at - d.generated_at
        parts = [f"{d.segments} in pieces, {d.inline_segments} inline (tally {age:.0f} s old)"]
    queue = f"repair queue {q.queued}"
    if q.histogram:
        queue += " (by healthy pieces: " + ", ".join(f"{h}: {n}" for h, n in q.histogram.items())
        queue += ")"
    if q.below_minimum:
        queue += f", [bold red]{q.below_minimum} below k[/]"
    parts.append(queue)
    if d is not None:
        parts.append(f"[bold red]{d.lost_total} lost[/]" if d.lost_total else "none lost")
    console.print("[bold]segments[/] " + "; ".join(parts))
    if d is None:
        return
    for sh in d.schemes:
        sc = sh.scheme
        console.print(f"  scheme {sc.k}/{sc.repair}/{sc.optimal}/{sc.total}: {sh.segments}")
        top = max(sh.histogram.values(), default=1)
        for healthy, count in sorted(sh.histogram.items(), reverse=True):
            colour = "red" if healthy < sc.k else "yellow" if healthy <= sc.repair else "green"
            bar = "█" * max(1, round(BAR_WIDTH * count / top))
            console.print(f"  {healthy:>4} healthy [{colour}]{bar}[/] {count}")
    for seg in d.lost:
        console.print(
            f"  [red]lost[/] {escape(seg.bucket)}/{escape(seg.key)} part {seg.position.part}"
            f" segment {seg.position.index}: {seg.healthy} healthy of k={seg.scheme.k}"
        )


def _loops(st: NetworkStatus, console: Console) -> None:
    table = Table(
        "loop",
        "holder",
        "last run",
        "runs",
        "result",
        title="background loops",
        title_justify="left",
    )
    now = st.generated_at
    for lease in st.leases.leases:
        holder = lease.holder.split("/", 1)[0][:12] if lease.held else "[bold red]none[/]"
        if lease.held_here:
            holder += " (here)"
        if lease.runs is None:  # another coordinator runs it: its counts are its own
            last, runs, result = "[dim]ask its holder[/]", "", ""
        else:
            last = _ago(now, lease.last_run_at)
            runs = str(lease.runs)
            if _failing(lease.last_error_at, lease.last_run_at):
                result = f"[bold red]failing: {escape(lease.last_error)}[/]"
            elif lease.failures:
                result = f"ok ({lease.failures} failed earlier)"
            else:
                result = "[green]ok[/]" if lease.runs else ""
        table.add_row(lease.name, holder, last, runs, result)
    console.print(table)


def _compute(st: NetworkStatus, console: Console) -> None:
    if not st.compute:
        console.print("[dim]no compute node serves inference[/]")
        return
    table = Table(
        "node", "region", "operator", "models", "queue/slots +wait", "tokens/s", "latency",
        title="compute", title_justify="left",
    )  # fmt: skip
    for c in st.compute:
        a = c.advert
        table.add_row(
            c.node_id[:12],
            escape(c.region),
            escape(c.operator),
            escape(", ".join(m.name for m in a.models)),
            f"{a.queue_depth}/{a.concurrency} +{a.queue_limit}",
            f"{a.tokens_per_second:.1f}" if a.tokens_per_second else "-",
            f"{a.latency_ms:.0f} ms" if a.latency_ms else "-",
        )
    console.print(table)


def _events(st: NetworkStatus, console: Console) -> None:
    if not st.events:
        console.print("[dim]no recent warnings on the answering coordinator[/]")
        return
    console.print(f"[bold]recent warnings[/] (coordinator {st.coordinator_id[:12]}, newest last)")
    for e in st.events[-EVENTS_SHOWN:]:
        colour = "yellow" if e.level == "WARNING" else "red"
        console.print(
            f"  {_when(e.at)} [{colour}]{e.level}[/] {e.logger}: {escape(e.message)}",
            highlight=False,
            no_wrap=True,
            overflow="ellipsis",
        )


# ---------------------------------------------------------------- formats


def console() -> Console:
    """The terminal's width on a terminal; 160 columns when piped (no colour then)."""
    on_terminal = Console()
    return on_terminal if on_terminal.is_terminal else Console(width=160)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(now: float, t: float | None) -> str:
    if t is None:
        return "never"
    s = max(0.0, now - t)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago"


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
