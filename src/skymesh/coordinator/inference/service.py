"""The inference subsystem: compute nodes and their orders, batch orders, metering, API keys."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from skymesh.coordinator.endpoints import RouteTable
from skymesh.coordinator.inference.batch import add_batch_routes, verified_order
from skymesh.coordinator.inference.compute import ComputeAdverts, ComputeBook, add_compute_routes
from skymesh.coordinator.inference.keys import InferenceKeys, add_key_routes
from skymesh.coordinator.inference.metering import Meter, add_metering_routes
from skymesh.coordinator.lifecycle import Chore
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.wire.batch import BatchOrder
from skymesh.wire.identity import Identity


class InferenceService:
    """Which compute nodes serve what (``adverts``), the orders to use them, and usage.

    ``adverts`` is filled from heartbeats: give its ``observe`` to the registry.
    """

    chores: Sequence[Chore] = ()

    def __init__(self, m: Metainfo, adverts: ComputeAdverts, identity: Identity) -> None:
        self.m = m
        self.adverts = adverts
        self.compute = ComputeBook(m.registry, adverts, identity, clock=m.clock)
        self.meter = Meter(m.db, identity, clock=m.clock)
        self.keys = InferenceKeys(m.db, clock=m.clock)  # projects' OpenAI API keys

    def check_order(self, request: web.Request) -> BatchOrder:
        """The batch order a scoped route's caller holds (Forbidden without a valid one)."""
        return verified_order(self.compute, request)

    def add_routes(self, table: RouteTable) -> None:
        """Compute nodes and inference orders, batch and read orders, usage and routing,
        and the projects' inference API keys."""
        add_compute_routes(table, self.compute)
        add_batch_routes(table, self.compute, self.m, self.meter)
        add_metering_routes(table, self.meter)
        add_key_routes(table, self.keys)
