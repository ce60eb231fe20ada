"""Prometheus metrics of each role, scraped over HTTP after some traffic.

The gateway and the nodes serve ``/metrics`` on a listener of their own
(``metrics_address``); the coordinator on its API, to the admin token.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from tests.conftest import S3Client

DOCS = Path(__file__).resolve().parents[2] / "docs"
ANY_PORT = "127.0.0.1:0"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    config = PlanetConfig(
        node_count=4,
        gateway_overrides={"metrics_address": ANY_PORT},
        node_overrides={"metrics_address": ANY_PORT},
    )
    thread = PlanetThread(Planet(tmp_path_factory.mktemp("planet"), config)).start()
    try:
        yield thread
    finally:
        thread.stop()


def families(url: str, token: str | None = None) -> list[Metric]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        return list(text_string_to_metric_families(r.read().decode()))


def scrape(url: str, token: str | None = None) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in families(url, token)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a labelled counter not yet counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def gateway_url(planet: PlanetThread) -> str:
    gateway = planet.planet.gateway
    assert gateway is not None and gateway.metrics_listener is not None
    listener = gateway.metrics_listener
    return listener.url


def test_gateway_counts_s3_requests_bytes_and_piece_transfers(
    metered: PlanetThread, tmp_path: Path
) -> None:
    s3: S3Client = metered.boto3()
    s3.create_bucket(Bucket="metered")
    before = scrape(gateway_url(metered))
    bodies = [b"a" * 10_000, b"b" * 20_000]  # over the inline threshold: pieces on nodes
    for i, body in enumerate(bodies):
        s3.put_object(Bucket="metered", Key=f"k{i}", Body=body)
    assert s3.get_object(Bucket="metered", Key="k1")["Body"].read() == bodies[1]
    after = scrape(gateway_url(metered))

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    put = {"operation": "PutObject"}
    assert grew("skymesh_gateway_s3_requests_total", status="200", **put) == 2
    assert grew("skymesh_gateway_s3_request_duration_seconds_count", **put) == 2
    # at least the bodies (aws-chunked framing, when the client uses it, adds more)
    assert grew("skymesh_gateway_s3_received_bytes_total", **put) >= sum(map(len, bodies))
    assert grew("skymesh_gateway_s3_sent_bytes_total", operation="GetObject") == len(bodies[1])
    ok_uploads = grew("skymesh_gateway_piece_transfers_total", direction="upload", outcome="ok")
    assert ok_uploads >= 2  # each object's segment went to several nodes
    assert grew("skymesh_gateway_piece_transfer_bytes_total", direction="upload") > sum(
        map(len, bodies)
    )  # erasure coding stores more than the plaintext
    assert grew("skymesh_gateway_piece_transfers_total", direction="download", outcome="ok") > 0
    assert grew("skymesh_gateway_piece_transfer_duration_seconds_count", direction="upload") > 0
    assert value(after, "process_cpu_seconds_total") > 0

    # the S3 port's /metrics is S3's: a bucket path, refused without a signature
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(metered.planet.endpoint + "/metrics", timeout=10)
    assert e.value.code == 403 and b"AccessDenied" in e.value.read()

    # every node's own counters add up to what the gateway sent them
    stored = 0.0
    for node in metered.planet.nodes:
        assert node.metrics_listener is not None
        samples = scrape(node.metrics_listener.url)
        stored += value(samples, "skymesh_node_piece_uploads_total")
        assert value(samples, "skymesh_node_pieces") == node.store.piece_count
        assert value(samples, "skymesh_node_free_bytes") == node.store.free_bytes
        assert value(samples, "skymesh_loop_runs_total", loop="heartbeat") > 0
    assert stored == total(
        after, "skymesh_gateway_piece_transfers_total", direction="upload", outcome="ok"
    )
    node = metered.planet.nodes[0]
    assert node.metrics_listener is not None
    samples = scrape(node.metrics_listener.url)
    assert value(samples, "skymesh_node_used_bytes") == node.store.used_bytes
    if value(samples, "skymesh_node_piece_uploads_total"):
        assert value(samples, "skymesh_node_orders_accepted_total", action="put") > 0
        assert value(samples, "skymesh_node_received_bytes_total") > 0


def test_coordinator_metrics_need_the_admin_token(metered: PlanetThread) -> None:
    coordinator = metered.planet.coordinator
    assert coordinator is not None
    url = coordinator.url + "/metrics"
    for token in (None, "wrong"):
        with pytest.raises(urllib.error.HTTPError) as e:
            scrape(url, token)
        assert e.value.code == 401

    admin = metered.planet.admin_token
    before = scrape(url, admin)
    metered.run(coordinator.loops["audit"].run_once())
    after = scrape(url, admin)
    runs = "skymesh_loop_runs_total"
    assert value(after, runs, loop="audit") == value(before, runs, loop="audit") + 1
    assert value(after, "skymesh_coordinator_nodes", state="online") + value(
        after, "skymesh_coordinator_nodes", state="unvetted"
    ) == len(metered.planet.nodes)
    # the refused scrapes were counted, by route and status
    assert (
        value(
            before,
            "skymesh_coordinator_api_requests_total",
            method="GET",
            route="/metrics",
            status="401",
        )
        == 2
    )
    assert (
        value(after, "skymesh_coordinator_db_transaction_duration_seconds_count", kind="read") > 0
    )
    assert value(after, "skymesh_coordinator_db_transactions_total", kind="write", outcome="ok") > 0
    assert value(after, "skymesh_coordinator_lease_held", loop="audit") == 1
    assert value(after, "process_open_fds") > 0


def test_operations_doc_lists_every_metric(metered: PlanetThread) -> None:
    """Each metric a role exports has its row in docs/operations.md "Metrics", and the
    example Grafana dashboard queries only those."""
    doc = (DOCS / "operations.md").read_text()
    planet = metered.planet
    assert planet.coordinator is not None and planet.nodes[0].metrics_listener is not None
    exported = [
        *families(gateway_url(metered)),
        *families(planet.coordinator.url + "/metrics", planet.admin_token),
        *families(planet.nodes[0].metrics_listener.url),
    ]
    names = {
        f.name + ("_total" if f.type == "counter" else "")
        for f in exported
        if not f.name.endswith("_created")  # when a series began, beside each counter
    }
    assert {n for n in names if n.startswith("skymesh_")} >= {
        "skymesh_gateway_s3_requests_total",
        "skymesh_coordinator_nodes",
        "skymesh_node_pieces",
        "skymesh_loop_runs_total",
    }
    assert [n for n in sorted(names) if f"`{n}`" not in doc and "process_" not in n] == []
    dashboard = json.loads((DOCS / "grafana" / "skymesh.json").read_text())
    queried = {
        re.sub(r"_bucket$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"skymesh_\w+", target["expr"])
    }
    assert len(queried) > 5 and [n for n in sorted(queried) if f"`{n}`" not in doc] == []
