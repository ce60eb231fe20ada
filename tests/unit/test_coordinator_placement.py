"""Placement as a pure function: tables of node records in, chosen nodes out."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection

import pytest

from skymesh.codec import DEFAULT_SCHEME, RedundancyScheme, SegmentLayout
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.placement import (
    SegmentPlan,
    network_scheme,
    plan_segment,
    region_loss_safe,
    select_nodes,
)
from skymesh.errors import Unavailable

NOW = 1_000_000.0
OFFLINE_AFTER = 30.0
BLOCK = 64 * 1024 - 16
GiB = 1024**3


def node(
    name: str,
    region: str,
    operator: str = "",
    *,
    free: int = 10 * GiB,
    age: float = 1.0,
) -> NodeRecord:
    return NodeRecord(
        node_id=name,
        public_key=b"\x00" * 32,
        address=f"http://{name}",
        region=region,
        operator=operator or f"op-{name}",
        capacity_bytes=free + 1000,
        used_bytes=1000,
        version="t",
        joined_at=0.0,
        last_seen=NOW - age,
    )


def fleet(spec: dict[str, int], operators_per_region: int = 0) -> list[NodeRecord]:
    """``{"eu": 3, "us": 2}`` -> nodes eu0, eu1, eu2, us0, us1."""
    out = []
    for region, count in spec.items():
        for i in range(count):
            op = f"{region}-op{i % operators_per_region}" if operators_per_region else ""
            out.append(node(f"{region}{i}", region, op))
    return out


def plan(
    nodes: list[NodeRecord],
    seed: int = 0,
    *,
    fixed_scheme: RedundancyScheme | None = None,
    exclude: Collection[str] = (),
) -> SegmentPlan:
    return plan_segment(
        nodes,
        plain_size=1024 * 1024,
        block_size=BLOCK,
        now=NOW,
        offline_after=OFFLINE_AFTER,
        exclude=exclude,
        fixed_scheme=fixed_scheme,
        rng=random.Random(seed),
    )


@pytest.mark.parametrize(
    ("spec", "scheme", "max_per_region"),
    [
        # three regions: no region over total - k, so any one region can be lost
        ({"eu": 5, "us": 5, "ap": 5}, "8/10/12/14", 5),
        ({"eu": 10, "us": 10, "ap": 10}, "8/10/12/14", 5),  # even spread: 5/5/4
        ({"eu": 2, "us": 2, "ap": 2}, "4/5/6/6", 2),
        ({"eu": 4, "us": 4, "ap": 4}, "6/8/10/10", 4),  # `skymesh up`'s 12 nodes
        ({"eu": 20, "us": 3, "ap": 3}, "8/10/12/14", 8),  # cap unreachable: most even spread
        # two regions: even halves
        ({"eu": 10, "us": 10}, "8/10/12/14", 7),
        # one region: everything there
        ({"eu": 20}, "8/10/12/14", 14),
    ],
)
def test_region_spread(spec: dict[str, int], scheme: str, max_per_region: int) -> None:
    nodes = fleet(spec)
    for seed in range(20):
        p = plan(nodes, seed, fixed_scheme=RedundancyScheme.parse(scheme))
        assert str(p.scheme) == scheme
        assert len({n.node_id for n in p.nodes}) == p.scheme.total  # one piece per node
        per_region = Counter(n.region for n in p.nodes)
        assert max(per_region.values()) == max_per_region
        if len(spec) >= 3 and min(spec.values()) * len(spec) >= p.scheme.total:
            assert region_loss_safe(p.nodes, p.scheme.k)


def test_region_cap_holds_whenever_possible() -> None:
    # 14 pieces, k=8: at most 6 per region; ap has only 2 nodes, so eu and us take 6 each.
    nodes = fleet({"eu": 10, "us": 10, "ap": 2})
    for seed in range(20):
        p = plan(nodes, seed, fixed_scheme=DEFAULT_SCHEME)
        counts = Counter(n.region for n in p.nodes)
        assert counts == {"eu": 6, "us": 6, "ap": 2}
        assert region_loss_safe(p.nodes, 8)


def test_operators_are_spread_within_a_region() -> None:
    # One region, 3 operators with 4 nodes each: 6 pieces -> 2 per operator.
    nodes = fleet({"eu": 12}, operators_per_region=3)
    for seed in range(20):
        p = plan(nodes, seed, fixed_scheme=RedundancyScheme.parse("3/4/5/6"))
        assert Counter(n.operator for n in p.nodes) == {"eu-op0": 2, "eu-op1": 2, "eu-op2": 2}


def test_free_space_weights_the_draw() -> None:
    big = [node(f"big{i}", "eu", free=100 * GiB) for i in range(5)]
    small = [node(f"small{i}", "eu", free=1 * GiB) for i in range(5)]
    picks: Counter[str] = Counter()
    rng = random.Random(1)
    for _ in range(400):
        for n in select_nodes(big + small, 2, rng):
            picks[n.node_id[:3]] += 1
    assert picks["big"] > 5 * picks["sma"] > 0  # emptier nodes are favoured, others still used


def test_a_large_network_draws_from_samples_still_weighted_and_spread() -> None:
    """Past SAMPLE_MIN nodes a region is drawn from a sample: emptier nodes are still
    favoured, every node can be picked, and a tiny region beside a huge one keeps its turn."""
    big = [node(f"big{i:04d}", "eu", operator=f"op{i % 7}", free=100 * GiB) for i in range(1500)]
    small = [node(f"sma{i:04d}", "eu", operator=f"op{i % 7}", free=1 * GiB) for i in range(1500)]
    tiny = [node("tiny0", "ap"), node("tiny1", "ap")]
    rng = random.Random(3)
    picks: Counter[str] = Counter()
    everyone: set[str] = set()
    for _ in range(300):
        chosen = select_nodes(big + small + tiny, 14, rng)
        assert len({n.node_id for n in chosen}) == 14
        assert sum(n.region == "ap" for n in chosen) == 2  # regions take turns
        picks.update(n.node_id[:3] for n in chosen)
        everyone.update(n.node_id for n in chosen)
    assert picks["big"] > 5 * picks["sma"] > 0
    assert len(everyone) > 1000  # far past one sample (64): the samples move, load spreads


def test_draw_spreads_load_over_equal_nodes() -> None:
    nodes = fleet({"eu": 10})
    picks: Counter[str] = Counter()
    rng = random.Random(7)
    for _ in range(500):
        picks.update(n.node_id for n in select_nodes(nodes, 3, rng))
    assert len(picks) == 10 and min(picks.values()) > 100  # expected 150 each


def test_filters_offline_excluded_and_full_nodes() -> None:
    piece = SegmentLayout(1024 * 1024, BLOCK, RedundancyScheme.parse("2/3/4/5")).piece_size
    usable = [node(f"ok{i}", f"r{i % 3}") for i in range(5)]
    offline = node("offline", "r0", age=OFFLINE_AFTER + 1)
    excluded = node("excluded", "r1")
    full = node("full", "r2", free=piece - 1)
    just_fits = node("fits", "r2", free=piece)
    nodes = [*usable, offline, excluded, full, just_fits]
    seen: set[str] = set()
    for seed in range(30):
        p = plan(
            nodes,
            seed,
            fixed_scheme=RedundancyScheme.parse("2/3/4/5"),
            exclude=["excluded"],
        )
        assert p.piece_size == piece
        seen.update(n.node_id for n in p.nodes)
    assert seen == {n.node_id for n in usable} | {"fits"}


def test_not_enough_nodes_is_unavailable_with_the_numbers() -> None:
    nodes = fleet({"eu": 2, "us": 2})
    with pytest.raises(Unavailable, match=r"needs 14 nodes .* 4 of 4 online"):
        plan(nodes, fixed_scheme=DEFAULT_SCHEME)
    with pytest.raises(Unavailable):
        plan([node("a", "eu")])  # one node: no scheme fits
    with pytest.raises(Unavailable):
        plan(fleet({"eu": 3}), exclude=["eu0", "eu1"])


@pytest.mark.parametrize(
    ("count", "expected"),
    [(2, "1/1/2/2"), (3, "1/1/2/2"), (6, "3/4/5/5"), (12, "6/8/10/10"), (14, "8/10/12/14")],
)
def test_scheme_follows_the_network(count: int, expected: str) -> None:
    assert str(network_scheme(count)) == expected
    assert str(network_scheme(1000)) == str(DEFAULT_SCHEME)
    p = plan(fleet({"eu": count}))
    assert str(p.scheme) == expected


def test_smaller_scheme_when_some_nodes_are_full() -> None:
    # 6 online nodes, but 2 are nearly full: the 4-node scheme's larger pieces must fit.
    nodes = [*fleet({"eu": 2, "us": 2}), node("f1", "ap", free=10), node("f2", "ap", free=10)]
    p = plan(nodes)
    assert str(p.scheme) == str(network_scheme(4))
    assert {n.node_id for n in p.nodes} < {"eu0", "eu1", "us0", "us1"}  # one left spare


def test_low_carbon_weighs_the_watts_per_terabyte_too() -> None:
    """Same PUE and grid; one site needs a tenth of the power per TB stored."""
    import dataclasses

    lean = dataclasses.replace(node("lean", "eu"), storage_watts_per_tb=1.0)
    hungry = dataclasses.replace(node("hungry", "eu"), storage_watts_per_tb=10.0)
    rng = random.Random(1)
    firsts = Counter(
        select_nodes([lean, hungry], 1, rng, low_carbon=True)[0].node_id for _ in range(2000)
    )
    assert firsts["lean"] > 0.85 * 2000  # 10:11 expected
    plain = Counter(select_nodes([lean, hungry], 1, rng)[0].node_id for _ in range(2000))
    assert 0.4 * 2000 < plain["lean"] < 0.6 * 2000
