"""The energy placement benchmark's arithmetic (bench/energy_placement.py), without a network."""

from __future__ import annotations

import pytest
from bench import energy_placement as ep


def test_footprint_is_accountings_formula_per_gb_of_object() -> None:
    nodes = {
        "a": ep.NodeProfile("r1", "op-a", pue=1.5, grid_gco2_kwh=400.0, watts_per_tb=2.0),
        "b": ep.NodeProfile("r2", "op-b", pue=1.0, grid_gco2_kwh=0.0, watts_per_tb=2.0),
    }
    placed = [
        ep.Piece(("s", 0, 0), "a", 10**9, (1, 1, 2, 2)),
        ep.Piece(("s", 0, 0), "b", 10**9, (1, 1, 2, 2)),
    ]
    gco2, wh = ep.footprint(placed, nodes, object_bytes=10**9)
    # 1 GB for 730 h at 2 W/TB: 1.46 Wh at the disk; x PUE 1.5 on a, x 1.0 on b
    assert wh == pytest.approx(1.46 * 1.5 + 1.46)
    assert gco2 == pytest.approx(1.46 * 1.5 / 1000 * 400)  # b's grid is carbon-free
    got = ep.spread(placed, nodes)
    assert (got["regions_min"], got["operators_min"]) == (2, 2)
    assert got["left_after_region_min"] == 1 and got["outage_lost"] == 0


def test_low_carbon_draws_cost_less_carbon_and_no_spread() -> None:
    got = ep.drawn(40, 1024 * 1024, vetted=True)
    plain, green = got["plain"], got["low-carbon"]
    assert green["gco2_per_gb_month"] < 0.95 * plain["gco2_per_gb_month"]
    for c in (plain, green):
        assert c["regions_min"] == len(ep.REGION_GRID) and c["outage_lost"] == 0
        assert c["left_after_region_min"] >= c["k"]
    table = ep.table(got, 24)
    assert "| **gCO2 per GB-month** |" in table and "loss per segment-year" in table
