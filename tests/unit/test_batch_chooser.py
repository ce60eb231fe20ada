"""The batch node chooser over random topologies: a batch never runs outside its residency.

:func:`skymesh.coordinator.inference.batch.choose_batch_node` is pure; these properties hold
for any nodes, regions, models, location constraints (prefix rule or a
jurisdictions map) and gateway preference order.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.coordinator.inference.batch import choose_batch_node
from skymesh.coordinator.overlay.residency import residency
from skymesh.wire.inference import ComputeAdvert, ComputeNode, ModelOffer

REGIONS = ["eu-west", "eu-west-2", "eu-central", "us-east", "us-west", "ap-south", "euro"]
CONSTRAINTS = ["", "eu", "eu-west", "us", "ap-south", "ap", "euro", "mars", "emea"]
JURISDICTIONS = {"emea": ["eu-central", "ap-south"], "us": ["us-west"]}
MODELS = [("emb", "embedding"), ("chat", "chat"), ("emb2", "embedding")]


@st.composite
def nodes(draw: st.DrawFn) -> list[ComputeNode]:
    count = draw(st.integers(0, 12))
    out = []
    for i in range(count):
        served = draw(st.lists(st.sampled_from(MODELS), unique=True, max_size=3))
        advert = ComputeAdvert(
            models=[ModelOffer(name=n, kind=k, context_length=256) for n, k in served],
            cores=4,
            memory_bytes=1 << 30,
            queue_depth=draw(st.integers(0, 9)),
        )
        out.append(
            ComputeNode(
                node_id=f"n{i:02d}",
                address=f"http://127.0.0.1:{7000 + i}",
                region=draw(st.sampled_from(REGIONS)),
                advert=advert,
            )
        )
    return out


@settings(max_examples=400, deadline=None)
@given(
    topology=nodes(),
    constraint=st.sampled_from(CONSTRAINTS),
    use_map=st.booleans(),
    model=st.sampled_from(MODELS),
    prefer=st.lists(st.sampled_from([f"n{i:02d}" for i in range(14)]), max_size=6),
    regions=st.lists(st.sampled_from(REGIONS), max_size=3),
)
def test_never_outside_the_residency(
    topology: list[ComputeNode],
    constraint: str,
    use_map: bool,
    model: tuple[str, str],
    prefer: list[str],
    regions: list[str],
) -> None:
    """Also with a request's own ``regions`` (interactive reads): they narrow, never widen."""
    where = residency(constraint, JURISDICTIONS if use_map else {})
    name, kind = model
    chosen = choose_batch_node(topology, name, kind, where, prefer, regions)
    eligible = [
        n
        for n in topology
        if where.allows(n.region)
        and (not regions or n.region in regions)
        and any(m.name == name and m.kind == kind for m in n.advert.models)
    ]
    if chosen is None:
        assert eligible == []  # refuses only when nothing inside qualifies
        return
    assert where.allows(chosen.region)
    assert chosen in eligible
    preferred = [p for p in prefer if any(n.node_id == p for n in eligible)]
    if preferred:
        assert chosen.node_id == preferred[0]  # the gateway's best, when it is inside
    else:
        assert chosen.advert.queue_depth == min(n.advert.queue_depth for n in eligible)


def test_a_preferred_node_outside_is_passed_over() -> None:
    advert = ComputeAdvert(
        models=[ModelOffer(name="emb", kind="embedding", context_length=256)],
        cores=1,
        memory_bytes=1,
    )
    near = ComputeNode(node_id="a", address="x", region="us-east", advert=advert)
    inside = ComputeNode(node_id="b", address="y", region="eu-central", advert=advert)
    where = residency("eu", {})
    assert choose_batch_node([near, inside], "emb", "embedding", where, ["a", "b"]) is inside
    assert choose_batch_node([near], "emb", "embedding", where, ["a"]) is None
    # the right model as the wrong kind does not qualify either
    assert choose_batch_node([inside], "emb", "chat", where) is None
