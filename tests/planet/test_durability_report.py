"""The durability report on a live network with nodes stopped: the admin route and the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from skymesh.cli import app
from skymesh.config import CoordinatorConfig, config_to_toml
from skymesh.coordinator.durability.report import SegmentRow, summarize
from skymesh.rpc import RpcClient
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.wire import routes
from skymesh.wire.durability import DurabilityReport, ObjectPieces
from tests.conftest import S3Client, random_bytes
from tests.planet._durability import pause_durability_loops


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    root = tmp_path_factory.mktemp("durability")
    # Every segment on every node (no spares), so stopping any node costs each a piece.
    planet = Planet(root, PlanetConfig(node_count=6, coordinator_overrides={"scheme": "4/5/6/6"}))
    thread = PlanetThread(planet).start()
    pause_durability_loops(thread)  # repair must not heal what the test breaks on purpose
    try:
        yield thread
    finally:
        thread.stop()


async def _pieces(planet: Planet, bucket: str, key: str) -> ObjectPieces:
    import aiohttp

    from skymesh.admin import AdminClient

    assert planet.coordinator is not None
    async with aiohttp.ClientSession() as s:
        return await AdminClient(planet.coordinator.url, planet.admin_token, s).object_pieces(
            bucket, key
        )


async def _report(planet: Planet, token: str | None = None) -> DurabilityReport:
    import aiohttp

    assert planet.coordinator is not None
    async with aiohttp.ClientSession() as s:
        rpc = RpcClient(
            planet.coordinator.url,
            s,
            {"Authorization": f"Bearer {token or planet.admin_token}"},
        )
        return await rpc.send(routes.DURABILITY, None)


def _report_when(planet: PlanetThread, healthy_nodes: int) -> DurabilityReport:
    """The report once the coordinator sees ``healthy_nodes`` healthy (offline takes ~2 s)."""

    async def wait() -> DurabilityReport:
        for _ in range(200):
            report = await _report(planet.planet)
            if report.healthy_nodes == healthy_nodes:
                return report
            await asyncio.sleep(0.05)
        raise TimeoutError(f"never saw {healthy_nodes} healthy nodes")

    return planet.run(wait())


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["durability", *args])
    return result.exit_code, result.output


def test_report_counts_healthy_pieces_as_nodes_stop(
    planet: PlanetThread, s3: S3Client, tmp_path: Path
) -> None:
    from skymesh.errors import BadRequest, NotFound, Unauthorized

    p = planet.planet
    s3.create_bucket(Bucket="dur")
    for i in range(3):
        s3.put_object(Bucket="dur", Key=f"k{i}", Body=random_bytes(50_000, i))
    s3.put_object(Bucket="dur", Key="tiny", Body=b"inline")
    with pytest.raises(Unauthorized):
        planet.run(_report(p, token="wrong"))

    full = _report_when(planet, 6)
    assert (full.segments, full.inline_segments, full.nodes) == (3, 1, 6)
    [scheme] = full.schemes
    assert (scheme.scheme.k, scheme.scheme.repair, scheme.scheme.total) == (4, 5, 6)
    assert scheme.histogram == {6: 3} and scheme.lost == 0 and full.lost_total == 0
    assert p.coordinator is not None
    url, token = p.coordinator.url, p.admin_token
    code, out = _cli("--coordinator", url, "--token", token)
    assert code == 0, out
    assert "scheme 4/5/6/6: 3 segments" in out and "no segment is lost" in out

    # One node down: every segment drops to 5 = repair, queued for repair.
    planet.run(p.stop_node(p.nodes[0]))
    one_down = _report_when(planet, 5)
    assert one_down.schemes[0].histogram == {5: 3}
    assert one_down.schemes[0].at_or_below_repair == 3 and one_down.at_risk_total == 3
    assert {s.key for s in one_down.at_risk} == {"k0", "k1", "k2"}
    assert one_down.lost_total == 0
    # ... and the object lookup names the stopped node's piece lost, the others healthy
    where = planet.run(_pieces(p, "dur", "k1"))
    [seg] = where.segments
    assert (where.size, where.inline_segments, seg.healthy, seg.scheme.k) == (50_000, 0, 5, 4)
    assert [x.piece_num for x in seg.pieces] == list(range(6))
    states = {x.node_id: x.state for x in seg.pieces}
    assert states.pop(p.nodes[0].node_id) == "lost"
    assert set(states.values()) == {"healthy"} and len(states) == 5
    tiny = planet.run(_pieces(p, "dur", "tiny"))
    assert (tiny.inline_segments, tiny.segments) == (1, [])
    with pytest.raises(NotFound):
        planet.run(_pieces(p, "dur", "nope"))
    with pytest.raises(NotFound):
        planet.run(_pieces(p, "nobucket", "k1"))
    with pytest.raises(BadRequest):
        planet.run(_pieces(p, "dur", ""))

    # Three down: 3 < k = 4, lost until they return; the CLI says so and exits 1.
    planet.run(p.stop_node(p.nodes[1]))
    planet.run(p.stop_node(p.nodes[2]))
    lost = _report_when(planet, 3)
    assert lost.schemes[0].histogram == {3: 3} and lost.lost_total == 3
    assert {(s.bucket, s.key, s.healthy, s.stored) for s in lost.lost} == {
        ("dur", f"k{i}", 3, 6) for i in range(3)
    }
    code, out = _cli("--coordinator", url, "--token", token)
    assert code == 1, out
    assert "LOST" in out and "k1" in out

    # From a `skymesh up` home: the coordinator's config.toml and state.json.
    home = tmp_path / "home"
    (home / "coordinator").mkdir(parents=True)
    cfg = CoordinatorConfig(port=int(url.rsplit(":", 1)[1]))
    (home / "coordinator" / "config.toml").write_text(config_to_toml(cfg))
    (home / "state.json").write_text(json.dumps({"admin_token": token}))
    code, out = _cli("--home", str(home), "--json")
    assert code == 1
    assert msgspec.json.decode(out, type=DurabilityReport).lost_total == 3
    code, out = _cli("--home", str(tmp_path / "nowhere"))
    assert code == 2 and "pass --coordinator" in out


def test_summarize_worst_first_and_capped() -> None:
    rows = [
        SegmentRow("b", f"k{i}", 0, 0, 4, 5, 6, 6, stored=6, healthy=h)
        for i, h in enumerate([6, 5, 3, 4, 0, 5])
    ]
    r = summarize(rows, generated_at=0.0, nodes=6, healthy_nodes=4, inline_segments=0, cap=2)
    assert r.schemes[0].histogram == {0: 1, 3: 1, 4: 1, 5: 2, 6: 1}
    assert (r.lost_total, r.at_risk_total) == (2, 5)
    assert [s.key for s in r.lost] == ["k4", "k2"]
    assert [s.key for s in r.at_risk] == ["k4", "k2"]
