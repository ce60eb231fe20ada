"""Plain records the coordinator's modules pass around (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A registered node as the registry knows it."""

    node_id: str
    public_key: bytes
    address: str
    region: str
    operator: str
    capacity_bytes: int
    used_bytes: int
    version: str
    joined_at: float
    last_seen: float
    # its operator is admitted, not revoked, and allows its region (overlay.admission);
    # a node that is not gets no pieces, holds none that count, and is not audited
    admitted: bool = True

    @property
    def free_bytes(self) -> int:
        return max(0, self.capacity_bytes - self.used_bytes)

    def is_online(self, now: float, offline_after: float) -> bool:
        return now - self.last_seen <= offline_after
