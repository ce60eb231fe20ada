"""The inference subsystem: compute nodes and their orders, batch orders, spot checks,
metering, API keys."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from skymesh.coordinator.endpoints import RouteTable
from skymesh.coordinator.inference.batch import add_batch_routes, verified_order
from skymesh.coordinator.inference.compute import ComputeAdverts, ComputeBook, add_compute_routes
from skymesh.coordinator.inference.keys import InferenceKeys, add_key_routes
from skymesh.coordinator.inference.metering import Meter, add_metering_routes
from skymesh.coordinator.inference.spotcheck import add_spot_check_routes
from skymesh.coordinator.keyring import Keyring
from skymesh.coordinator.lifecycle import Chore
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.overlay.compute_reputation import ComputeReputationBook
from skymesh.wire.batch import BatchOrder
from skymesh.wire.identity import Identity


class InferenceService:
    """Which compute nodes serve what (``adverts``), the orders to use them, and usage.

    ``adverts`` is filled from heartbeats: give its ``observe`` to the registry.
    ``standing`` is the overlay's compute reputation, which spot-check reports move.
    """

    chores: Sequence[Chore] = ()

    def __init__(
        self,
        m: Metainfo,
        adverts: ComputeAdverts,
        identity: Identity,
        keyring: Keyring,
        standing: ComputeReputationBook,
    ) -> None:
        self.m = m
        self.adverts = adverts
        self.identity = identity
        self.keyring = keyring  # orders shown back to us are checked against every current key
        self.standing = standing
        self.compute = ComputeBook(
            m.registry,
            adverts,
            identity,
            standing,
            vetting_audits=m.config.compute_vetting_audits,
            clock=m.clock,
        )
        self.meter = Meter(m.db, keyring, clock=m.clock)
        self.keys = InferenceKeys(m.db, clock=m.clock)  # projects' OpenAI API keys

    async def check_order(self, request: web.Request) -> BatchOrder:
        """The batch order a scoped route's caller holds (Forbidden without a valid one)."""
        return await verified_order(self.compute, self.keyring, request)

    def add_routes(self, table: RouteTable) -> None:
        """Compute nodes and inference orders, batch and read orders, spot-check reports,
        usage and routing, and the projects' inference API keys."""
        add_compute_routes(table, self.compute)
        add_spot_check_routes(table, self.standing, self.keyring, self.m.registry, self.m.clock)
        add_batch_routes(table, self.compute, self.m, self.meter)
        add_metering_routes(table, self.meter)
        add_key_routes(table, self.keys)
