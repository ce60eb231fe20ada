"""Estimated energy and emissions of storage and inference (pure arithmetic, no I/O).

Location-based, from what each node declares (docs/operations.md "Energy"):

- storage: the bytes a node holds x time, in TB-hours, x its ``storage_watts_per_tb``
  x its PUE gives Wh at the plug (/1000: kWh); x its grid's gCO2/kWh gives gCO2.
  Watts per TB are per TB *stored*, so a half-empty disk's idle draw is not counted:
  the estimate is the energy the data is responsible for, not the node's whole bill;
- inference: tokens x the kWh per token of the node's compute advert (its watts x
  time per token x PUE, as routing uses, ``compute.routing``) x its grid intensity.
  A node without an advert on record has its tokens left out ("not estimated").

These are estimates from declared figures, not measurements: a node that declares
a clean grid is believed, as its region is.
"""

from __future__ import annotations

from dataclasses import dataclass

from skymesh.compute.routing import kwh_per_1k_tokens
from skymesh.wire.inference import ComputeAdvert

TB = 1e12  # bytes (decimal, as disks are sold)
HOUR = 3600.0


@dataclass(frozen=True)
class Estimate:
    kwh: float = 0.0
    gco2: float = 0.0

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.kwh + other.kwh, self.gco2 + other.gco2)


def storage_estimate(
    byte_seconds: float, watts_per_tb: float, pue: float, grid_gco2_kwh: float
) -> Estimate:
    """Energy of holding ``byte_seconds`` (bytes x seconds) on one node."""
    tb_hours = byte_seconds / TB / HOUR
    kwh = tb_hours * max(watts_per_tb, 0.0) * max(pue, 1.0) / 1000.0
    return Estimate(kwh, kwh * max(grid_gco2_kwh, 0.0))


def inference_estimate(tokens: int, advert: ComputeAdvert | None) -> Estimate | None:
    """Energy of serving ``tokens`` on a node with this advert; None: not estimated."""
    if advert is None:
        return None
    kwh = tokens / 1000.0 * kwh_per_1k_tokens(advert)
    return Estimate(kwh, kwh * max(advert.grid_gco2_kwh, 0.0))
