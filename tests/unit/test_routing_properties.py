"""Residency and failover of routing over random topologies (skymesh.compute.routing.rank).

Random networks: nodes in random regions with random adverts (models, prices,
queues, energy), some offline or sitting out a failure; random residency (the
regions a request may run in) and random weights. The properties:

- no request is ever ranked onto a node outside its residency, whatever the weights;
- with every node of one region down (offline, unhealthy or full), a request whose
  residency also allows a region with a live node still gets candidates, all of
  them elsewhere (it fails over); one whose residency is only the downed region
  gets none, so the gateway answers 503 ``no_healthy_backend`` instead of running
  it anywhere else;
- nodes that cannot serve never change the order of those that can;
- weights do what they say: all weight on carbon puts a least-carbon node first;
- a cost is never NaN, even for absurd (finite) adverts, so the order is total.
"""

from __future__ import annotations

from dataclasses import replace

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.compute.routing import (
    Candidate,
    Weights,
    cost,
    eligible,
    gco2_per_1k_tokens,
    rank,
)
from skymesh.wire.inference import ComputeAdvert, ModelOffer

MODEL = "m"
REGIONS = ("eu-west", "eu-central", "us-east", "ap-south", "sa-east")


@st.composite
def adverts(draw: st.DrawFn, serves: bool | None = None) -> ComputeAdvert:
    if serves is None:
        serves = draw(st.booleans())
    names = [MODEL] if serves else []
    names += draw(st.lists(st.sampled_from(["other-a", "other-b"]), unique=True))
    concurrency = draw(st.integers(1, 4))
    limit = draw(st.integers(0, 4))
    return ComputeAdvert(
        models=[
            ModelOffer(
                name=n,
                kind="chat",
                context_length=2048,
                price_in=draw(st.floats(0, 20)),
                price_out=draw(st.floats(0, 20)),
            )
            for n in names
        ],
        cores=4,
        memory_bytes=1 << 30,
        concurrency=concurrency,
        queue_limit=limit,
        queue_depth=draw(st.integers(0, concurrency + limit + 1)),
        latency_ms=draw(st.floats(0, 5000)),
        tokens_per_second=draw(st.floats(0, 500)),
        pue=draw(st.floats(1, 2)),
        grid_gco2_kwh=draw(st.floats(0, 900)),
        watts=draw(st.floats(0, 400)),
    )


@st.composite
def nodes(draw: st.DrawFn, i: int, region: str | None = None) -> Candidate:
    return Candidate(
        node_id=f"node-{i:03d}",
        address=f"http://127.0.0.1:{7000 + i}",
        region=region or draw(st.sampled_from(REGIONS)),
        advert=draw(adverts()),
        rtt_s=draw(st.floats(0, 1)),
        online=draw(st.booleans()),
        healthy=draw(st.booleans()),
    )


@st.composite
def topologies(draw: st.DrawFn, min_size: int = 0) -> list[Candidate]:
    n = draw(st.integers(min_size, 16))
    return [draw(nodes(i)) for i in range(n)]


weights = st.builds(
    Weights, latency=st.floats(0, 100), price=st.floats(0, 100), carbon=st.floats(0, 100)
)
residencies = st.lists(st.sampled_from(REGIONS), min_size=1, unique=True)


def down(c: Candidate, how: int) -> Candidate:
    """Take ``c`` out: offline, unhealthy (a recent failure), or with a full queue."""
    if how == 0:
        return replace(c, online=False)
    if how == 1:
        return replace(c, healthy=False)
    a = c.advert
    return replace(c, advert=msgspec.structs.replace(a, queue_depth=a.concurrency + a.queue_limit))


@settings(max_examples=150, deadline=None)
@given(topologies(), residencies, weights)
def test_no_request_is_ranked_outside_its_residency(
    topology: list[Candidate], residency: list[str], w: Weights
) -> None:
    ranked = rank(topology, MODEL, w, residency)
    assert all(c.region in residency for c in ranked)
    assert all(eligible(c, MODEL, residency) for c in ranked)
    inside = [c for c in topology if c.region in residency]
    assert [c.node_id for c in ranked] == [c.node_id for c in rank(inside, MODEL, w, residency)]


@settings(max_examples=150, deadline=None)
@given(st.data(), topologies(), st.sampled_from(REGIONS), weights)
def test_a_region_down_fails_over_inside_the_residency_and_never_outside(
    data: st.DataObject, topology: list[Candidate], dead: str, w: Weights
) -> None:
    others = [r for r in REGIONS if r != dead]
    survivor_region = data.draw(st.sampled_from(others))
    # at least one live node serving the model outside the dead region, and one inside
    survivor = Candidate(
        node_id="node-live",
        address="http://127.0.0.1:6999",
        region=survivor_region,
        advert=msgspec.structs.replace(data.draw(adverts(serves=True)), queue_depth=0),
    )
    victim = replace(survivor, node_id="node-dead", address="http://127.0.0.1:6998", region=dead)
    hows = st.integers(0, 2)
    network = [survivor, victim, *topology]
    network = [down(c, data.draw(hows)) if c.region == dead else c for c in network]

    residency = [dead, *data.draw(st.lists(st.sampled_from(others), min_size=1, unique=True))]
    if survivor_region not in residency:
        residency.append(survivor_region)
    ranked = rank(network, MODEL, w, residency)
    assert ranked, "a request whose residency allows a live region must fail over to it"
    assert all(c.region != dead and c.region in residency for c in ranked)
    assert "node-live" in {c.node_id for c in ranked}

    assert rank(network, MODEL, w, [dead]) == [], "only the dead region: no run elsewhere"


@settings(max_examples=100, deadline=None)
@given(topologies(), topologies(), weights)
def test_nodes_that_cannot_serve_never_reorder_those_that_can(
    topology: list[Candidate], extra: list[Candidate], w: Weights
) -> None:
    dead = [replace(down(c, i % 3), node_id=f"x-{c.node_id}") for i, c in enumerate(extra)]
    alone = [c.node_id for c in rank(topology, MODEL, w)]
    assert [c.node_id for c in rank(topology + dead, MODEL, w)] == alone


@settings(max_examples=100, deadline=None)
@given(topologies(min_size=1))
def test_all_weight_on_carbon_puts_a_least_carbon_node_first(topology: list[Candidate]) -> None:
    ranked = rank(topology, MODEL, Weights(latency=0, price=0, carbon=1))
    if ranked:
        least = min(gco2_per_1k_tokens(c.advert) for c in ranked)
        assert gco2_per_1k_tokens(ranked[0].advert) == least


huge = st.floats(0, 1e308)


@settings(max_examples=150, deadline=None)
@given(
    st.builds(
        ComputeAdvert,
        models=st.just([ModelOffer(name=MODEL, kind="chat", context_length=1)]),
        cores=st.just(1),
        memory_bytes=st.just(1),
        concurrency=st.integers(1, 4),
        queue_depth=st.integers(0, 3),
        latency_ms=huge,
        tokens_per_second=huge,
        pue=huge,
        grid_gco2_kwh=huge,
        watts=huge,
    ),
    st.floats(0, 1e308),
    weights,
)
def test_costs_are_never_nan_even_for_absurd_adverts(
    advert: ComputeAdvert, rtt: float, w: Weights
) -> None:
    c = Candidate(node_id="n", address="http://x", region=REGIONS[0], advert=advert, rtt_s=rtt)
    offer = c.offer(MODEL)
    assert offer is not None
    value = cost(c, offer, w)
    assert value == value and value >= 0  # not NaN
