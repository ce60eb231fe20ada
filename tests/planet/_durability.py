"""Helpers shared by the audit, repair and drain tests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.schema import pieces, segments
from skymesh.coordinator.service import CoordinatorService
from skymesh.testing.planet import PlanetThread


def coordinator(planet: PlanetThread) -> CoordinatorService:
    c = planet.planet.coordinator
    assert c is not None
    return c


def pause_durability_loops(planet: PlanetThread) -> None:
    """Tests drive audits and repair with run_once-style calls, never the background loops."""
    loops = coordinator(planet).loops
    for name in ("audit", "repair-checker", "repair"):
        loops[name].pause()


def piece_rows(planet: PlanetThread) -> list[Any]:
    """Every (stream_id, part, idx, piece_num, node_id) with its segment's scheme."""
    c = coordinator(planet)
    join = pieces.join(
        segments,
        sa.and_(
            segments.c.stream_id == pieces.c.stream_id,
            segments.c.part == pieces.c.part,
            segments.c.idx == pieces.c.idx,
        ),
    )
    q = sa.select(
        pieces.c.stream_id,
        pieces.c.part,
        pieces.c.idx,
        pieces.c.piece_num,
        pieces.c.node_id,
        segments.c.k,
        segments.c.repair,
        segments.c.optimal,
    ).select_from(join)
    return planet.run(c.db.read(lambda conn: list(conn.execute(q).all())))
