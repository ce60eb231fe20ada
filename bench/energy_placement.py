"""Storage emissions of a bucket placed with and without the low-carbon weight.

    .venv/bin/python -m bench.energy_placement [--objects 24] [--object-mib 2] [--drawn 1000]

Starts an in-process network (`skymesh.testing.planet`) of 24 nodes over four
regions whose declared energy profiles differ (PUE, grid gCO2/kWh, watts per TB
stored: :data:`REGION_GRID`, :data:`SITES`), makes two buckets, ``plain`` and
``low-carbon`` (tagged ``skymesh:placement=low-carbon``), and puts the same number of
objects of the same size into each, alternating. The live network has audited no
node yet, so every node is new; :func:`drawn` then runs the placement alone over the
same mix for many more segments, with new nodes, vetted ones, and five times as many.
From where every piece went:

- **gCO2 and Wh per GB-month** of object data: each piece's bytes held for a month on
  its node, through accounting's own formula (``storage_estimate``: bytes x time x
  watts per TB x PUE x grid intensity), summed over the pieces and divided by the
  objects' bytes, so the erasure code's expansion is counted;
- **the spread** it cost: distinct regions and operators per segment (min / mean), the
  pieces left after the worst single region or operator outage (min over segments,
  against ``k``), and the share of pieces in each region;
- **the durability model's** loss probability per segment-year for the scheme used
  (``skymesh.durability.model``, 2 % of nodes failing a month, 6 h repair). That
  model treats node failures as independent, so placement cannot change it: the
  outage rows are where a weighting that bunched pieces would show.

Measures, never asserts. The live placement draws at random (the coordinator seeds
itself); the placement-only draws use a fixed seed, so they repeat exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.accounting.energy import storage_estimate
from skymesh.coordinator.accounting.payouts import GB, MONTH_HOURS
from skymesh.coordinator.db.schema import objects, pieces, segments
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.placement import plan_segment
from skymesh.durability.model import ModelParams, threshold_loss_per_year
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread

GiB = 1024**3
BLOCK = 64 * 1024 - 16  # the coordinator's default block size (CoordinatorConfig)

# Grid intensity (gCO2/kWh) of each region's main grid, of the order of the real ones:
# hydro and nuclear in the Nordics, a mixed western European grid, the US east coast,
# a coal-heavy south Asian grid.
REGION_GRID: dict[str, float] = {
    "eu-north": 40.0,
    "eu-west": 280.0,
    "us-east": 380.0,
    "ap-south": 680.0,
}


@dataclass(frozen=True)
class Site:
    """What kind of place a node runs in: the same six in every region."""

    name: str
    pue: float
    grid_factor: float  # x the region's grid: nodes sit on different local grids
    watts_per_tb: float


SITES: tuple[Site, ...] = (
    Site("hyperscale, renewables nearby", 1.1, 0.3, 1.5),
    Site("hyperscale", 1.15, 1.0, 1.5),
    Site("colocation", 1.5, 0.8, 2.5),
    Site("colocation, older", 1.7, 1.2, 3.0),
    Site("office rack", 1.8, 1.0, 4.0),
    Site("home NAS", 1.0, 1.3, 8.0),
)
OPERATORS = 7  # node i belongs to op-(i % 7): every operator spans several regions
TAG = {"TagSet": [{"Key": "skymesh:placement", "Value": "low-carbon"}]}
BUCKETS = {"plain": None, "low-carbon": TAG}
MODEL_FAILURES = 0.02  # of nodes per month, the model's default
BIG_COPIES = 5  # the drawn-only larger network: 120 nodes, 30 a region


@dataclass(frozen=True)
class NodeProfile:
    region: str
    operator: str
    pue: float
    grid_gco2_kwh: float
    watts_per_tb: float


def node_mix(copies: int = 1) -> list[NodeProfile]:
    """Every site in every region, ``copies`` times over (24 nodes each): node i is in
    region i % 4, so each region holds every kind of site."""
    regions = list(REGION_GRID)
    mix = []
    for i in range(len(regions) * len(SITES) * copies):
        region, site = regions[i % len(regions)], SITES[i // len(regions) % len(SITES)]
        mix.append(
            NodeProfile(
                region=region,
                operator=f"op-{i % OPERATORS}",
                pue=site.pue,
                grid_gco2_kwh=round(REGION_GRID[region] * site.grid_factor, 1),
                watts_per_tb=site.watts_per_tb,
            )
        )
    return mix


@dataclass(frozen=True)
class Piece:
    segment: tuple[str, int, int]  # stream, part, index
    node_id: str
    size: int
    scheme: tuple[int, int, int, int]  # k, repair, optimal, total

    @property
    def k(self) -> int:
        return self.scheme[0]


def footprint(
    placed: Iterable[Piece], nodes: Mapping[str, NodeProfile], object_bytes: int
) -> tuple[float, float]:
    """(gCO2, Wh) per GB-month of object data held as ``placed``."""
    month_s = MONTH_HOURS * 3600.0
    gco2 = kwh = 0.0
    for p in placed:
        n = nodes[p.node_id]
        e = storage_estimate(p.size * month_s, n.watts_per_tb, n.pue, n.grid_gco2_kwh)
        gco2 += e.gco2
        kwh += e.kwh
    gb = object_bytes / GB
    return gco2 / gb, kwh * 1000.0 / gb


def spread(placed: Sequence[Piece], nodes: Mapping[str, NodeProfile]) -> dict[str, Any]:
    """Per segment: distinct regions and operators, and pieces left after the worst
    single region or operator outage (each with the segment's ``k``)."""
    by_segment: dict[tuple[str, int, int], list[Piece]] = defaultdict(list)
    for p in placed:
        by_segment[p.segment].append(p)
    regions, operators, after_region, after_operator, margins = [], [], [], [], []
    for seg in by_segment.values():
        r = Counter(nodes[p.node_id].region for p in seg)
        o = Counter(nodes[p.node_id].operator for p in seg)
        regions.append(len(r))
        operators.append(len(o))
        after_region.append(len(seg) - max(r.values()))
        after_operator.append(len(seg) - max(o.values()))
        margins.append(min(after_region[-1], after_operator[-1]) - seg[0].k)
    share = Counter(nodes[p.node_id].region for p in placed)
    return {
        "segments": len(by_segment),
        "pieces_per_segment": statistics.mean(len(s) for s in by_segment.values()),
        "regions_min": min(regions),
        "regions_mean": statistics.mean(regions),
        "operators_min": min(operators),
        "operators_mean": statistics.mean(operators),
        "left_after_region_min": min(after_region),
        "left_after_operator_min": min(after_operator),
        "k": min(s[0].k for s in by_segment.values()),
        "schemes": sorted({s[0].scheme for s in by_segment.values()}),
        "outage_lost": sum(1 for m in margins if m < 0),
        "region_share": {r: c / len(placed) for r, c in sorted(share.items())},
    }


def _pieces(planet: PlanetThread, bucket: str) -> tuple[list[Piece], int]:
    """Every piece of ``bucket``'s objects with its segment's piece size, and the objects' bytes."""
    c = planet.planet.coordinator
    assert c is not None
    seg = sa.and_(
        segments.c.stream_id == pieces.c.stream_id,
        segments.c.part == pieces.c.part,
        segments.c.idx == pieces.c.idx,
    )
    q = (
        sa.select(
            pieces.c.stream_id,
            pieces.c.part,
            pieces.c.idx,
            pieces.c.node_id,
            segments.c.piece_size,
            segments.c.k,
            segments.c.repair,
            segments.c.optimal,
            segments.c.total,
        )
        .select_from(pieces.join(segments, seg))
        .join(objects, objects.c.stream_id == pieces.c.stream_id)
        .where(objects.c.bucket == bucket)
    )
    size_q = sa.select(sa.func.sum(objects.c.size)).where(objects.c.bucket == bucket)

    def read(conn: Any) -> tuple[list[Any], int]:
        return list(conn.execute(q).all()), int(conn.execute(size_q).scalar() or 0)

    rows, size = planet.run(c.db.read(read))
    return [
        Piece((r.stream_id, r.part, r.idx), r.node_id, r.piece_size,
              (r.k, r.repair, r.optimal, r.total))
        for r in rows
    ], size  # fmt: skip


def run(count: int, object_bytes: int) -> dict[str, Any]:
    """Start the network, fill both buckets, and measure each one's placement."""
    os.environ.pop("AWS_CA_BUNDLE", None)
    mix = node_mix()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # heartbeats every 2 s (offline after 8 s, not the planet's 2 s): 24 nodes on one
        # event loop of a loaded machine must not drop out of placement between puts
        config = PlanetConfig(
            node_count=0, regions=tuple(REGION_GRID), heartbeat_interval=2.0, fault_hooks=False
        )
        planet = PlanetThread(Planet(Path(tmp), config)).start()
        try:
            nodes: dict[str, NodeProfile] = {}
            for profile in mix:
                node = planet.run(
                    planet.planet.add_node(
                        profile.region,
                        operator=profile.operator,
                        pue=profile.pue,
                        grid_gco2_kwh=profile.grid_gco2_kwh,
                        storage_watts_per_tb=profile.watts_per_tb,
                    )
                )
                nodes[node.node_id] = profile
            planet.run(planet.planet.wait_online(len(mix), timeout=60))
            up_s = time.perf_counter() - started
            s3 = planet.boto3()
            for bucket, tags in BUCKETS.items():
                s3.create_bucket(Bucket=bucket)
                if tags:
                    s3.put_bucket_tagging(Bucket=bucket, Tagging=tags)
            for i in range(count):  # alternating, so both see the same fill levels
                body = os.urandom(object_bytes)
                for bucket in BUCKETS:
                    s3.put_object(Bucket=bucket, Key=f"obj-{i:04d}", Body=body)
            result: dict[str, Any] = {"nodes": len(mix), "up_s": up_s, "buckets": {}}
            for bucket in BUCKETS:
                placed, size = _pieces(planet, bucket)
                gco2, wh = footprint(placed, nodes, size)
                result["buckets"][bucket] = {
                    "gco2_per_gb_month": gco2,
                    "wh_per_gb_month": wh,
                    "object_bytes": size,
                    **spread(placed, nodes),
                }
        finally:
            planet.stop()
    result["seconds"] = time.perf_counter() - started
    return result


def drawn(
    count: int, object_bytes: int, *, vetted: bool, copies: int = 1, seed: int = 1
) -> dict[str, dict[str, Any]]:
    """The placement alone (``plan_segment``, as the coordinator calls it) over the same
    node mix, ``count`` one-segment objects per bucket, alternating, each piece's bytes
    added to its node's use: no network, so thousands of segments take a second.

    ``vetted``: every node has passed vetting, a network's steady state. Otherwise
    every node is new, as in a network that just started (the live run): then
    ``limit_new_nodes`` draws the placement's nodes before the region round robin.
    ``copies``: the node mix that many times over, for a network with more choice."""
    rng = random.Random(seed)
    records = [
        NodeRecord(
            node_id=f"n{i:03d}", public_key=b"", address="", region=p.region,
            operator=p.operator, capacity_bytes=64 * GiB, used_bytes=0, version="",
            joined_at=0.0, last_seen=0.0, pue=p.pue, grid_gco2_kwh=p.grid_gco2_kwh,
            storage_watts_per_tb=p.watts_per_tb,
        )
        for i, p in enumerate(node_mix(copies))
    ]  # fmt: skip
    profiles = dict(zip((r.node_id for r in records), node_mix(copies), strict=True))
    unvetted = () if vetted else [r.node_id for r in records]
    placed: dict[str, list[Piece]] = {b: [] for b in BUCKETS}
    by_id = {r.node_id: r for r in records}
    for i in range(count):
        for bucket, tags in BUCKETS.items():
            plan = plan_segment(
                list(by_id.values()), plain_size=object_bytes, block_size=BLOCK, now=0.0,
                offline_after=60.0, rng=rng, unvetted=unvetted, new_node_fraction=0.05,
                low_carbon=tags is not None,
            )  # fmt: skip
            s = plan.scheme
            for node in plan.nodes:
                placed[bucket].append(
                    Piece((bucket, i, 0), node.node_id, plan.piece_size,
                          (s.k, s.repair, s.optimal, s.total))
                )  # fmt: skip
                by_id[node.node_id] = dataclasses.replace(
                    by_id[node.node_id], used_bytes=by_id[node.node_id].used_bytes + plan.piece_size
                )
    out = {}
    for bucket, ps in placed.items():
        gco2, wh = footprint(ps, profiles, count * object_bytes)
        out[bucket] = {"gco2_per_gb_month": gco2, "wh_per_gb_month": wh, **spread(ps, profiles)}
    return out


def durability(scheme: Sequence[int], nodes: int) -> float:
    """The model's chance a segment of ``scheme`` (k, repair, optimal, total) is lost
    within a year (independent failures)."""
    k, repair, optimal, total = scheme
    params = ModelParams(k, repair, optimal, total, nodes=nodes, failure_rate=MODEL_FAILURES)
    return threshold_loss_per_year(params).loss_per_year


def table(columns: Mapping[str, Mapping[str, Any]], nodes: int) -> str:
    """The markdown table: one column per (network, bucket) measured, as :func:`run`'s
    ``buckets`` and :func:`drawn` give them."""
    names = list(columns)
    k = min(c["k"] for c in columns.values())

    def row(label: str, fmt: str, key: str) -> str:
        return f"| {label} | " + " | ".join(fmt.format(columns[n][key]) for n in names) + " |"

    def loss(c: Mapping[str, Any]) -> str:
        return ", ".join(f"{durability(s, nodes):.1e}" for s in c["schemes"])

    return "\n".join(
        [
            "| | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
            row("**gCO2 per GB-month**", "**{:.2f}**", "gco2_per_gb_month"),
            row("Wh per GB-month", "{:.2f}", "wh_per_gb_month"),
            row("segments", "{}", "segments"),
            row("pieces per segment, mean", "{:.1f}", "pieces_per_segment"),
            row("regions per segment, min", "{}", "regions_min"),
            row("regions per segment, mean", "{:.2f}", "regions_mean"),
            row("operators per segment, min", "{}", "operators_min"),
            row("operators per segment, mean", "{:.2f}", "operators_mean"),
            row(f"pieces left after the worst region outage, min (k = {k})", "{}",
                "left_after_region_min"),
            row("pieces left after the worst operator outage, min", "{}",
                "left_after_operator_min"),
            row("segments one region or operator outage would lose", "{}", "outage_lost"),
            "| share of pieces by region | "
            + " | ".join(
                ", ".join(f"{r} {v:.0%}" for r, v in columns[n]["region_share"].items())
                for n in names
            )
            + " |",
            "| durability model, loss per segment-year | "
            + " | ".join(loss(columns[n]) for n in names)
            + " |",
        ]
    )  # fmt: skip


def nodes_table() -> str:
    """The network's energy profiles, one row per site kind, one column per region."""
    head = "| site | PUE | W/TB | " + " | ".join(f"{r} gCO2/kWh" for r in REGION_GRID) + " |"
    lines = [head, "|---|---:|---:|" + "---:|" * len(REGION_GRID)]
    for s in SITES:
        grids = " | ".join(f"{g * s.grid_factor:.0f}" for g in REGION_GRID.values())
        lines.append(f"| {s.name} | {s.pue} | {s.watts_per_tb} | {grids} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.energy_placement", description=__doc__)
    p.add_argument("--objects", type=int, default=24, help="objects per bucket (default 24)")
    p.add_argument("--object-mib", type=float, default=2.0, help="object size (default 2 MiB)")
    p.add_argument("--drawn", type=int, default=1000,
                   help="segments per bucket of the placement-only draws (default 1000)")  # fmt: skip
    args = p.parse_args(argv)
    size = int(args.object_mib * 1024 * 1024)
    result = run(args.objects, size)
    started = time.perf_counter()
    columns = {f"live, new nodes: `{b}`": c for b, c in result["buckets"].items()}
    for vetted, copies in ((False, 1), (True, 1), (True, BIG_COPIES)):
        what = f"{'vetted' if vetted else 'new'}, {len(SITES) * len(REGION_GRID) * copies}"
        for b, c in drawn(args.drawn, size, vetted=vetted, copies=copies).items():
            columns[f"drawn, {what} nodes: `{b}`"] = c
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; live: {result['nodes']} nodes "
        f"up in {result['up_s']:.1f} s, {args.objects} x {args.object_mib:g} MiB per bucket, "
        f"{result['seconds']:.1f} s in all; drawn: {args.drawn} segments per bucket and "
        f"network in {time.perf_counter() - started:.1f} s\n"
    )
    print(nodes_table() + "\n")
    print(table(columns, result["nodes"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
