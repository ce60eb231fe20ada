"""Low-carbon placement: a weighting inside the region/operator spread, not a filter."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.placement import (
    SegmentPlan,
    placement_preference,
    plan_segment,
    region_loss_safe,
)

NOW = 1_000_000.0
GiB = 1024**3


def fleet() -> list[NodeRecord]:
    """3 regions x 8 nodes, 2 operators per region; odd nodes green, even dirty."""
    out = []
    for region in ("eu", "us", "ap"):
        for i in range(8):
            green = i % 2 == 1
            out.append(
                NodeRecord(
                    node_id=f"{region}{i}",
                    public_key=b"\x00" * 32,
                    address=f"http://{region}{i}",
                    region=region,
                    operator=f"{region}-op{i % 4 // 2}",
                    capacity_bytes=10 * GiB,
                    used_bytes=0,
                    version="t",
                    joined_at=0.0,
                    last_seen=NOW,
                    pue=1.1 if green else 1.6,
                    grid_gco2_kwh=30.0 if green else 700.0,
                )
            )
    return out


def placements(low_carbon: bool, rounds: int = 200) -> tuple[Counter[bool], list[SegmentPlan]]:
    rng = random.Random(7)
    nodes = fleet()
    green: Counter[bool] = Counter()
    plans = []
    for _ in range(rounds):
        plan = plan_segment(
            nodes,
            plain_size=1024 * 1024,
            block_size=64 * 1024 - 16,
            now=NOW,
            offline_after=30.0,
            rng=rng,
            low_carbon=low_carbon,
        )
        green.update(n.grid_gco2_kwh < 100 for n in plan.nodes)
        plans.append(plan)
    return green, plans


def test_low_carbon_prefers_green_nodes_and_keeps_the_spread() -> None:
    green, plans = placements(low_carbon=True)
    # 14 pieces a segment (scheme 8/10/12/14) and 12 green nodes: at most 12/14 green
    assert green[True] > 0.8 * (green[True] + green[False])
    assert green[False] > 0  # a weighting, not a filter: dirty nodes fill in
    for plan in plans:
        chosen = plan.nodes
        regions = Counter(n.region for n in chosen)
        assert max(regions.values()) - min(regions.values()) <= 1  # regions take turns
        for region in regions:
            ops = Counter(n.operator for n in chosen if n.region == region)
            assert max(ops.values()) - min(ops.values()) <= 1  # operators balance
        assert region_loss_safe(chosen, plan.scheme.k)


def test_default_placement_ignores_energy() -> None:
    green, _ = placements(low_carbon=False)
    share = green[True] / (green[True] + green[False])
    assert 0.4 < share < 0.6


def test_low_carbon_stays_inside_the_eligible_nodes() -> None:
    """Only dirty nodes have room: they get the pieces (the preference never refuses)."""
    nodes = [
        dataclasses.replace(n, used_bytes=n.capacity_bytes) if n.grid_gco2_kwh < 100 else n
        for n in fleet()
    ]
    plan = plan_segment(
        nodes,
        plain_size=1024 * 1024,
        block_size=64 * 1024 - 16,
        now=NOW,
        offline_after=30.0,
        rng=random.Random(1),
        low_carbon=True,
    )
    assert all(n.grid_gco2_kwh > 100 for n in plan.nodes)


def test_placement_preference_reads_the_bucket_tag() -> None:
    assert placement_preference([("skymesh:placement", "low-carbon")])
    assert placement_preference([("other", "x"), ("skymesh:placement", " Low-Carbon ")])
    assert not placement_preference([])
    assert not placement_preference([("skymesh:placement", "default")])
    assert not placement_preference([("placement", "low-carbon")])
