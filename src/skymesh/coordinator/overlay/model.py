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
    # declared energy profile (NodeConfig): placement's low-carbon preference and the
    # accounting's estimates read it
    pue: float = 1.2
    grid_gco2_kwh: float = 300.0
    storage_watts_per_tb: float = 2.0
    # its operator is admitted, not revoked, and allows its region (overlay.admission);
    # a node that is not gets no pieces, holds none that count, and is not audited.
    # Last: the fields before it are the ``nodes`` table's columns in order, so the
    # registry builds records from rows positionally (10,000 rows every reload).
    admitted: bool = True

    @property
    def carbon_intensity(self) -> float:
        """gCO2 per kWh drawn at the plug: PUE x grid intensity (never below 1 or 0)."""
        return max(self.pue, 1.0) * max(self.grid_gco2_kwh, 0.0)

    @property
    def storage_carbon(self) -> float:
        """gCO2 an hour per TB stored: watts per TB x PUE x grid intensity / 1000.

        Clamped (watts per TB at least 0.1, gCO2/kWh at the plug at least 1) so no
        declaration makes a node infinitely attractive to low-carbon placement.
        """
        return max(self.storage_watts_per_tb, 0.1) * max(self.carbon_intensity, 1.0) / 1000

    @property
    def free_bytes(self) -> int:
        return max(0, self.capacity_bytes - self.used_bytes)

    def is_online(self, now: float, offline_after: float) -> bool:
        return now - self.last_seen <= offline_after
