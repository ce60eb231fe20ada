"""Which nodes get a segment's pieces: pure functions over node records, no I/O.

Hard filters first (online, not excluded, room for the piece), then a spread:

- at most one piece per node;
- regions take turns (round robin), so pieces fill regions as evenly as the
  nodes allow. With three or more regions that is what keeps any one region at
  or under ``total - k`` pieces whenever the eligible nodes make it possible, so
  losing a whole region still leaves ``k``; when they cannot (too few nodes outside
  one region), the spread is still the most even one possible and
  :func:`region_loss_safe` says so;
- within a region, operators with fewer pieces so far come first (an operator
  outage is a correlated failure too), then nodes drawn at random with
  probability proportional to their free space, so load spreads instead of
  piling on the emptiest node between two heartbeats.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from skymesh.codec import DEFAULT_SCHEME, RedundancyScheme, SegmentLayout, scheme_for_network
from skymesh.coordinator.model import NodeRecord
from skymesh.errors import SchemeError, Unavailable


@dataclass(frozen=True)
class SegmentPlan:
    scheme: RedundancyScheme
    piece_size: int
    nodes: list[NodeRecord]  # piece i goes to nodes[i]


def network_scheme(node_count: int) -> RedundancyScheme:
    """The scheme for a network of ``node_count`` usable nodes, never above the default."""
    try:
        scheme = scheme_for_network(node_count)
    except SchemeError as e:
        raise Unavailable(
            f"no redundancy scheme fits {node_count} usable node(s): at least 2 are needed"
        ) from e
    return DEFAULT_SCHEME if scheme.total > DEFAULT_SCHEME.total else scheme


def plan_segment(
    nodes: Sequence[NodeRecord],
    *,
    plain_size: int,
    block_size: int,
    now: float,
    offline_after: float,
    exclude: Collection[str] = (),
    fixed_scheme: RedundancyScheme | None = None,
    rng: random.Random | None = None,
) -> SegmentPlan:
    """Choose the scheme, the piece size and ``scheme.total`` nodes for one segment.

    With no ``fixed_scheme`` the scheme follows the number of usable nodes; when
    some of those lack room for a piece, a smaller scheme (with larger pieces) is
    tried until one fits. Raises :class:`Unavailable` when none does.
    """
    excluded = set(exclude)
    online = [n for n in nodes if n.node_id not in excluded and n.is_online(now, offline_after)]
    scheme = fixed_scheme or network_scheme(len(online))
    while True:
        piece_size = SegmentLayout(plain_size, block_size, scheme).piece_size
        eligible = [n for n in online if n.free_bytes >= piece_size]
        if len(eligible) >= scheme.total:
            break
        smaller = None if fixed_scheme else network_scheme(max(len(eligible), 2))
        if smaller is None or smaller.total >= scheme.total or len(eligible) < 2:
            raise Unavailable(
                f"not enough nodes: scheme {scheme} needs {scheme.total} nodes with"
                f" {piece_size} bytes free; {len(eligible)} of {len(online)} online"
                f" (of {len(nodes)} known, {len(excluded)} excluded) qualify"
            )
        scheme = smaller
    chosen = select_nodes(eligible, scheme.total, rng or random.Random())
    return SegmentPlan(scheme=scheme, piece_size=piece_size, nodes=chosen)


def select_nodes(
    eligible: Sequence[NodeRecord], count: int, rng: random.Random
) -> list[NodeRecord]:
    """``count`` distinct nodes spread over regions, then operators, weighted by free space."""
    if count > len({n.node_id for n in eligible}):
        raise Unavailable(f"need {count} distinct nodes, have {len(eligible)}")
    by_region: dict[str, list[NodeRecord]] = defaultdict(list)
    seen: set[str] = set()
    # Weighted sampling without replacement: sort by Exp(1) / weight (exponential clocks).
    keyed = sorted(
        ((rng.expovariate(1.0) / max(n.free_bytes, 1), i) for i, n in enumerate(eligible)),
    )
    for _, i in keyed:
        node = eligible[i]
        if node.node_id not in seen:
            seen.add(node.node_id)
            by_region[node.region].append(node)
    regions = list(by_region)
    rng.shuffle(regions)
    per_operator: Counter[str] = Counter()
    chosen: list[NodeRecord] = []
    while len(chosen) < count:
        for region in regions:
            pool = by_region[region]
            if not pool or len(chosen) == count:
                continue
            # First node (in weighted order) of the least-used operator in this region.
            best = min(range(len(pool)), key=lambda j: (per_operator[pool[j].operator], j))
            node = pool.pop(best)
            per_operator[node.operator] += 1
            chosen.append(node)
    return chosen


def region_loss_safe(nodes: Sequence[NodeRecord], k: int) -> bool:
    """True when losing any one region leaves at least ``k`` of these pieces."""
    counts = Counter(n.region for n in nodes)
    return all(len(nodes) - c >= k for c in counts.values())
