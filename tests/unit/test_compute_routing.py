"""Routing filter and cost over random small topologies (skymesh.compute.routing)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.compute.routing import Candidate, Weights, cost, eligible, rank
from skymesh.wire.inference import ComputeAdvert, ModelOffer

MODELS = ("embed-a", "chat-b", "chat-c")
REGIONS = ("eu-west", "us-east", "ap-south")


@st.composite
def candidates(draw: st.DrawFn, i: int) -> Candidate:
    served = draw(st.lists(st.sampled_from(MODELS), unique=True, max_size=3))
    price = draw(st.floats(0, 10))
    concurrency = draw(st.integers(1, 4))
    limit = draw(st.integers(0, 4))
    advert = ComputeAdvert(
        models=[
            ModelOffer(name=m, kind="chat", context_length=2048, price_in=price, price_out=price)
            for m in served
        ],
        cores=4,
        memory_bytes=1 << 30,
        concurrency=concurrency,
        queue_limit=limit,
        queue_depth=draw(st.integers(0, concurrency + limit + 1)),
        latency_ms=draw(st.floats(0, 2000)),
        tokens_per_second=draw(st.floats(0, 500)),
        pue=draw(st.floats(1, 2)),
        grid_gco2_kwh=draw(st.floats(0, 800)),
        watts=draw(st.floats(0, 300)),
    )
    return Candidate(
        node_id=f"node-{i:02d}",
        address=f"http://127.0.0.1:{7800 + i}",
        region=draw(st.sampled_from(REGIONS)),
        advert=advert,
        rtt_s=draw(st.floats(0, 0.5)),
        online=draw(st.booleans()),
        healthy=draw(st.booleans()),
    )


@st.composite
def topologies(draw: st.DrawFn) -> list[Candidate]:
    n = draw(st.integers(0, 8))
    return [draw(candidates(i)) for i in range(n)]


weights = st.builds(
    Weights, latency=st.floats(0, 10), price=st.floats(0, 10), carbon=st.floats(0, 10)
)
region_sets = st.one_of(st.none(), st.lists(st.sampled_from(REGIONS), min_size=1, unique=True))


@settings(max_examples=200, deadline=None)
@given(topologies(), st.sampled_from(MODELS), weights, region_sets)
def test_rank_never_picks_an_ineligible_node_and_puts_the_cheapest_first(
    nodes: list[Candidate], model: str, w: Weights, regions: list[str] | None
) -> None:
    ranked = rank(nodes, model, w, regions)
    costs = []
    for c in ranked:
        assert c.online and c.healthy and not c.queue_full()
        offer = c.offer(model)
        assert offer is not None
        assert regions is None or c.region in regions
        costs.append(cost(c, offer, w))
    # every eligible node is ranked, and none other
    assert {c.node_id for c in ranked} == {c.node_id for c in nodes if eligible(c, model, regions)}
    assert costs == sorted(costs)
    if ranked:
        assert costs[0] == min(costs)


def test_weights_choose_between_fast_and_cheap() -> None:
    def node(i: int, price: float, rtt: float) -> Candidate:
        offer = ModelOffer(name="m", kind="chat", context_length=8, price_in=price, price_out=price)
        advert = ComputeAdvert(models=[offer], cores=1, memory_bytes=1)
        return Candidate(node_id=f"n{i}", address="http://x", region="r", advert=advert, rtt_s=rtt)

    fast_dear, slow_cheap = node(1, price=500.0, rtt=0.01), node(2, price=0.0, rtt=0.2)
    by_latency = rank([fast_dear, slow_cheap], "m", Weights(latency=1, price=0, carbon=0))
    by_price = rank([fast_dear, slow_cheap], "m", Weights(latency=1, price=1, carbon=0))
    assert [c.node_id for c in by_latency] == ["n1", "n2"]
    assert [c.node_id for c in by_price] == ["n2", "n1"]


def test_weights_parse_rejects_what_it_cannot_use() -> None:
    assert Weights.parse({"carbon": 5}) == Weights(carbon=5.0)
    for bad in ({"speed": 1}, {"price": -1}, {"latency": "fast"}, {"carbon": float("nan")}):
        with pytest.raises(ValueError):
            Weights.parse(bad)
