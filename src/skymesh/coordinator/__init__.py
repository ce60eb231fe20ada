"""The coordinator (control plane): node registry, placement, metadata, orders.

It never sees plaintext or keys: only ciphertext sizes, hashes, piece locations
and object names. ``service.py`` builds it from its subsystems: ``overlay/``
(nodes and their reputation), ``metainfo/`` (one module per metadata operation),
``durability/`` (audit, repair, garbage collection, retain) and ``inference/``
(compute, batch, metering); ``endpoints.py`` mounts the routes of ``wire.routes``.
"""

from skymesh.coordinator.service import CoordinatorService, run_coordinator

__all__ = ["CoordinatorService", "run_coordinator"]
