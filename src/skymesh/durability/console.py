"""Terminal views of durability: the coordinator's report and the model's results (rich tables).

Kept apart from ``cli.py`` so the command line stays a thin list of commands, and
apart from ``model.py`` so the maths does not depend on a terminal library.
"""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from skymesh.durability.model import (
    ModelParams,
    SimResult,
    poisson_loss,
    threshold_loss_per_year,
    whitepaper_loss_per_year,
)
from skymesh.wire.durability import DurabilityReport, SegmentHealth
from skymesh.wire.metainfo import Scheme


def _scheme(s: Scheme) -> str:
    return f"{s.k}/{s.repair}/{s.optimal}/{s.total}"


def show_report(report: DurabilityReport, console: Console) -> None:
    """Segments by healthy pieces per scheme; then those queued for repair and those lost."""
    console.print(
        f"[bold]{report.segments}[/] segments in pieces ({report.inline_segments} inline),"
        f" [bold]{report.healthy_nodes}[/] of {report.nodes} nodes healthy"
    )
    for sh in report.schemes:
        table = Table(
            title=f"scheme {_scheme(sh.scheme)}: {sh.segments} segments",
            title_justify="left",
        )
        table.add_column("healthy pieces", justify="right")
        table.add_column("segments", justify="right")
        table.add_column("state")
        for healthy, count in sorted(sh.histogram.items(), reverse=True):
            if healthy < sh.scheme.k:
                state = "[red]lost (below k)[/]"
            elif healthy <= sh.scheme.repair:
                state = "[yellow]at or below repair: queued[/]"
            elif healthy < sh.scheme.optimal:
                state = "degraded"
            else:
                state = "[green]full[/]"
            table.add_row(str(healthy), str(count), state)
        console.print(table)
        console.print(f"  at or below repair threshold: {sh.at_or_below_repair};  lost: {sh.lost}")
    _segments_table(
        console, "at or below their repair threshold", report.at_risk, report.at_risk_total
    )
    _segments_table(console, "LOST: fewer than k healthy pieces", report.lost, report.lost_total)
    if report.lost_total:
        console.print(
            f"[bold red]{report.lost_total} segment(s) cannot be read[/] until enough of their"
            " nodes come back online; bring offline nodes back first."
        )
    else:
        console.print("[green]no segment is lost[/]")


def _segments_table(console: Console, title: str, rows: list[SegmentHealth], total: int) -> None:
    if not total:
        return
    shown = f" (first {len(rows)} of {total})" if total > len(rows) else ""
    table = Table(title=f"{total} segment(s) {title}{shown}", title_justify="left")
    for col in ("bucket", "key", "part/index", "healthy", "stored", "scheme"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.bucket,
            r.key,
            f"{r.position.part}/{r.position.index}",
            str(r.healthy),
            str(r.stored),
            _scheme(r.scheme),
        )
    console.print(table)


def _durability(loss: float) -> str:
    """``1 - loss`` as a percentage, with enough nines to show the first digit that is not one."""
    if loss <= 0:
        return "100%"
    if loss >= 1:
        return "0%"
    digits = max(2, min(40, math.floor(-math.log10(loss)) + 1))
    value = (Decimal(1) - Decimal(loss)) * 100
    return f"{value:.{digits}f}%"


def show_simulation(result: SimResult, console: Console) -> None:
    """The Monte-Carlo estimate next to the closed forms it should agree with."""
    p: ModelParams = result.params
    period = "year" if p.per_year else "month"
    console.print(
        f"scheme {p.k}/{p.repair}/{p.optimal}/{p.total} on {p.nodes} nodes,"
        f" {100 * p.failure_rate:g}% of nodes failing per {period},"
        f" repair in {p.repair_hours:g} h; {p.segments} segments x {p.years:g} years"
        f" (seed {p.seed})"
    )
    closed = threshold_loss_per_year(p)
    exact = threshold_loss_per_year(p, exact=True)
    wp = whitepaper_loss_per_year(p)
    lo, hi = result.interval
    table = Table(title="losing a segment, per segment and year", title_justify="left")
    table.add_column("method")
    table.add_column("P(loss)", justify="right")
    table.add_column("durability", justify="right")
    table.add_column("repair traffic", justify="right")
    table.add_row(
        "Monte-Carlo",
        f"{result.loss_per_year:.3g}",
        _durability(result.loss_per_year),
        f"{100 * result.traffic_share:.1f}%",
    )
    table.add_row(
        "closed form (Poisson)",
        f"{closed.loss_per_year:.3g}",
        _durability(closed.loss_per_year),
        f"{100 * closed.traffic_share:.1f}%",
    )
    table.add_row(
        "closed form (binomial)", f"{exact.loss_per_year:.3g}", _durability(exact.loss_per_year), ""
    )
    table.add_row("whitepaper, n = total", f"{wp:.3g}", _durability(wp), "")
    console.print(table)
    console.print(
        f"Monte-Carlo: {result.losses} losses and {result.repairs} repairs in"
        f" {result.segment_years:g} segment-years; P(loss) 95% interval"
        f" {-math.expm1(-lo):.3g} .. {-math.expm1(-hi):.3g}."
        " Repair traffic: bytes repair downloads and uploads per year, as a share of the bytes"
        " stored."
    )
    console.print(
        f"Closed forms: a piece fails within one repair time with p = {p.window_failure:.3g}."
        " Threshold repair: a window opens at min(repair, optimal - 1) healthy pieces and loses"
        " the segment when more than that minus k fail before it closes. Whitepaper: P(D) ="
        f" {_durability(poisson_loss(p.total, p.k, p.window_failure))} per repair"
        f" time, more than {p.total - p.k} of {p.total} failing; compounded over a year."
        f" The network sees {result.node_failures_per_year:.0f} node failures a year."
    )


def simulation_json(result: SimResult) -> dict[str, object]:
    """What ``skymesh simulate --json`` prints: the scenario, the Monte-Carlo counts and
    estimate, and the closed forms the table sets beside it."""
    p = result.params
    closed = threshold_loss_per_year(p)
    exact = threshold_loss_per_year(p, exact=True)
    lo, hi = result.interval
    return {
        "params": dataclasses.asdict(p),
        "monte_carlo": {
            "segment_years": result.segment_years,
            "losses": result.losses,
            "repairs": result.repairs,
            "pieces_moved": result.pieces_moved,
            "loss_per_year": result.loss_per_year,
            "loss_per_year_95": [-math.expm1(-lo), -math.expm1(-hi)],
            "traffic_share": result.traffic_share,
        },
        "closed_form_poisson": {
            "loss_per_year": closed.loss_per_year,
            "traffic_share": closed.traffic_share,
        },
        "closed_form_binomial": {"loss_per_year": exact.loss_per_year},
        "whitepaper_loss_per_year": whitepaper_loss_per_year(p),
    }
