"""The coordinator (control plane): node registry, placement, metadata, orders.

It never sees plaintext or keys: only ciphertext sizes, hashes, piece locations
and object names. See ``api.py`` for its routes and ``metainfo/`` for one module
per metadata operation.
"""

from skymesh.coordinator.service import CoordinatorService, run_coordinator

__all__ = ["CoordinatorService", "run_coordinator"]
