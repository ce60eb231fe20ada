"""Placement among many nodes (``place_segment`` over a ``PlacementIndex``): samples are
drawn before filtering, and every guarantee of the full pass still holds."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Collection

import pytest

from skymesh.codec import DEFAULT_SCHEME
from skymesh.coordinator.overlay import placement
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.placement import (
    SegmentPlan,
    place_segment,
    placement_index,
    region_loss_safe,
)
from skymesh.coordinator.overlay.residency import Residency
from skymesh.errors import Unavailable

NOW = 1_000_000.0
OFFLINE_AFTER = 30.0
GiB = 1024**3
REGIONS = ("eu-west", "eu-central", "us", "ap")


def node(i: int, region: str, **changes: object) -> NodeRecord:
    n = NodeRecord(
        node_id=f"{region}-{i:04d}",
        public_key=b"\x00" * 32,
        address=f"http://{region}-{i}",
        region=region,
        operator=f"{region}-op{i % 4}",
        capacity_bytes=10 * GiB,
        used_bytes=0,
        version="t",
        joined_at=0.0,
        last_seen=NOW,
    )
    return dataclasses.replace(n, **changes)  # type: ignore[arg-type]


def fleet(per_region: int = 150) -> dict[str, NodeRecord]:
    """Far more nodes per region than one sample (64): the sampled pass decides."""
    nodes = [node(i, r) for r in REGIONS for i in range(per_region)]
    return {n.node_id: n for n in nodes}


def place(
    nodes: dict[str, NodeRecord],
    rng: random.Random,
    *,
    barred: Collection[str] = (),
    unvetted: Collection[str] = (),
    exclude: Collection[str] = (),
    residency: Residency = Residency(),
    low_carbon: bool = False,
    new_node_fraction: float = 1.0,
) -> SegmentPlan:
    return place_segment(
        placement_index(nodes, barred, unvetted),
        plain_size=64 * 1024 * 1024,
        block_size=64 * 1024 - 16,
        now=NOW,
        offline_after=OFFLINE_AFTER,
        exclude=exclude,
        rng=rng,
        new_node_fraction=new_node_fraction,
        residency=residency,
        low_carbon=low_carbon,
    )


@pytest.fixture
def no_full_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if placement falls back to the pass over every node."""

    def full_pass(*_a: object, **_k: object) -> SegmentPlan:
        raise AssertionError("the full pass ran")

    monkeypatch.setattr(placement, "plan_segment", full_pass)


def test_never_barred_offline_full_excluded_or_outside(no_full_pass: None) -> None:
    nodes = fleet()
    ids = sorted(nodes)
    rng = random.Random(1)
    barred = set(rng.sample(ids, 100))
    excluded = set(rng.sample(ids, 50))
    for i in rng.sample(ids, 150):
        nodes[i] = dataclasses.replace(nodes[i], last_seen=NOW - OFFLINE_AFTER - 1)
    for i in rng.sample(ids, 150):
        nodes[i] = dataclasses.replace(nodes[i], used_bytes=10 * GiB - 1000)
    bad = barred | excluded | {i for i, n in nodes.items() if n.last_seen < NOW - OFFLINE_AFTER}
    bad |= {i for i, n in nodes.items() if n.free_bytes < 10**6}
    eu = Residency("eu")
    for seed in range(40):
        rng = random.Random(seed)
        p = place(nodes, rng, barred=barred, exclude=excluded)
        assert p.scheme == DEFAULT_SCHEME
        assert len({n.node_id for n in p.nodes}) == 14
        assert not {n.node_id for n in p.nodes} & bad
        assert max(Counter(n.region for n in p.nodes).values()) <= 4  # regions take turns
        assert region_loss_safe(p.nodes, p.scheme.k)
        assert max(Counter(n.operator for n in p.nodes).values()) == 1  # 16 operators
        inside = place(nodes, rng, barred=barred, exclude=excluded, residency=eu)
        assert {n.region for n in inside.nodes} == {"eu-west", "eu-central"}
        assert not {n.node_id for n in inside.nodes} & bad


def test_heartbeats_are_read_live_without_a_rebuild(no_full_pass: None) -> None:
    nodes = fleet()
    index = placement_index(nodes, (), ())
    # after the index was built: half of eu-west goes offline, the rest fills up
    for i in range(150):
        key = f"eu-west-{i:04d}"
        if i % 2:
            nodes[key] = dataclasses.replace(nodes[key], last_seen=NOW - OFFLINE_AFTER - 1)
        else:
            nodes[key] = dataclasses.replace(nodes[key], used_bytes=10 * GiB)
    rng = random.Random(2)
    for _ in range(20):
        p = place_segment(
            index,
            plain_size=64 * 1024 * 1024,
            block_size=64 * 1024 - 16,
            now=NOW,
            offline_after=OFFLINE_AFTER,
            rng=rng,
        )
        assert "eu-west" not in {n.region for n in p.nodes}


def test_a_region_mostly_offline_still_takes_its_turn(no_full_pass: None) -> None:
    # ap: 150 nodes, only 3 online; a sample of 64 usually holds none of them, so
    # the region is filtered whole, as the full pass would see it
    nodes = fleet()
    for i in range(3, 150):
        key = f"ap-{i:04d}"
        nodes[key] = dataclasses.replace(nodes[key], last_seen=0.0)
    for seed in range(20):
        p = place(nodes, random.Random(seed))
        assert sum(n.region == "ap" for n in p.nodes) == 3


def test_free_space_and_carbon_still_weight_the_draw(no_full_pass: None) -> None:
    nodes = fleet()
    # half of every operator's nodes nearly full (but with room) and on a clean grid
    odd = {k for i, k in enumerate(sorted(nodes)) if i // 4 % 2}
    for key in odd:
        nodes[key] = dataclasses.replace(
            nodes[key], used_bytes=9 * GiB + 900 * 2**20, grid_gco2_kwh=10.0
        )
    rng = random.Random(3)
    by_space: Counter[bool] = Counter()
    by_carbon: Counter[bool] = Counter()
    for _ in range(100):
        by_space.update(n.node_id in odd for n in place(nodes, rng).nodes)
        by_carbon.update(n.node_id in odd for n in place(nodes, rng, low_carbon=True).nodes)
    assert by_space[False] > 5 * by_space[True] > 0  # emptier nodes favoured
    # free space 100 MB vs 10 GB (x100), carbon 10 vs 300 (x30): still the emptier,
    # but far less so than by space alone
    assert by_carbon[True] > 2 * by_space[True]


def test_new_nodes_get_their_share_only(no_full_pass: None) -> None:
    nodes = fleet()
    unvetted = {k for k in nodes if int(k[-4:]) >= 20}  # 20 vetted per region, 130 new
    rng = random.Random(4)
    fresh_per_plan = [
        sum(
            n.node_id in unvetted
            for n in place(nodes, rng, unvetted=unvetted, new_node_fraction=0.05).nodes
        )
        for _ in range(200)
    ]
    # 14 x 5 %: 0 or 1 new node offered to each draw, as in the full pass
    assert max(fresh_per_plan) == 1
    assert sum(fresh_per_plan) > 5  # offered, and then drawn among the vetted


def test_small_networks_take_the_full_pass() -> None:
    nodes = {n.node_id: n for n in (node(i, r) for r in ("eu", "us") for i in range(3))}
    p = place(nodes, random.Random(5))
    assert p.scheme.total == 5  # the scheme follows the network: 6 nodes
    with pytest.raises(Unavailable, match="location constraint 'eu'"):
        place(nodes, random.Random(5), residency=Residency("eu"), exclude=["eu-0000", "eu-0001"])
