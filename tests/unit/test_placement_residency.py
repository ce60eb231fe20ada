"""Residency as pure functions: what a location constraint covers, and placement inside it."""

from __future__ import annotations

import random
from collections import Counter
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.codec import RedundancyScheme
from skymesh.coordinator.durability.repair.plan import StoredPiece, assess
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.placement import plan_segment, region_loss_safe
from skymesh.coordinator.overlay.residency import ANYWHERE, check_constraint, residency
from skymesh.errors import BadRequest, Unavailable
from tests.unit.test_coordinator_placement import BLOCK, NOW, OFFLINE_AFTER, node

REGIONS = ["eu-west", "eu-central", "eu-west-2", "us-east", "us-west", "ap-south"]
GROUPS = {"emea": ["eu-west", "ap-south"]}


@pytest.mark.parametrize(
    ("constraint", "inside", "outside"),
    [
        ("", REGIONS, []),
        ("eu", ["eu-west", "eu-central", "eu-west-2"], ["us-east", "europe"]),
        ("eu-west", ["eu-west", "eu-west-2"], ["eu-central", "eu-westish"]),
        ("us-east", ["us-east"], ["us-west", "us"]),
        ("emea", ["eu-west", "ap-south"], ["eu-central", "emea", "emea-x"]),  # the map wins
    ],
)
def test_what_a_constraint_covers(constraint: str, inside: list[str], outside: list[str]) -> None:
    where = residency(constraint, GROUPS)
    assert all(where.allows(r) for r in inside)
    assert not any(where.allows(r) for r in outside)


def test_unknown_constraints_are_refused_with_the_choices() -> None:
    check_constraint("", [], {})
    check_constraint("eu", REGIONS, {})
    check_constraint("emea", [], GROUPS)
    for bad in ("mars", "us-east-1", "e", "eu-"):
        with pytest.raises(BadRequest) as e:
            check_constraint(bad, REGIONS, GROUPS)
        assert e.value.code == "InvalidLocationConstraint"
        assert "eu-central" in str(e.value) and "emea" in str(e.value)


topologies = st.dictionaries(
    st.sampled_from(REGIONS),
    st.tuples(st.integers(0, 6), st.integers(1, 3)),  # (nodes, operators) per region
    min_size=1,
)


@settings(max_examples=200, deadline=None)
@given(
    topology=topologies,
    constraint=st.sampled_from(["", "eu", "eu-west", "us", "us-east", "ap-south", "emea"]),
    offline=st.sets(st.integers(0, 40), max_size=5),
    fixed=st.sampled_from([None, "4/5/6/6", "8/10/12/14"]),
    seed=st.integers(0, 2**16),
)
def test_placement_never_leaves_the_residency(
    topology: dict[str, tuple[int, int]],
    constraint: str,
    offline: set[int],
    fixed: str | None,
    seed: int,
) -> None:
    nodes: list[NodeRecord] = []
    for region, (count, operators) in sorted(topology.items()):
        for i in range(count):
            age = OFFLINE_AFTER + 1 if len(nodes) in offline else 1.0
            nodes.append(node(f"{region}-{i}", region, f"{region}-op{i % operators}", age=age))
    where = residency(constraint, GROUPS)
    usable = [n for n in nodes if where.allows(n.region) and n.last_seen == NOW - 1.0]
    try:
        plan = plan_segment(
            nodes,
            plain_size=300_000,
            block_size=BLOCK,
            now=NOW,
            offline_after=OFFLINE_AFTER,
            rng=random.Random(seed),
            residency=where,
            fixed_scheme=RedundancyScheme.parse(fixed) if fixed else None,
        )
    except Unavailable:
        # refused only when the residency (or, anywhere, the fixed scheme) cannot be met
        too_few = fixed is not None and len(usable) < RedundancyScheme.parse(fixed).total
        assert len(usable) < 2 or (where.anywhere and too_few)
        return
    chosen = plan.nodes
    assert all(where.allows(n.region) for n in chosen)  # never outside the residency
    assert len({n.node_id for n in chosen}) == len(chosen) == plan.scheme.total  # one per node
    assert {n.node_id for n in chosen} <= {n.node_id for n in usable}
    if fixed is None and len(usable) < 14:
        assert plan.scheme.total < len(usable) or len(usable) == 2  # spares left for repair
    per_region = Counter(n.region for n in chosen)
    regions_up = Counter(n.region for n in usable)
    if len(regions_up) >= 3 and all(
        regions_up[r] >= -(-plan.scheme.total // len(regions_up)) for r in regions_up
    ):
        assert region_loss_safe(chosen, plan.scheme.k), per_region


def test_a_residency_too_small_for_the_fixed_scheme_gets_its_own() -> None:
    nodes = [node(f"eu{i}", "eu-west", f"op{i % 2}") for i in range(4)]
    nodes += [node(f"us{i}", "us-east") for i in range(20)]
    plan = plan_segment(
        nodes,
        plain_size=300_000,
        block_size=BLOCK,
        now=NOW,
        offline_after=OFFLINE_AFTER,
        fixed_scheme=RedundancyScheme.parse("8/10/12/14"),
        residency=residency("eu", {}),
        rng=random.Random(1),
    )
    assert str(plan.scheme) == "2/2/3/3"
    assert {n.region for n in plan.nodes} == {"eu-west"}
    assert set(Counter(n.operator for n in plan.nodes).values()) <= {1, 2}  # both operators


def test_one_node_in_the_residency_is_refused_with_the_region() -> None:
    nodes = [node("eu0", "eu-west"), *(node(f"us{i}", "us-east") for i in range(20))]
    with pytest.raises(Unavailable, match=r"'eu-west' .* 1 usable node"):
        plan_segment(
            nodes,
            plain_size=300_000,
            block_size=BLOCK,
            now=NOW,
            offline_after=OFFLINE_AFTER,
            residency=residency("eu-west", {}),
        )


def test_pieces_outside_the_residency_are_misplaced() -> None:
    nodes = {f"n{i}": node(f"n{i}", "eu-west" if i < 4 else "us-east") for i in range(6)}
    stored = [StoredPiece(i, f"n{i}", b"r") for i in range(6)]
    scheme = RedundancyScheme.parse("3/4/6/6")
    assess_in = partial(
        assess, stored, scheme, nodes, {}, NOW, offline_after=OFFLINE_AFTER, region_spread=False
    )
    anywhere = assess_in(residency=ANYWHERE)
    assert not anywhere.misplaced and len(anywhere.keep) == 6
    eu = assess_in(residency=residency("eu", {}))
    assert [p.node_id for p in eu.misplaced] == ["n4", "n5"]
    assert eu.healthy_count == 6  # still readable: repair uses them as sources
