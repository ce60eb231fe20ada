"""`skymesh up --distance`: a gateway per region, real delays, routing that follows them.

Real processes (coordinator, 4 nodes, 4 gateways), the official openai client, the
packaged embedding model on one compute node per region. Routing is told nothing
about regions: each gateway measures its nodes through the delay proxies, so the
test checks that the measured distance alone keeps callers near, and that callers
go to the next-nearest region once their own region's compute is killed.

The matrix is the test's own (``--rtt-matrix``): every choice it checks is at least
100 ms apart, more than a loaded machine's swings in the nodes' advertised service
time, which routing adds to the RTT (the default matrix has eu-west and eu-central
22 ms apart).
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest

from skymesh.compute.catalog import MINILM
from skymesh.network.rtt import RttMatrix
from tests.process.netutil import Up, free_port_block, start_up

openai = pytest.importorskip("openai")
pytest.importorskip("onnxruntime")
if MINILM.packaged_files() is None:
    pytest.skip("the ai extra is not installed: pip install 'skymesh[ai]'", allow_module_level=True)

pytestmark = pytest.mark.slow

NODES = 4  # one a region, each its compute node: what the test routes between
REGIONS = ("eu-west", "us-east", "ap-south", "eu-central")  # `skymesh up`'s order
MATRIX_TOML = """
same_region_ms = 1
[rtt_ms.eu-west]
eu-central = 100
us-east = 200
ap-south = 300
[rtt_ms.eu-central]
us-east = 250
ap-south = 150
[rtt_ms.us-east]
ap-south = 400
"""


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    base = free_port_block(NODES + 2 + len(REGIONS) - 1)  # region gateways follow the nodes
    root = tmp_path_factory.mktemp("distance")
    (root / "rtt.toml").write_text(MATRIX_TOML)
    u = start_up(
        root / "home",
        (base, base + 1, base + 2),
        nodes=NODES,
        args=["--distance", "--rtt-matrix", str(root / "rtt.toml")],
    )
    try:
        yield u
    finally:
        u.kill()


def _gateways(u: Up) -> dict[str, str]:
    return dict(json.loads((u.home / "run" / "gateways.json").read_text()))


def _client(url: str, u: Up) -> Any:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=u.inference_key, max_retries=0, timeout=60)


def _embed(url: str, u: Up) -> tuple[str, float]:
    """One embeddings request through ``url``: the region that served it, and its seconds."""
    started = time.perf_counter()
    raw = _client(url, u).embeddings.with_raw_response.create(model=MINILM.name, input=["hi"])
    elapsed = time.perf_counter() - started
    assert len(raw.parse().data[0].embedding) == 384
    return raw.headers["X-Skymesh-Region"], elapsed


def _compute_nodes(u: Up) -> dict[str, str]:
    """Region -> name of its compute node, from the configs `up` wrote."""
    out = {}
    for name in u.node_names():
        node = tomllib.loads(u.config_path(name).read_text())["node"]
        if node["compute"]:
            out[node["region"]] = name
    return out


def _until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f} s"
        time.sleep(0.5)


def _embedding_nodes(url: str, u: Up) -> int:
    for m in _client(url, u).models.list().data:
        if m.id == MINILM.name:
            return int(m.model_extra["nodes"])
    return 0


def test_each_region_is_served_near_and_fails_over_to_the_next_nearest(up: Up) -> None:
    matrix = RttMatrix.load(up.home.parent / "rtt.toml")  # the file `up` was given
    gateways = _gateways(up)
    assert list(gateways) == list(REGIONS)
    assert gateways["eu-west"] == up.endpoint  # the first region's gateway is the S3 one
    compute = _compute_nodes(up)
    assert sorted(compute) == sorted(REGIONS)
    _until("4 compute adverts", lambda: _embedding_nodes(up.endpoint, up) == len(REGIONS))

    # The first request on a gateway starts its RTT probes (through the proxies);
    # until they are back every node looks equally far, so wait for them.
    for region, url in gateways.items():
        _until(
            f"{region}'s gateway routing near", lambda url=url, r=region: _embed(url, up)[0] == r
        )
    for region, url in gateways.items():
        served = [_embed(url, up)[0] for _ in range(3)]
        assert served == [region] * 3, f"a caller in {region} was served from {served}"

    # No compute left in eu-west and ap-south: their callers go to the next-nearest region.
    for region in ("eu-west", "ap-south"):
        up.kill_role(compute[region])
    alive = [r for r in REGIONS if r not in ("eu-west", "ap-south")]
    for region in ("eu-west", "ap-south"):
        expected = matrix.nearest(region, alive)[0]
        server, seconds = _embed(gateways[region], up)
        assert server == expected, f"{region}'s caller went to {server}, not {expected}"
        # the answer crossed the simulated distance: at least one round trip
        assert seconds >= matrix.seconds(region, expected)
    for region in alive:
        assert _embed(gateways[region], up)[0] == region
