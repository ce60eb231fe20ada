"""Which compute node serves a request: hard filters, then one cost. Pure, no I/O.

Filters first (as Akash and exo do): the node serves the model, is online and
not marked unhealthy, has room in its queue, and sits in an allowed region
when the request names regions. Then a cost in seconds-equivalent, the sum of

- latency: measured round trip + expected queue wait + recent service time (s),
- price: the model's price for 1,000 tokens in and 1,000 out (USD),
- carbon: gCO2 for 1,000 tokens (node watts x time per token x PUE x grid
  intensity, the location-based accounting of the SCI standard),

each times a weight the caller may choose per request. The defaults make
latency dominate and price and carbon break near-ties: 1 s ~ 1 USD per 1k
tokens ~ 100 gCO2 per 1k tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from skymesh.wire.inference import ComputeAdvert, ModelOffer

DEFAULT_RTT = 0.05  # seconds, for a node we have not measured yet
DEFAULT_TOKENS_PER_SECOND = 50.0  # for carbon, before a node has measured its throughput
MIN_TOKENS_PER_SECOND = 1e-3  # a slower figure is noise (1e-300 would make the time per token inf)
WEIGHT_NAMES = ("latency", "price", "carbon")


@dataclass(frozen=True)
class Weights:
    latency: float = 1.0  # per second
    price: float = 1.0  # per USD for 1k tokens in + 1k out
    carbon: float = 0.01  # per gCO2 for 1k tokens

    @classmethod
    def parse(cls, values: Mapping[str, object]) -> Weights:
        """From a mapping such as ``{"latency": 1, "carbon": 5}``; ValueError names the fault."""
        unknown = set(values) - set(WEIGHT_NAMES)
        if unknown:
            raise ValueError(
                f"unknown routing weight(s) {sorted(unknown)}; use {', '.join(WEIGHT_NAMES)}"
            )
        out: dict[str, float] = {}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"routing weight {name} must be a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"routing weight {name} must be finite and >= 0")
            out[name] = float(value)
        return cls(**out)


@dataclass(frozen=True)
class Candidate:
    """A compute node as the router sees it."""

    node_id: str
    address: str
    region: str
    advert: ComputeAdvert
    rtt_s: float = DEFAULT_RTT
    online: bool = True
    healthy: bool = True  # False: failed recently, sit out a while

    def offer(self, model: str) -> ModelOffer | None:
        return next((m for m in self.advert.models if m.name == model), None)

    def queue_full(self) -> bool:
        a = self.advert
        return a.queue_depth >= a.concurrency + a.queue_limit


def eligible(c: Candidate, model: str, regions: Iterable[str] | None = None) -> bool:
    """The hard filters: serves ``model``, online, healthy, room to queue, allowed region."""
    allowed = set(regions) if regions else None
    return (
        c.online
        and c.healthy
        and c.offer(model) is not None
        and not c.queue_full()
        and (allowed is None or c.region in allowed)
    )


def expected_wait(a: ComputeAdvert) -> float:
    """Seconds a new request waits before a worker takes it."""
    ahead = max(0, a.queue_depth - a.concurrency + 1)
    return ahead * (a.latency_ms / 1000.0) / max(a.concurrency, 1)


def kwh_per_1k_tokens(a: ComputeAdvert) -> float:
    """kWh drawn at the plug for 1,000 tokens: watts x time per token x PUE."""
    tps = a.tokens_per_second or DEFAULT_TOKENS_PER_SECOND
    kwh = a.watts * (1000.0 / max(tps, MIN_TOKENS_PER_SECOND)) / 3600.0 / 1000.0
    return kwh * max(a.pue, 1.0)


def gco2_per_1k_tokens(a: ComputeAdvert) -> float:
    return kwh_per_1k_tokens(a) * a.grid_gco2_kwh


def cost(c: Candidate, offer: ModelOffer, w: Weights) -> float:
    """Never NaN, so ranks are total: a term weighted 0 counts 0 even when its figure
    overflowed to inf, and a figure made of inf x 0 (absurd adverts) costs inf."""
    a = c.advert
    latency = c.rtt_s + expected_wait(a) + a.latency_ms / 1000.0
    price = (offer.price_in + offer.price_out) / 1000.0
    terms = ((w.latency, latency), (w.price, price), (w.carbon, gco2_per_1k_tokens(a)))
    total = sum((weight * value for weight, value in terms if weight), 0.0)
    return math.inf if math.isnan(total) else total


def rank(
    candidates: Sequence[Candidate],
    model: str,
    weights: Weights = Weights(),
    regions: Iterable[str] | None = None,
) -> list[Candidate]:
    """Eligible candidates, cheapest first (ties broken by node id, so runs repeat)."""
    allowed = list(regions) if regions else None
    scored: list[tuple[float, str, Candidate]] = []
    for c in candidates:
        if eligible(c, model, allowed):
            offer = c.offer(model)
            assert offer is not None
            scored.append((cost(c, offer, weights), c.node_id, c))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [c for _, _, c in scored]
