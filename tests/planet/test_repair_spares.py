"""A small network keeps spare nodes, so repair has somewhere to put rebuilt pieces.

On 12 nodes the scheme is 6/8/10/10: every segment misses two nodes. Before, it
was 8/10/12/12 on every node, and a repaired piece had nowhere to go.
"""

from __future__ import annotations

from collections import Counter

import pytest

from skymesh.coordinator.durability.repair import checker
from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client, random_bytes
from tests.planet._durability import coordinator, pause_durability_loops, piece_rows


def test_lost_nodes_are_repaired_onto_the_spares(
    planet: PlanetThread, s3: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    pause_durability_loops(planet)
    c = coordinator(planet)
    p = planet.planet
    s3.create_bucket(Bucket="spares")
    objects = {f"o{i}": random_bytes(300_000 + i, seed=60 + i) for i in range(3)}
    for key, data in objects.items():
        s3.put_object(Bucket="spares", Key=key, Body=data)
    rows = piece_rows(planet)
    segs = {(r.stream_id, r.part, r.idx) for r in rows}
    assert {(r.k, r.repair, r.optimal) for r in rows} == {(6, 8, 10)}
    assert len(segs) == 3
    # Each segment misses 2 of the 12 nodes, so at least 6 nodes hold a piece of all three.
    holders = Counter(r.node_id for r in rows)
    full = [n for n in p.nodes if holders[n.node_id] == len(segs)]
    assert len(full) >= 6
    first, second = full[0], full[1]

    planet.run(p.stop_node(first))
    planet.run(p.wait_offline([first]))
    # Lazy repair: 9 healthy pieces are above the repair threshold of 8.
    first_round = planet.run(c.durability.repair_checker.step())
    assert first_round.full and first_round.queued == 0
    # Later rounds are incremental: only segments on nodes whose state changed (and
    # new segments; none count as new here) are judged.
    monkeypatch.setattr(checker, "CREATED_SLACK", -1e9)
    quiet = planet.run(c.durability.repair_checker.step())
    assert not quiet.full and quiet.segments == 0

    planet.run(p.stop_node(second))
    planet.run(p.wait_offline([second]))
    report = planet.run(c.durability.repair_checker.step())
    assert not report.full and report.segments == 3  # the three on `second`
    assert (report.queued, report.lowest_healthy) == (3, 8)
    done = []
    while (stats := planet.run(c.durability.repair_worker.repair_next())) is not None:
        done.append(stats)
        assert len(done) <= 3
    assert [(s.outcome, s.rebuilt) for s in done] == [("repaired", 2)] * 3

    down = {first.node_id, second.node_id}
    online = {n.node_id for n in p.nodes} - down
    region = {n.node_id: n.config.region for n in p.nodes}
    by_seg: dict[tuple[str, int, int], set[str]] = {}
    for r in piece_rows(planet):
        by_seg.setdefault((r.stream_id, r.part, r.idx), set()).add(r.node_id)
    for nodes in by_seg.values():
        # back at optimal, on the 10 nodes still up: the two spares took the rebuilt pieces
        assert nodes == online
        assert max(Counter(region[n] for n in nodes).values()) <= 10 - 6
    assert planet.run(c.durability.repair_checker.step()).queued == 0
    for key, data in objects.items():
        assert s3.get_object(Bucket="spares", Key=key)["Body"].read() == data
