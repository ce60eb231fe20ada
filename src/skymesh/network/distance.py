"""Simulated distance for `skymesh up --distance`: a gateway per region, delay proxies to nodes.

Every process of `skymesh up` runs on one machine, so without help each region
is a loopback hop from every other and routing has nothing to tell apart. With
``--distance`` each region gets its own gateway (the entry point for callers in
that region), and between the gateway of region A and every compute node of
region B sits a :class:`~skymesh.network.delay.DelayProxy` holding traffic for
``rtt(A, B)`` of an :class:`~skymesh.network.rtt.RttMatrix`. The gateway is told
the proxy's address in place of the node's (its ``node_routes``): nodes still
advertise their own address to the coordinator, and the gateway's RTT probes,
hence its routing, see the delay without being told about regions at all.

Only gateway-to-compute traffic is delayed: the storage data path (the client
library dialling nodes for pieces) and every role's traffic with the coordinator
still cross loopback directly. The proxies run inside the `skymesh up` process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from skymesh.network.delay import DelayProxy
from skymesh.network.rtt import RttMatrix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeSite:
    """Where a node listens and the region it stands for."""

    region: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"


class Distance:
    """The delay proxies of one network, one per (gateway region, node)."""

    def __init__(self, matrix: RttMatrix, host: str = "127.0.0.1") -> None:
        self.matrix = matrix
        self.host = host
        self.proxies: list[DelayProxy] = []

    async def routes_from(self, region: str, nodes: Iterable[NodeSite]) -> dict[str, str]:
        """Start a proxy to each node for a gateway in ``region``: {node address: proxy address}."""
        routes: dict[str, str] = {}
        for n in nodes:
            rtt = self.matrix.seconds(region, n.region)
            proxy = await DelayProxy(n.host, n.port, rtt, host=self.host).start()
            self.proxies.append(proxy)
            routes[n.address] = proxy.address
            log.debug("%s -> %s (%s): via %s, RTT %.1f ms", region, n.address, n.region,
                      proxy.address, rtt * 1000)  # fmt: skip
        return routes

    async def close(self) -> None:
        for proxy in self.proxies:
            await proxy.close()
        self.proxies.clear()
