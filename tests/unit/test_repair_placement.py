"""Repair decisions and repair placement: pure functions, table-tested."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

import pytest

from skymesh.codec import RedundancyScheme
from skymesh.coordinator.durability.repair.plan import (
    SegmentHealth,
    StoredPiece,
    assess,
    needs_repair,
    numbers_to_rebuild,
)
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.placement import (
    limit_new_nodes,
    new_node_quota,
    select_additional_nodes,
)
from skymesh.coordinator.overlay.reputation import Reputation, ReputationParams
from skymesh.errors import Unavailable

SCHEME = RedundancyScheme(4, 5, 6, 6)
NOW = 1000.0


def _node(i: int, region: str, online: bool = True, free: int = 10**9) -> NodeRecord:
    return NodeRecord(
        node_id=f"n{i:02d}",
        public_key=b"k" * 32,
        address=f"http://n{i}",
        region=region,
        operator=f"op-{region}-{i % 2}",
        capacity_bytes=free,
        used_bytes=0,
        version="v",
        joined_at=0.0,
        last_seen=NOW if online else 0.0,
    )


NODES = {n.node_id: n for n in (_node(i, "abc"[i % 3]) for i in range(12))}


def _pieces(*node_nums: int) -> list[StoredPiece]:
    return [StoredPiece(num, f"n{n:02d}", b"r") for num, n in enumerate(node_nums)]


def _assess(
    stored: list[StoredPiece],
    nodes: Mapping[str, NodeRecord] = NODES,
    reps: Mapping[str, Reputation] | None = None,
    spread: bool = True,
) -> SegmentHealth:
    return assess(stored, SCHEME, nodes, reps or {}, NOW, offline_after=20.0, region_spread=spread)


P = ReputationParams()


@pytest.mark.parametrize(
    ("case", "stored", "offline", "rep_change", "repair", "keep", "rebuild"),
    [
        ("all fine", (0, 1, 2, 3, 4, 5), (), {}, False, 6, []),
        ("one lost: at the repair threshold", (0, 1, 2, 3, 4, 5), (5,), {}, True, 5, [5]),
        ("two lost: below it", (0, 1, 2, 3, 4, 5), (4, 5), {}, True, 4, [4, 5]),
        ("disqualified", (0, 1, 2, 3, 4, 5), (), {3: "dq", 4: "dq"}, True, 4, [3, 4]),
        ("draining moves", (0, 1, 2, 3, 4, 5), (), {2: "exit"}, True, 5, [2]),
        # region a holds n00 n03 n06: one more than optimal - k = 2
        ("region crowded", (0, 3, 6, 1, 4, 2), (), {}, True, 5, [2]),
    ],
)
def test_assess(
    case: str,
    stored: tuple[int, ...],
    offline: tuple[int, ...],
    rep_change: dict[int, str],
    repair: bool,
    keep: int,
    rebuild: list[int],
) -> None:
    nodes = dict(NODES)
    for n in offline:
        node = nodes[f"n{n:02d}"]
        nodes[node.node_id] = replace(node, last_seen=0.0)
    reps: dict[str, Reputation] = {}
    for n, what in rep_change.items():
        base = Reputation.new(f"n{n:02d}", P)
        reps[base.node_id] = (
            replace(base, disqualified_at=1.0)
            if what == "dq"
            else replace(base, exit_requested_at=1.0)
        )
    health = _assess(_pieces(*stored), nodes, reps)
    assert needs_repair(health, SCHEME) is repair, case
    assert len(health.keep) == keep, case
    assert numbers_to_rebuild(health.keep, SCHEME) == rebuild, case


def test_region_rule_off_in_small_networks() -> None:
    health = _assess(_pieces(0, 3, 6, 9, 1, 4), spread=False)
    assert not health.misplaced and not needs_repair(health, SCHEME)


def test_additional_nodes_fill_the_thinnest_regions() -> None:
    existing = [NODES["n00"], NODES["n03"], NODES["n01"], NODES["n04"]]  # a:2 b:2 c:0
    chosen = select_additional_nodes(list(NODES.values()), existing, 2, random.Random(1))
    assert [n.region for n in chosen] == ["c", "c"]
    assert not {n.node_id for n in chosen} & {n.node_id for n in existing}
    assert len({n.operator for n in chosen}) == 2  # spread over operators too
    with pytest.raises(Unavailable):
        select_additional_nodes(existing, [], 5, random.Random(1))


@pytest.mark.parametrize(
    ("vetted", "fresh", "count", "fraction", "expect_fresh"),
    [
        (10, 5, 6, 0.0, 0),  # enough vetted: no new node
        (10, 5, 6, 0.5, 3),  # at most half
        (10, 5, 6, 1.0, 5),
        (3, 5, 6, 0.0, 3),  # young network: new nodes fill the gap
        (0, 8, 6, 0.05, 6),
    ],
)
def test_new_node_fraction(
    vetted: int, fresh: int, count: int, fraction: float, expect_fresh: int
) -> None:
    nodes = [_node(i, "a") for i in range(vetted + fresh)]
    unvetted = {n.node_id for n in nodes[vetted:]}
    kept = limit_new_nodes(nodes, count, unvetted, fraction, random.Random(0))
    got = Counter(n.node_id in unvetted for n in kept)
    assert got[True] == min(fresh, expect_fresh)
    assert got[False] == vetted


def test_new_node_quota_is_right_on_average() -> None:
    rng = random.Random(3)
    assert new_node_quota(20, 0.05, rng) == 1
    draws = [new_node_quota(14, 0.05, rng) for _ in range(4000)]
    assert set(draws) == {0, 1}
    assert sum(draws) / len(draws) == pytest.approx(0.7, abs=0.05)


def test_vetting_never_costs_region_safety() -> None:
    from skymesh.coordinator.overlay.placement import plan_segment

    nodes = [_node(i, "abc"[i % 3]) for i in range(9)]
    unvetted = {n.node_id for n in nodes if n.region == "c"}  # only a and b are vetted
    for seed in range(20):
        plan = plan_segment(
            nodes,
            plain_size=1000,
            block_size=65520,
            now=NOW,
            offline_after=20.0,
            fixed_scheme=SCHEME,
            rng=random.Random(seed),
            unvetted=unvetted,
            new_node_fraction=0.0,
        )
        assert Counter(n.region for n in plan.nodes) == {"a": 2, "b": 2, "c": 2}


@pytest.mark.parametrize("low_carbon", [False, True])
def test_a_young_network_keeps_its_spread(low_carbon: bool) -> None:
    """Every node new (the draw of new nodes is the placement): regions still take turns.

    4 regions of 6 nodes, 14 pieces: each region holds 3 or 4, so losing any one
    still leaves 10 of the 8 needed, as among vetted nodes.
    """
    from skymesh.coordinator.overlay.placement import plan_segment

    nodes = [_node(i, "abcd"[i % 4]) for i in range(24)]
    unvetted = {n.node_id for n in nodes}
    for seed in range(40):
        plan = plan_segment(
            nodes,
            plain_size=1000,
            block_size=65520,
            now=NOW,
            offline_after=20.0,
            rng=random.Random(seed),
            unvetted=unvetted,
            new_node_fraction=0.05,
            low_carbon=low_carbon,
        )
        assert plan.scheme.total == 14
        assert sorted(Counter(n.region for n in plan.nodes).values()) == [3, 3, 4, 4], seed
