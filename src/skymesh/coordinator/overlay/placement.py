"""Which nodes get a segment's pieces: pure functions over node records, no I/O.

Hard filters first (inside the bucket's residency, online, not excluded, room for
the piece), then a spread:

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

A bucket that prefers low carbon (``low_carbon``: its ``skymesh:placement`` tag,
see :func:`placement_preference`) divides each node's weight by the carbon of
keeping a byte there (watts per TB x PUE x grid gCO2/kWh,
:attr:`NodeRecord.storage_carbon`): a node whose stored terabyte emits ten times
less is ten times likelier to be drawn first. It is a
weighting inside the spread above, never a filter: regions still take turns,
operators still balance, residency still bounds the choice, and dirty nodes still
get pieces when the clean ones are few or full.

Among many nodes, :func:`place_segment` draws from a :class:`PlacementIndex` (the
candidates by region, kept between registry changes) and filters only its samples,
so a placement reads a few hundred node records, not every one; whenever the
samples cannot decide as the full pass would, it is the full pass,
:func:`plan_segment`.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from math import log
from operator import itemgetter

from skymesh.codec import DEFAULT_SCHEME, RedundancyScheme, SegmentLayout, scheme_for_network
from skymesh.coordinator.overlay.model import NodeRecord
from skymesh.coordinator.overlay.residency import ANYWHERE, Residency
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
    unvetted: Collection[str] = (),
    new_node_fraction: float = 1.0,
    residency: Residency = ANYWHERE,
    low_carbon: bool = False,
) -> SegmentPlan:
    """Choose the scheme, the piece size and ``scheme.total`` nodes for one segment.

    With no ``fixed_scheme`` the scheme follows the number of usable nodes (inside
    ``residency``: a bucket kept in a small region gets a scheme that region can
    hold); when some of those lack room for a piece, a smaller scheme (with larger
    pieces) is tried until one fits. Raises :class:`Unavailable` when none does;
    nodes outside ``residency`` are never chosen, however few are inside.
    ``low_carbon`` weights the draw towards nodes of lower carbon intensity.
    """
    excluded = set(exclude)
    # (plain attribute reads: these passes run over every node for every segment)
    inside = nodes if residency.anywhere else [n for n in nodes if residency.allows(n.region)]
    seen_since = now - offline_after  # NodeRecord.is_online, inlined
    online = [n for n in inside if n.last_seen >= seen_since and n.node_id not in excluded]
    if not residency.anywhere and len(online) < 2:
        raise Unavailable(
            f"the bucket's location constraint {residency.describe()} has {len(online)} usable"
            f" node(s) of {len(inside)} registered there; at least 2 are needed. Pieces are"
            " never placed outside it: retry once nodes there are back online"
        )
    if fixed_scheme is not None and not residency.anywhere and fixed_scheme.total > len(online):
        fixed_scheme = None  # the residency cannot hold the configured scheme: size one to it
    scheme = fixed_scheme or network_scheme(len(online))
    while True:
        piece_size = SegmentLayout(plain_size, block_size, scheme).piece_size
        eligible = [n for n in online if n.capacity_bytes - n.used_bytes >= piece_size]
        if len(eligible) >= scheme.total:
            break
        smaller = None if fixed_scheme else network_scheme(max(len(eligible), 2))
        if smaller is None or smaller.total >= scheme.total or len(eligible) < 2:
            where = "" if residency.anywhere else f" inside {residency.describe()}"
            raise Unavailable(
                f"not enough nodes{where}: scheme {scheme} needs {scheme.total} nodes with"
                f" {piece_size} bytes free; {len(eligible)} of {len(online)} online"
                f" (of {len(inside)} known, {len(excluded)} excluded) qualify"
            )
        scheme = smaller
    rng = rng or random.Random()
    pool = eligible
    if unvetted:
        pool = limit_new_nodes(
            eligible, scheme.total, set(unvetted), new_node_fraction, rng, low_carbon=low_carbon
        )
    chosen = select_nodes(pool, scheme.total, rng, low_carbon=low_carbon)
    if pool is not eligible and not region_loss_safe(chosen, scheme.k):
        # Vetting must not cost region safety (few vetted nodes in some region): then
        # new nodes may fill in as needed.
        wider = select_nodes(eligible, scheme.total, rng, low_carbon=low_carbon)
        if region_loss_safe(wider, scheme.k):
            chosen = wider
    return SegmentPlan(scheme=scheme, piece_size=piece_size, nodes=chosen)


#: The weighted draw within a region looks at a uniform sample of that region's nodes:
#: this many per piece the region could be asked for, at least SAMPLE_MIN. Drawing
#: among all of them costs a random key per node per segment (tens of ms among
#: 10,000 nodes); a sample of several per piece keeps the choice weighted by free
#: space where it matters and costs the same however large the network grows.
SAMPLE_PER_PIECE = 8
SAMPLE_MIN = 64

_first = itemgetter(0)


def select_nodes(
    eligible: Sequence[NodeRecord],
    count: int,
    rng: random.Random,
    *,
    sample: bool = True,
    low_carbon: bool = False,
) -> list[NodeRecord]:
    """``count`` distinct nodes spread over regions, then operators, weighted by free space.

    ``sample=False`` draws among every node of each region instead of a sample;
    ``low_carbon`` divides each weight by the node's storage carbon.
    """
    by_region: dict[str, list[NodeRecord]] = defaultdict(list)
    for node in eligible:
        by_region[node.region].append(node)
    regions = list(by_region)
    rng.shuffle(regions)
    # Each region's candidates in weighted order (exponential clocks: sort by Exp(1) /
    # weight), by operator: a pick takes the first candidate of the region's
    # least-used operator so far, as if scanning the region's whole weighted order.
    quota = max(SAMPLE_MIN, SAMPLE_PER_PIECE * -(-count // max(len(regions), 1)))
    rand = rng.random
    queues: dict[str, dict[str, list[tuple[float, NodeRecord]]]] = {}
    available = 0
    seen: set[str] = set()
    for region in regions:
        pool = by_region[region]
        if sample and len(pool) > quota:
            pool = rng.sample(pool, quota)
        # -log(1 - U) is rng.expovariate(1.0), inlined: this runs for every sampled node
        if low_carbon:
            keyed = [
                (
                    -log(1.0 - rand()) * n.storage_carbon / max(n.capacity_bytes - n.used_bytes, 1),
                    n,
                )
                for n in pool
            ]
        else:
            keyed = [
                (-log(1.0 - rand()) / max(n.capacity_bytes - n.used_bytes, 1), n) for n in pool
            ]
        keyed.sort(key=_first)
        ops: dict[str, list[tuple[float, NodeRecord]]] = {}
        for key, node in keyed:
            if node.node_id not in seen:
                seen.add(node.node_id)
                ops.setdefault(node.operator, []).append((key, node))
                available += 1
        for queue in ops.values():
            queue.reverse()  # popped from the end: first in weighted order last
        queues[region] = ops
    if count > available:
        if sample:  # the samples held too few distinct nodes: every node, then
            return select_nodes(eligible, count, rng, sample=False, low_carbon=low_carbon)
        raise Unavailable(f"need {count} distinct nodes, have {available}")
    per_operator: Counter[str] = Counter()
    chosen: list[NodeRecord] = []
    while len(chosen) < count:
        for region in regions:
            ops = queues[region]
            if not ops or len(chosen) == count:
                continue
            op = min(ops, key=lambda o: (per_operator[o], ops[o][-1][0]))
            node = ops[op].pop()[1]
            if not ops[op]:
                del ops[op]
            per_operator[node.operator] += 1
            chosen.append(node)
    return chosen


# ---------------------------------------------------------------- placement among many nodes


@dataclass(frozen=True)
class PlacementIndex:
    """The nodes placement may use, by region, between two changes of the registry.

    ``vetted`` and ``unvetted`` hold the ids of admitted nodes not ``barred``, by
    region; ``nodes`` is the registry's live map of records, so a heartbeat's free
    space and last-seen time are read when a sample is filtered, without a rebuild.
    Rebuilt (:func:`placement_index`) when a node joins or leaves, is (re)admitted, or
    a reputation changes: what the id lists depend on.
    """

    nodes: Mapping[str, NodeRecord]
    barred: frozenset[str]
    unvetted_ids: frozenset[str]
    vetted: dict[str, list[str]]
    unvetted: dict[str, list[str]]


def placement_index(
    nodes: Mapping[str, NodeRecord], barred: Collection[str], unvetted: Collection[str]
) -> PlacementIndex:
    """Index ``nodes`` (the registry's live map) for :func:`place_segment`."""
    bar, new = frozenset(barred), frozenset(unvetted)
    vetted: dict[str, list[str]] = defaultdict(list)
    fresh: dict[str, list[str]] = defaultdict(list)
    for node_id, n in nodes.items():
        if node_id not in bar:
            (fresh if node_id in new else vetted)[n.region].append(node_id)
    return PlacementIndex(nodes, bar, new, dict(vetted), dict(fresh))


def place_segment(
    index: PlacementIndex,
    *,
    plain_size: int,
    block_size: int,
    now: float,
    offline_after: float,
    exclude: Collection[str] = (),
    fixed_scheme: RedundancyScheme | None = None,
    rng: random.Random | None = None,
    new_node_fraction: float = 1.0,
    residency: Residency = ANYWHERE,
    low_carbon: bool = False,
) -> SegmentPlan:
    """:func:`plan_segment` over ``index``'s nodes, reading only samples when it can.

    The sampled pass draws each region's sample (as :func:`select_nodes` does) from
    its vetted candidates *before* filtering them (online, not excluded, room for a
    piece), so it costs the same among 10,000 nodes as among 1,000. It stands for
    the full pass only where it decides the same way: the scheme is the fixed one
    or the default (the network has at least that many usable nodes: the sample
    holds them), and at least ``total`` vetted nodes are usable (so unvetted ones
    get exactly their ``new_node_fraction`` share). A region whose filtered sample
    holds fewer than ``total`` nodes is filtered whole, so it can give as many
    pieces as the full pass could take from it. Otherwise (a small or young
    network, a residency with few nodes, a region-unsafe draw with new nodes) it
    is the full pass over every node.
    """
    rng = rng or random.Random()
    plan = _sampled_plan(
        index,
        plain_size=plain_size,
        block_size=block_size,
        seen_since=now - offline_after,
        excluded=set(exclude),
        scheme=fixed_scheme or DEFAULT_SCHEME,
        rng=rng,
        new_node_fraction=new_node_fraction,
        residency=residency,
        low_carbon=low_carbon,
    )
    if plan is not None:
        return plan
    return plan_segment(
        list(index.nodes.values()),
        plain_size=plain_size,
        block_size=block_size,
        now=now,
        offline_after=offline_after,
        exclude=index.barred.union(exclude),
        fixed_scheme=fixed_scheme,
        rng=rng,
        unvetted=index.unvetted_ids,
        new_node_fraction=new_node_fraction,
        residency=residency,
        low_carbon=low_carbon,
    )


def _sampled_plan(
    index: PlacementIndex,
    *,
    plain_size: int,
    block_size: int,
    seen_since: float,
    excluded: set[str],
    scheme: RedundancyScheme,
    rng: random.Random,
    new_node_fraction: float,
    residency: Residency,
    low_carbon: bool,
) -> SegmentPlan | None:
    """The sampled pass of :func:`place_segment`; None where only the full pass decides."""
    count = scheme.total
    piece_size = SegmentLayout(plain_size, block_size, scheme).piece_size
    records = index.nodes

    def usable(ids: Sequence[str]) -> list[NodeRecord]:
        out = []
        for i in ids:
            n = records.get(i)
            if (
                n is not None
                and n.last_seen >= seen_since
                and n.capacity_bytes - n.used_bytes >= piece_size
                and i not in excluded
            ):
                out.append(n)
        return out

    regions = [r for r in index.vetted if residency.allows(r)]
    quota = max(SAMPLE_MIN, SAMPLE_PER_PIECE * -(-count // max(len(regions), 1)))
    pool: list[NodeRecord] = []
    for region in regions:
        ids = index.vetted[region]
        if len(ids) <= quota:
            pool += usable(ids)
            continue
        drawn = usable(rng.sample(ids, quota))
        if len(drawn) < count:  # many offline or full here: as the full pass would see it
            drawn = usable(ids)
            if len(drawn) > quota:
                drawn = rng.sample(drawn, quota)
        pool += drawn
    if len(pool) < count:
        return None  # too few vetted nodes in the samples: scheme or vetting share may differ
    fresh_ids = [i for r, ids in index.unvetted.items() if residency.allows(r) for i in ids]
    fresh: list[NodeRecord] = []
    if fresh_ids:
        allowed = new_node_quota(count, new_node_fraction, rng)
        if allowed:
            fresh = usable(rng.sample(fresh_ids, min(len(fresh_ids), quota)))
            if len(fresh) < allowed:
                fresh = usable(fresh_ids)
            fresh = limit_new_nodes(
                fresh, allowed, index.unvetted_ids, 0.0, rng, low_carbon=low_carbon
            )
    chosen = select_nodes(pool + fresh, count, rng, low_carbon=low_carbon)
    if fresh_ids and not region_loss_safe(chosen, scheme.k):
        # The full pass may let more new nodes in for region safety (few vetted nodes
        # in some region); with fewer than three regions no draw is safe.
        fresh_regions = {r for r, ids in index.unvetted.items() if ids and residency.allows(r)}
        if len(fresh_regions.union(regions)) >= 3:
            return None
    return SegmentPlan(scheme=scheme, piece_size=piece_size, nodes=chosen)


#: The bucket tag that sets a bucket's placement preference, and its values.
PLACEMENT_TAG = "skymesh:placement"
LOW_CARBON = "low-carbon"


def placement_preference(tags: Sequence[tuple[str, str]]) -> bool:
    """Whether a bucket with these (key, value) tags prefers low-carbon nodes.

    Any other value of the tag, or none, is today's placement (by free space only).
    """
    return any(k == PLACEMENT_TAG and v.strip().lower() == LOW_CARBON for k, v in tags)


def region_loss_safe(nodes: Sequence[NodeRecord], k: int) -> bool:
    """True when losing any one region leaves at least ``k`` of these pieces."""
    counts = Counter(n.region for n in nodes)
    return all(len(nodes) - c >= k for c in counts.values())


# ---------------------------------------------------------------- vetting and repair placement


def new_node_quota(count: int, fraction: float, rng: random.Random) -> int:
    """How many of ``count`` pieces may go to unvetted nodes when vetted ones suffice.

    ``count * fraction`` on average, rounded up or down at random: with 14 pieces
    and 5 % a fixed floor would be 0, and new nodes would never get a piece to be
    audited on, so never be vetted.
    """
    share = count * min(1.0, max(0.0, fraction))
    whole = int(share)
    return whole + (1 if rng.random() < share - whole else 0)


def limit_new_nodes(
    eligible: Sequence[NodeRecord],
    count: int,
    unvetted: Collection[str],
    fraction: float,
    rng: random.Random,
    *,
    low_carbon: bool = False,
) -> list[NodeRecord]:
    """Keep every vetted node and only as many unvetted ones as a placement may use.

    New nodes get at most ``new_node_fraction`` of a placement (Storj's vetting:
    data they lose should be little while they prove themselves). When there are
    too few vetted nodes (a young network) unvetted ones fill the rest, so uploads
    never fail for want of vetting. The unvetted ones kept are drawn at random,
    weighted as :func:`select_nodes` weights them for ``low_carbon`` (in a young
    network every node is unvetted, and this draw is the placement's choice).
    """
    vetted = [n for n in eligible if n.node_id not in unvetted]
    fresh = [n for n in eligible if n.node_id in unvetted]
    allowed = max(new_node_quota(count, fraction, rng), count - len(vetted))
    if len(fresh) > allowed:
        fresh = _spread_draw(fresh, allowed, Counter(n.region for n in vetted), rng, low_carbon)
    return vetted + fresh


def _spread_draw(
    nodes: Sequence[NodeRecord],
    count: int,
    have: Counter[str],
    rng: random.Random,
    low_carbon: bool,
) -> list[NodeRecord]:
    """``count`` of ``nodes``, the region with the fewest so far (``have``) drawing next.

    Within a region the draw is weighted as :func:`select_nodes` weights it. Drawn
    from the whole network at once, a young network's kept nodes (where this draw is
    the placement) could leave a region out or pile into one, and the spread that
    follows could do no better than the pool.
    """
    rand = rng.random
    queues: dict[str, list[tuple[float, NodeRecord]]] = defaultdict(list)
    for n in nodes:
        carbon = n.storage_carbon if low_carbon else 1.0
        queues[n.region].append((-log(1.0 - rand()) * carbon / max(n.free_bytes, 1), n))
    for queue in queues.values():
        queue.sort(key=_first, reverse=True)  # popped from the end: lightest key first
    have = Counter(have)
    drawn: list[NodeRecord] = []
    while len(drawn) < count:
        region = min((r for r in queues if queues[r]), key=lambda r: (have[r], rand()))
        drawn.append(queues[region].pop()[1])
        have[region] += 1
    return drawn


def select_additional_nodes(
    eligible: Sequence[NodeRecord],
    existing: Sequence[NodeRecord],
    count: int,
    rng: random.Random,
) -> list[NodeRecord]:
    """``count`` more nodes for a segment whose other pieces sit on ``existing`` (repair).

    Each pick goes to the region, then the operator, holding the fewest of the
    segment's pieces so far (existing ones included), weighted by free space
    within them; nodes already holding a piece are never chosen.
    """
    held = {n.node_id for n in existing}
    pool = [n for n in eligible if n.node_id not in held]
    if count > len({n.node_id for n in pool}):
        raise Unavailable(
            f"repair needs {count} more nodes; only {len(pool)} eligible nodes hold no piece"
            " of the segment"
        )
    per_region: Counter[str] = Counter(n.region for n in existing)
    per_operator: Counter[str] = Counter(n.operator for n in existing)
    keyed = sorted((rng.expovariate(1.0) / max(n.free_bytes, 1), i) for i, n in enumerate(pool))
    order = [pool[i] for _, i in keyed]
    chosen: list[NodeRecord] = []
    seen: set[str] = set()
    while len(chosen) < count:
        best = min(
            (j for j, n in enumerate(order) if n.node_id not in seen),
            key=lambda j: (per_region[order[j].region], per_operator[order[j].operator], j),
        )
        node = order[best]
        seen.add(node.node_id)
        per_region[node.region] += 1
        per_operator[node.operator] += 1
        chosen.append(node)
    return chosen
