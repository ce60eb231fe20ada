"""What the gateway knows of compute nodes: the coordinator's list, measured RTTs, bans.

The list of online compute nodes (with their adverts) is fetched from the
coordinator and kept ``ttl`` seconds, so a burst of requests costs one fetch.
Round trips are measured by the gateway itself (``GET /healthz`` on each node,
at most every ``probe_interval``), since the distance that matters is from here.
A node that failed a request sits out ``ban`` seconds, as Petals does, so a
dead node costs one failed try, not one per request.

``routes`` maps a node's advertised address to the one this gateway uses instead
(`skymesh up --distance` puts a delay proxy there): every request and probe goes
by it, so the measured RTTs, and with them routing, see the simulated distance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import msgspec

from skymesh.compute.routing import DEFAULT_RTT, Candidate, Weights
from skymesh.errors import NotFound, SkymeshError
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.inference import (
    ComputeNode,
    InferenceOrder,
    InferenceOrderRequest,
)
from skymesh.wire.signing import Signed

log = logging.getLogger(__name__)

LIST_TTL = 1.0
PROBE_INTERVAL = 10.0
PROBE_TIMEOUT = 2.0
BAN = 15.0
RTT_EWMA = 0.3
WEIGHTS_TTL = 10.0  # seconds a project's default routing weights are kept


@dataclass
class _Rtt:
    seconds: float
    measured_at: float


class ComputeDirectory:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        ttl: float = LIST_TTL,
        probe_interval: float = PROBE_INTERVAL,
        ban: float = BAN,
        clock: Callable[[], float] = time.monotonic,
        weights_ttl: float = WEIGHTS_TTL,
        routes: Mapping[str, str] | None = None,
    ) -> None:
        self.session = session
        self.weights_ttl = weights_ttl
        self._weights: dict[RpcClient, tuple[float, Weights]] = {}  # per project key
        self.routes = dict(routes or {})
        self.ttl = ttl
        self.probe_interval = probe_interval
        self.ban = ban
        self.clock = clock
        self._nodes: list[ComputeNode] = []
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()
        self._rtt: dict[str, _Rtt] = {}
        self._probing: set[str] = set()
        self._banned_until: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def nodes(self, rpc: RpcClient, *, fresh: bool = False) -> list[ComputeNode]:
        async with self._lock:
            if fresh or self.clock() - self._fetched_at > self.ttl:
                listed = await rpc.send(routes.COMPUTE_NODES, None)
                self._nodes = [self._routed(n) for n in listed.nodes]
                self._fetched_at = self.clock()
                self._probe_stale()
        return self._nodes

    def _routed(self, node: ComputeNode) -> ComputeNode:
        via = self.routes.get(node.address)
        return node if via is None else msgspec.structs.replace(node, address=via)

    async def weights(self, rpc: RpcClient) -> Weights:
        """The project's default routing weights (set with ``skymesh routing set``).

        Kept ``weights_ttl`` seconds per project key, so a burst costs one fetch; when
        the coordinator cannot say, the last known weights (or the defaults) route.
        """
        now = self.clock()
        known = self._weights.get(rpc)
        if known is not None and now - known[0] <= self.weights_ttl:
            return known[1]
        try:
            r = await rpc.send(routes.OWN_ROUTING, None)
            weights = Weights.parse({"latency": r.latency, "price": r.price, "carbon": r.carbon})
        except (SkymeshError, ValueError) as e:
            log.info("project routing weights unavailable, using the last known: %s", e)
            weights = known[1] if known is not None else Weights()
        self._weights[rpc] = (now, weights)
        return weights

    def candidates(self, nodes: Sequence[ComputeNode]) -> list[Candidate]:
        now = self.clock()
        return [
            Candidate(
                node_id=n.node_id,
                address=n.address,
                region=n.region,
                advert=n.advert,
                rtt_s=self.rtt(n.address),
                healthy=self._banned_until.get(n.node_id, 0.0) <= now,
            )
            for n in nodes
        ]

    def rtt(self, address: str) -> float:
        known = self._rtt.get(address)
        if known is not None:
            return known.seconds
        measured = [r.seconds for r in self._rtt.values()]
        return sorted(measured)[len(measured) // 2] if measured else DEFAULT_RTT

    def failed(self, node_id: str) -> None:
        self._banned_until[node_id] = self.clock() + self.ban

    def succeeded(self, node_id: str) -> None:
        self._banned_until.pop(node_id, None)

    async def orders(
        self,
        rpc: RpcClient,
        model: str,
        node_ids: list[str],
        max_tokens: int,
        request_sha256: str = "",
    ) -> list[Signed]:
        """Signed orders for these nodes, for the request body of digest ``request_sha256``;
        a stale list is refreshed once and asked again."""

        def ask(ids: list[str]) -> InferenceOrderRequest:
            return InferenceOrderRequest(
                model=model, node_ids=ids, max_tokens=max_tokens, request_sha256=request_sha256
            )

        try:
            return (await rpc.send(routes.INFERENCE_ORDERS, ask(node_ids))).orders
        except NotFound:
            listed = {n.node_id for n in await self.nodes(rpc, fresh=True)}
            ids = [i for i in node_ids if i in listed]
            if not ids:
                raise
            signed = (await rpc.send(routes.INFERENCE_ORDERS, ask(ids))).orders
            by_id = dict(zip(ids, signed, strict=True))
            return [by_id[i] for i in node_ids if i in by_id]

    # ------------------------------------------------------------ RTT probes

    def _probe_stale(self) -> None:
        now = self.clock()
        for n in self._nodes:
            known = self._rtt.get(n.address)
            if n.address in self._probing:
                continue
            if known is None or now - known.measured_at > self.probe_interval:
                self._probing.add(n.address)
                task = asyncio.get_running_loop().create_task(self._probe(n.address))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _probe(self, address: str) -> None:
        try:
            started = time.perf_counter()
            timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
            async with self.session.get(f"{address}/healthz", timeout=timeout) as resp:
                await resp.read()
            self.record_rtt(address, time.perf_counter() - started)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            log.debug("RTT probe of %s failed: %s", address, e)
        finally:
            self._probing.discard(address)

    def record_rtt(self, address: str, seconds: float) -> None:
        known = self._rtt.get(address)
        value = seconds if known is None else (1 - RTT_EWMA) * known.seconds + RTT_EWMA * seconds
        self._rtt[address] = _Rtt(value, self.clock())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def order_of(signed: Signed) -> InferenceOrder:
    """What an order says (the coordinator signed it; the node verifies it)."""
    return msgspec.msgpack.decode(signed.body, type=InferenceOrder)
