"""The node's link to its coordinator: trust, join, heartbeats.

One :meth:`CoordinatorLink.step` does what is due next: fetch the coordinator's
identity and check it is trusted (pinning it on first use), join with a signed
:class:`~skymesh.wire.registry.NodeInfo` carrying the operator's join token, or
send a signed heartbeat. Each answer's statement of the network's coordinator keys
goes to :meth:`CoordinatorTrust.follow` (``node/trust.py``). It returns
the seconds until the next step, so a :class:`~skymesh.loops.DrivenLoop`
runs it. When the coordinator is unreachable the node keeps serving pieces; the
link logs one warning per outage and retries with capped exponential backoff.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable

from skymesh import __version__
from skymesh.config import NodeConfig
from skymesh.errors import Forbidden, SkymeshError, Unavailable
from skymesh.node.orders import OrderVerifier
from skymesh.node.store import PieceStore
from skymesh.node.trust import CoordinatorTrust
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.identity import Identity, id_from_public_key
from skymesh.wire.inference import ComputeAdvert
from skymesh.wire.registry import Heartbeat, JoinResponse, NodeInfo
from skymesh.wire.signing import sign

log = logging.getLogger(__name__)

BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
MIN_INTERVAL = 0.01
MAX_INTERVAL = 3600.0


class CoordinatorLink:
    """Join and heartbeat state towards the coordinators (``config.coordinators``).

    With several, ``rpc`` spreads the calls over them and fails over; any of them
    answers for all (one database), so the identity check, the join and the heartbeats
    may each reach another one: each answer must come from a trusted key."""

    def __init__(
        self,
        *,
        config: NodeConfig,
        identity: Identity,
        store: PieceStore,
        verifier: OrderVerifier,
        rpc: RpcClient,
        address: str,
        trust: CoordinatorTrust,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ):
        self.config = config
        self.identity = identity
        self.store = store
        self.verifier = verifier
        self.rpc = rpc
        self.address = address
        self.trust = trust
        self._clock = clock
        self._jitter = jitter
        self.joined = False
        self.coordinator_id: str | None = None
        self.interval = config.heartbeat_interval
        self.heartbeats = 0
        self.failures = 0  # consecutive
        self.outage_since: float | None = None
        self.last_error: str | None = None
        # the node's compute advert (skymesh node --compute), sent with every heartbeat
        self.advert: Callable[[], ComputeAdvert] | None = None

    @property
    def url(self) -> str:
        return self.rpc.base_url

    async def step(self) -> float:
        """Join or heartbeat, whichever is due; the seconds until the next step."""
        try:
            if not self.joined:
                await self.join()
            else:
                resp = await self.rpc.send(routes.HEARTBEAT, sign(self.identity, self._heartbeat()))
                self.heartbeats += 1
                self.interval = self._interval(resp.heartbeat_interval)
                self.trust.follow(resp.keys, self.url)
                if not resp.known:
                    log.info("coordinator %s no longer knows this node; joining again", self.url)
                    self.joined = False
                    self._recovered()
                    return 0.0
        except Unavailable as e:
            return self._failed(e, outage=True)
        except SkymeshError as e:
            return self._failed(e, outage=False)
        self._recovered()
        return self.interval

    async def join(self) -> JoinResponse:
        """Check the coordinator is one we trust (pinning it on first use) and join it."""
        peer = await self.rpc.send(routes.IDENTITY, None)
        if peer.role != "coordinator" or len(peer.public_key) != 32:
            raise Forbidden(f"{self.url} is a {peer.role!r}, not a coordinator")
        if id_from_public_key(peer.public_key) != peer.id:
            raise Forbidden(f"{self.url} claims id {peer.id}, which its key does not prove")
        if peer.public_key not in self.verifier.trusted_keys:
            if not self.trust.may_pin:
                raise Forbidden(
                    f"coordinator {peer.id} at {self.url} has key {peer.public_key.hex()}, "
                    "which this node does not trust; not joining (a trusted coordinator's "
                    "key statement adds it; or set trusted_coordinators and remove "
                    f"{self.trust.trust_file})"
                )
            self.trust.pin(peer.public_key, peer.id, self.url)
        info = NodeInfo(
            node_id=self.identity.id,
            address=self.address,
            region=self.config.region,
            operator=self.config.operator,
            capacity_bytes=self.store.capacity_bytes,
            used_bytes=self.store.used_bytes,
            version=__version__,
            timestamp=self._clock(),
            join_token=self.config.join_token.strip(),
            pue=self.config.pue,
            grid_gco2_kwh=self.config.grid_gco2_kwh,
            storage_watts_per_tb=self.config.storage_watts_per_tb,
        )
        resp = await self.rpc.send(routes.JOIN, sign(self.identity, info))
        # (with several URLs the join may have reached another coordinator than the
        # identity call: its key must be trusted too)
        if resp.coordinator_public_key not in self.verifier.trusted_keys:
            raise Forbidden(
                f"join at {self.url} was answered with coordinator key"
                f" {resp.coordinator_public_key.hex()}, which this node does not trust"
                " (with several coordinators, set trusted_coordinators to all their keys)"
            )
        self.joined = True
        self.coordinator_id = resp.coordinator_id
        self.trust.follow(resp.keys, self.url)
        self.interval = self._interval(resp.heartbeat_interval)
        log.info(
            "joined coordinator %s at %s as node %s in region %s (serving %s, %d of %d bytes used)",
            resp.coordinator_id,
            self.url,
            self.identity.id,
            self.config.region,
            self.address,
            self.store.used_bytes,
            self.store.capacity_bytes,
        )
        return resp

    def _heartbeat(self) -> Heartbeat:
        return Heartbeat(
            node_id=self.identity.id,
            address=self.address,
            capacity_bytes=self.store.capacity_bytes,
            used_bytes=self.store.used_bytes,
            timestamp=self._clock(),
            compute=self.advert() if self.advert is not None else None,
        )

    def _interval(self, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            return self.config.heartbeat_interval
        return min(MAX_INTERVAL, max(MIN_INTERVAL, value))

    def backoff(self) -> float:
        """Delay after ``failures`` consecutive failures: doubling, capped, jittered."""
        base = min(BACKOFF_MAX, BACKOFF_BASE * (1 << min(max(self.failures - 1, 0), 30)))
        return base * (0.5 + 0.5 * self._jitter())

    def _failed(self, err: SkymeshError, *, outage: bool) -> float:
        self.failures += 1
        message = str(err)
        if outage:
            if self.outage_since is None:
                self.outage_since = self._clock()
                log.warning(
                    "lost the coordinator: %s; still serving pieces, retrying every heartbeat",
                    message,
                )
        elif message != self.last_error:
            log.warning("coordinator %s refused this node: %s %s", self.url, err.code, message)
        self.last_error = message
        if outage:
            # No coordinator answers (all restarting, or their database failing over):
            # keep trying at the heartbeat rate, the load they take anyway, so the node
            # counts as online again within a heartbeat of their return instead of
            # after a backoff grown through the outage (placements lack it meanwhile).
            return min(self.backoff(), max(self.interval, BACKOFF_BASE))
        return self.backoff()

    def _recovered(self) -> None:
        if self.outage_since is not None:
            log.info(
                "coordinator %s reachable again after %.0f s",
                self.url,
                self._clock() - self.outage_since,
            )
        self.outage_since = None
        self.failures = 0
        self.last_error = None
