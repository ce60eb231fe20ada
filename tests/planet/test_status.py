"""`GET /v1/admin/status` and `skymesh status` on a live network with a node stopped."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
from typer.testing import CliRunner

import skymesh
from skymesh.admin import AdminClient
from skymesh.cli import app
from skymesh.status_console import StatusScreen
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.wire.status import NetworkStatus
from tests.conftest import S3Client, random_bytes
from tests.planet._durability import coordinator, pause_durability_loops


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    # Every segment on all four nodes, so a node stopped costs each segment a piece;
    # node 0 also serves compute.
    config = PlanetConfig(
        node_count=4,
        compute_nodes=1,
        regions=("eu-west", "us-east"),
        coordinator_overrides={"scheme": "2/3/4/4"},
    )
    thread = PlanetThread(Planet(tmp_path_factory.mktemp("status"), config)).start()
    pause_durability_loops(thread)  # the test runs the repair checker itself
    try:
        yield thread
    finally:
        thread.stop()


def _status(planet: PlanetThread) -> NetworkStatus:
    async def ask() -> NetworkStatus:
        p = planet.planet
        async with aiohttp.ClientSession() as s:
            return await AdminClient(p.coordinator_urls, p.admin_token, s).status()

    return planet.run(ask())


def _status_when(planet: PlanetThread, ok: Callable[[NetworkStatus], bool]) -> NetworkStatus:
    for _ in range(200):
        st = _status(planet)
        if ok(st):
            return st
        time.sleep(0.05)
    raise TimeoutError("the status never changed")


def test_status_route_sees_nodes_segments_loops_and_warnings(
    planet: PlanetThread, s3: S3Client
) -> None:
    p, c = planet.planet, coordinator(planet)
    s3.create_bucket(Bucket="status")
    for i in range(2):
        s3.put_object(Bucket="status", Key=f"k{i}", Body=random_bytes(20_000, i))
    logging.getLogger("skymesh.test_status").warning("disk [nearly] full on %s", "n1")

    st = _status(planet)
    assert st.durability is not None  # the first tally: a small network's is made at once
    assert st.coordinator_id == c.identity.id and st.version == skymesh.__version__
    assert [(k.coordinator_id, k.url) for k in st.coordinators] == [(c.identity.id, c.url)]
    # four nodes over two regions, operators op-0..op-3: one node a group, all up
    assert [(g.region, g.operator) for g in st.nodes] == [
        ("eu-west", "op-0"),
        ("eu-west", "op-2"),
        ("us-east", "op-1"),
        ("us-east", "op-3"),
    ]
    assert all(sum(g.states.values()) == 1 and g.capacity_bytes > 0 for g in st.nodes)
    assert not any(g.states.get("offline") for g in st.nodes)
    assert all(g.versions == {skymesh.__version__: 1} for g in st.nodes)
    assert st.durability.segments == 2 and st.durability.schemes[0].histogram == {4: 2}
    assert (st.repair_queue.queued, st.repair_queue.below_minimum) == (0, 0)
    assert {"audit", "gc", "repair", "repair-checker"} <= {x.name for x in st.leases.leases}
    assert all(x.held_here for x in st.leases.leases)
    # the compute node's advert rides its heartbeats: on a busy machine the first may
    # come after the network is up
    compute = _status_when(planet, lambda st: bool(st.compute)).compute
    assert [n.node_id for n in compute] == [p.nodes[0].node_id]
    assert compute[0].advert.models
    assert any(e.message == "disk [nearly] full on n1" and e.level == "WARNING" for e in st.events)

    # A node stops: offline in its group, a piece short in the tally once it is
    # made again, and queued for repair once the checker runs.
    stopped = p.nodes[3]
    planet.run(p.stop_node(stopped))
    planet.run(p.wait_offline([stopped]))
    cached = _status(planet)
    assert cached.durability == st.durability  # the tally is young: no new scan
    c.durability.tally.max_age = 0.0
    planet.run(c.loops["repair-checker"].run_once())  # its first step only waits
    planet.run(c.loops["repair-checker"].run_once())
    stale = _status(planet)  # answered at once with the old tally; a new one is started
    assert stale.durability == st.durability
    st = _status_when(planet, lambda s: s.durability != stale.durability)
    group = next(g for g in st.nodes if g.operator == "op-3")
    assert group.states == {"offline": 1} and group.capacity_bytes == 0
    assert st.durability is not None and st.durability.schemes[0].histogram == {3: 2}
    assert st.durability.at_risk_total == 2 and st.durability.lost_total == 0
    assert st.repair_queue.queued == 2 and st.repair_queue.histogram == {3: 2}
    assert st.repair_queue.below_minimum == 0


def test_status_cli_json_probes_coordinators_and_gateways(
    planet: PlanetThread, tmp_path: Path
) -> None:
    p, c = planet.planet, coordinator(planet)
    token_file = tmp_path / "admin-token"
    token_file.write_text(p.admin_token + "\n")
    target = ["--coordinator", c.url, "--admin-token-file", str(token_file)]

    result = CliRunner().invoke(app, ["status", "--json", "--gateway", p.endpoint, *target])
    shown = msgspec.json.decode(result.output, type=StatusScreen)
    probes = {(x.role, x.url): x for x in shown.probes}
    assert probes[("coordinator", c.url)].up and probes[("gateway", p.endpoint)].up
    assert probes[("coordinator", c.url)].version == skymesh.__version__
    assert probes[("gateway", p.endpoint)].version == skymesh.__version__
    assert shown.network.coordinator_id == c.identity.id
    # the node stopped by the test before is a warning, not a problem
    assert result.exit_code == (1 if shown.problems else 0), shown.problems

    dead = "http://127.0.0.1:9"  # discard: nothing listens
    result = CliRunner().invoke(app, ["status", "--json", "--gateway", dead, *target])
    assert result.exit_code == 1
    shown = msgspec.json.decode(result.output, type=StatusScreen)
    assert any(f"gateway {dead} is down" in x for x in shown.problems)

    result = CliRunner().invoke(app, ["status", "--gateway", p.endpoint, *target])
    assert "background loops" in result.output and "eu-west" in result.output

    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    result = CliRunner().invoke(
        app, ["status", "--coordinator", c.url, "--admin-token-file", str(wrong)]
    )
    assert result.exit_code == 2
