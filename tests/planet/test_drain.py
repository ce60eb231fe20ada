"""Graceful exit: `skymesh node drain` moves every piece off a node, never below repair."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skymesh.cli import app
from skymesh.coordinator.durability.health import healthy
from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client, random_bytes
from tests.planet._durability import coordinator, pause_durability_loops, piece_rows


@pytest.fixture(scope="module")
def stored(planet: PlanetThread, s3: S3Client) -> dict[str, bytes]:
    pause_durability_loops(planet)
    s3.create_bucket(Bucket="drained")
    objects = {f"obj-{i}": random_bytes(400_000 + i * 1000, seed=30 + i) for i in range(3)}
    for key, data in objects.items():
        s3.put_object(Bucket="drained", Key=key, Body=data)
    p = planet.planet
    planet.run(p.add_node(p.config.regions[0]))  # one more node with room besides the spares
    planet.run(p.wait_online(len(p.nodes)))
    return objects


def _drain_cli(planet: PlanetThread, tmp_path: Path, index: int) -> str:
    node = planet.planet.nodes[index]
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f'[node]\ndata_dir = "{node.config.data_dir}"\n'
        f'coordinator_url = "{node.config.coordinator_url}"\n'
    )
    result = CliRunner().invoke(app, ["node", "drain", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    return result.output


def _healthy_counts(planet: PlanetThread) -> Counter[tuple[str, int, int]]:
    c = coordinator(planet)
    nodes = planet.run(c.overlay.registry.lookup({n.node_id for n in planet.planet.nodes}))
    reps = c.overlay.reputation.snapshot()
    now = c.clock()
    counts: Counter[tuple[str, int, int]] = Counter()
    for r in piece_rows(planet):
        ok = healthy(
            nodes.get(r.node_id), reps.get(r.node_id), now, offline_after=c.config.offline_after
        )
        counts[(r.stream_id, r.part, r.idx)] += ok
    return counts


def test_drain_moves_every_piece(
    planet: PlanetThread, s3: S3Client, stored: dict[str, bytes], tmp_path: Path
) -> None:
    c = coordinator(planet)
    # Segments use 10 of the 12 first nodes: drain one of those holding the most.
    per_node = Counter(r.node_id for r in piece_rows(planet))
    index = max(range(12), key=lambda i: per_node[planet.planet.nodes[i].node_id])
    leaving = planet.planet.nodes[index].node_id
    held = per_node[leaving]
    assert held >= 1
    out = _drain_cli(planet, tmp_path, index)
    assert f"{held} pieces left to move" in out
    rows = piece_rows(planet)
    optimal = {(r.stream_id, r.part, r.idx): r.optimal for r in rows}
    report = planet.run(c.durability.repair_checker.step())
    assert report.queued == held and report.misplaced == held
    # one segment at a time; no segment ever has fewer healthy pieces than before
    while (stats := planet.run(c.durability.repair_worker.repair_next())) is not None:
        assert stats.outcome == "repaired" and stats.rebuilt == 1 and stats.dropped == 1
        for seg, count in _healthy_counts(planet).items():
            assert count >= optimal[seg]
    assert leaving not in {r.node_id for r in piece_rows(planet)}
    planet.run(c.durability.repair_checker.step())
    assert "is drained" in _drain_cli(planet, tmp_path, index)
    rep = c.overlay.reputation.cached(leaving)
    assert rep is not None and rep.exited
    status = {n.node_id: n for n in planet.run(c.overlay.registry.node_list()).nodes}[leaving]
    assert status.exit == "drained"
    # the data reads back, and the drained node gets nothing new
    for key, data in stored.items():
        assert s3.get_object(Bucket="drained", Key=key)["Body"].read() == data
    s3.put_object(Bucket="drained", Key="later", Body=random_bytes(200_000, seed=40))
    assert leaving not in {r.node_id for r in piece_rows(planet)}
