"""Accounting end to end: a download's get orders settled by the nodes, rolled up by the
``accounting`` loop, read by ``skymesh usage`` and ``skymesh payouts``; and the two
integrity rules of settlement (an order counts once; only orders signed for the node)."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime

import aiohttp
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from skymesh.cli import app
from skymesh.coordinator.db.schema import settled_orders
from skymesh.coordinator.service import CoordinatorService
from skymesh.errors import Forbidden
from skymesh.rpc import RpcClient
from skymesh.testing.planet import PlanetThread
from skymesh.wire import routes
from skymesh.wire.accounting import OrderSettlement, SettlementBatch, SettlementResult
from skymesh.wire.identity import Identity
from skymesh.wire.node import Order, PieceAction
from skymesh.wire.pieces import new_serial
from skymesh.wire.signing import Signed, sign
from tests.conftest import S3Client, random_bytes


def _coordinator(planet: PlanetThread) -> CoordinatorService:
    coordinator = planet.planet.coordinator
    assert coordinator is not None
    return coordinator


def _cli(planet: PlanetThread, *args: str) -> str:
    coordinator = _coordinator(planet)
    target = ["--coordinator", coordinator.url, "--token", planet.planet.admin_token]
    result = CliRunner().invoke(app, [*args, *target])
    assert result.exit_code == 0, result.output
    return result.output


def test_download_egress_reaches_usage_and_payouts(planet: PlanetThread, s3: S3Client) -> None:
    coordinator = _coordinator(planet)
    body = random_bytes(300_000, seed=7)
    s3.create_bucket(Bucket="accounting")
    s3.put_object(Bucket="accounting", Key="k", Body=body)
    assert s3.get_object(Bucket="accounting", Key="k")["Body"].read() == body

    # the nodes settle once the orders expired (their tallies are final then)
    later = time.time() + coordinator.config.order_ttl + 1
    settled = sum(planet.run(n.settler.settle(later)) for n in planet.planet.nodes)
    assert settled >= 1
    planet.run(coordinator.loops["accounting"].run_once())

    out = json.loads(_cli(planet, "usage", "--by", "node", "--json"))
    assert "rows" in out  # the inference summary, as before
    rows = out["accounting"]["rows"]
    egress = sum(r["egress_bytes"] for r in rows)
    # k pieces of the segment carry at least its bytes; the long tail may read a few more
    assert len(body) <= egress <= 3 * len(body)
    assert all(r["stored_bytes"] > 0 for r in rows if r["egress_bytes"])
    # estimated energy: every node declares the default profile (2 W/TB, PUE 1.2, 300 g)
    assert all(r["storage_kwh"] > 0 and r["storage_gco2"] > 0 for r in rows if r["stored_bytes"])
    by_project = json.loads(_cli(planet, "usage", "--by", "project", "--json"))["accounting"]
    assert sum(r["egress_bytes"] for r in by_project["rows"]) == egress

    table_out = _cli(planet, "usage", "--by", "operator")
    assert "storage and egress by operator" in table_out and "inference" not in table_out
    assert "estimated energy by operator" in table_out

    month = datetime.now(UTC).strftime("%Y-%m")
    assert f"payouts {month}" in _cli(planet, "payouts", "--month", month)
    table = list(csv.DictReader(io.StringIO(_cli(planet, "payouts", "--month", month, "--csv"))))
    assert table and {r["month"] for r in table} == {month}
    assert sum(float(r["egress_gb"]) for r in table) == pytest.approx(egress / 1e9, abs=1e-5)
    report = json.loads(_cli(planet, "payouts", "--month", month, "--json"))
    assert report["holdback"] == coordinator.config.payout_holdback
    assert [r["operator"] for r in report["rows"]] == [r["operator"] for r in table]
    assert sum(row["gross"] for row in report["rows"]) > 0
    for row in report["rows"]:  # every node joined this month: the first month's share held
        assert row["held"] == pytest.approx(row["gross"] * report["holdback"][0] / 100)
        assert row["net"] == pytest.approx(row["gross"] - row["held"])


def test_settlement_counts_an_order_once_and_only_for_its_node(planet: PlanetThread) -> None:
    coordinator = _coordinator(planet)
    node, other = planet.planet.nodes[0], planet.planet.nodes[1]

    def order(node_id: str, max_bytes: int = 1000, action: PieceAction = PieceAction.GET) -> Signed:
        return coordinator.orders.order(node_id, "ab" * 32, action, max_bytes)

    async def settle(signer: Identity, *claims: tuple[Signed, int]) -> SettlementResult:
        batch = SettlementBatch(
            node_id=signer.id,
            timestamp=time.time(),
            settlements=[OrderSettlement(order=o, served_bytes=n) for o, n in claims],
        )
        async with aiohttp.ClientSession() as session:
            rpc = RpcClient(coordinator.url, session)
            return await rpc.send(routes.SETTLE_ORDERS, sign(signer, batch))

    good = order(node.node_id)
    first = planet.run(settle(node.identity, (good, 600)))
    assert (first.accepted, first.duplicates, first.refused) == (1, 0, [])
    replay = planet.run(settle(node.identity, (good, 600), (good, 900)))
    assert (replay.accepted, replay.duplicates, replay.refused) == (0, 2, [])
    metrics = planet.run(coordinator.metrics.exposition()).decode()
    assert 'skymesh_coordinator_settlements_total{outcome="duplicate"} 2.0' in metrics

    forger = Identity.generate()  # a key no coordinator of the network holds
    now = time.time()
    forged = sign(
        forger,
        Order(
            serial=new_serial(),
            coordinator_id=forger.id,
            node_id=node.node_id,
            piece_id="ab" * 32,
            action=PieceAction.GET,
            max_bytes=10**12,
            expires_at=now + 60,
            issued_at=now,
        ),
    )
    refused = planet.run(
        settle(
            node.identity,
            (forged, 10**9),  # signed by no coordinator
            (order(other.node_id), 10),  # another node's order
            (order(node.node_id, max_bytes=1000), 1001),  # past its limit
            (order(node.node_id, action=PieceAction.PUT), 10),  # not a read
        )
    )
    assert (refused.accepted, refused.duplicates) == (0, 0)
    reasons = [r.reason for r in refused.refused]
    assert "untrusted key" in reasons[0] and "not the settling node" in reasons[1]
    assert "1..1000" in reasons[2] and "only get orders" in reasons[3]
    # a batch not signed by a registered node is refused whole
    with pytest.raises(Forbidden):
        planet.run(settle(forger, (order(node.node_id), 10)))

    def recorded(conn: sa.Connection) -> list[tuple[str, int]]:
        rows = conn.execute(
            sa.select(settled_orders.c.node_id, settled_orders.c.bytes).where(
                settled_orders.c.node_id.in_([node.node_id, other.node_id]),
                settled_orders.c.settled_at >= now - 120,
                settled_orders.c.bytes.in_([10, 600, 900, 1001, 10**9]),
            )
        )
        return [(r.node_id, int(r.bytes)) for r in rows]

    assert planet.run(coordinator.db.read(recorded)) == [(node.node_id, 600)]
