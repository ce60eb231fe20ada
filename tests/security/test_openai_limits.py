"""The OpenAI routes read nothing unbounded: form fields, batch bodies and batch state objects.

Before: ``/v1/files`` read every form field but the file whole (under the S3 app's
1 TiB ``client_max_size``, which multipart reading does not even consult), so one
request could make the gateway hold any amount of memory; ``POST /v1/batches`` read
one buffer of at most 64 KiB and parsed whatever had arrived; a batch's state object,
which the project can overwrite through S3, was read whole on every retrieve.
Now fields are capped at ``MAX_FIELD`` (413), a form at ``MAX_PARTS`` parts (400),
the batch body at ``MAX_CREATE_BODY`` (413, also without a Content-Length), and a
state object at ``MAX_STATE`` (413; one that is not a state: 409), all in OpenAI's
error shape, and nothing is stored by a refused request.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from skymesh.gateway.openai import batches, files
from skymesh.gateway.openai.files import files_bucket
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    planet = Planet(tmp_path_factory.mktemp("limits"), PlanetConfig(node_count=4))
    thread = PlanetThread(planet).start()
    try:
        yield thread
    finally:
        thread.stop()


def _client(net: PlanetThread) -> Any:
    return openai.OpenAI(
        base_url=net.planet.endpoint + "/v1", api_key=net.planet.inference_key, max_retries=0
    )


def _send(net: PlanetThread, method: str, path: str, data: Any, **headers: str) -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                method,
                net.planet.endpoint + path,
                data=data,
                headers={"Authorization": f"Bearer {net.planet.inference_key}", **headers},
            ) as r,
        ):
            return r.status, await r.json(content_type=None)

    return net.run(go())


def _form(**fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        if name == "file":
            form.add_field("file", value, filename="in.jsonl", content_type="application/jsonl")
        else:
            form.add_field(name, value)
    return form


def _is_openai_error(body: Any, code: str) -> bool:
    err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and err.get("code") == code and set(err) >= {"message", "type"}


def _uploads(net: PlanetThread) -> set[str]:
    return {f.id for f in _client(net).files.list().data}


def test_an_oversized_form_field_is_refused_before_it_is_read(net: PlanetThread) -> None:
    before = _uploads(net)
    for name in ("purpose", "bucket"):
        big = "b" * (files.MAX_FIELD * 2048)  # 2 MiB: the gateway stops after 1 KiB
        status, body = _send(net, "POST", "/v1/files", _form(**{name: big, "file": "{}\n"}))
        assert status == 413 and _is_openai_error(body, "request_too_large"), body
        assert body["error"]["param"] == name
    # a field at the limit is fine (and says what is wrong with it)
    status, body = _send(
        net, "POST", "/v1/files", _form(purpose="x" * files.MAX_FIELD, file="{}\n")
    )
    assert status == 400 and body["error"]["param"] == "purpose", body
    assert _uploads(net) == before


def test_a_form_of_too_many_parts_is_refused(net: PlanetThread) -> None:
    before = _uploads(net)
    form = aiohttp.FormData()
    for i in range(files.MAX_PARTS + 1):
        form.add_field(f"extra{i}", "x")
    form.add_field("purpose", "batch")
    form.add_field("file", "{}\n", filename="in.jsonl")
    status, body = _send(net, "POST", "/v1/files", form)
    assert status == 400 and "parts" in body["error"]["message"], body
    assert _uploads(net) == before


def test_a_file_over_the_cap_is_refused_as_it_streams(
    net: PlanetThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_FILE", 256 * 1024)
    before = _uploads(net)
    status, body = _send(
        net, "POST", "/v1/files", _form(purpose="batch", file="{}\n" * (200 * 1024))
    )
    assert status == 413 and _is_openai_error(body, "request_too_large"), body
    assert _uploads(net) == before


def test_a_batch_body_over_the_cap_is_refused(net: PlanetThread) -> None:
    fid = _client(net).files.create(file=("in.jsonl", b"{}\n"), purpose="batch").id
    padding = "x" * batches.MAX_CREATE_BODY
    body = json.dumps(
        {
            "input_file_id": fid,
            "endpoint": "/v1/embeddings",
            "completion_window": "24h",
            "metadata": {"pad": padding},
        }
    ).encode()
    status, answer = _send(net, "POST", "/v1/batches", body, **{"Content-Type": "application/json"})
    assert status == 413 and _is_openai_error(answer, "request_too_large"), answer

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    status, answer = _send(
        net, "POST", "/v1/batches", chunks(), **{"Content-Type": "application/json"}
    )
    assert status == 413 and _is_openai_error(answer, "request_too_large"), answer
    assert _client(net).batches.list().data == []


def test_batch_state_objects_are_read_only_up_to_their_cap(net: PlanetThread) -> None:
    cred = net.planet.credential
    assert cred is not None
    s3 = net.boto3()
    client = _client(net)
    client.files.list()  # the files bucket exists from the first use on
    bucket = files_bucket(cred)

    # the project overwrites (or plants) a state object through S3
    huge = "batch_" + secrets.token_hex(16)
    s3.put_object(
        Bucket=bucket,
        Key=f"{batches.STATE_PREFIX}{huge}.json",
        Body=b"[" + b" " * (batches.MAX_STATE + 1) + b"]",
    )
    status, body = _send(net, "GET", f"/v1/batches/{huge}", None)
    assert status == 413 and _is_openai_error(body, "batch_state_too_large"), body

    garbage = "batch_" + secrets.token_hex(16)
    s3.put_object(Bucket=bucket, Key=f"{batches.STATE_PREFIX}{garbage}.json", Body=b"{nope")
    status, body = _send(net, "GET", f"/v1/batches/{garbage}", None)
    assert status == 409 and _is_openai_error(body, "batch_state_invalid"), body
    # the rest of the API is unharmed
    assert client.files.list().object == "list"


def test_a_malformed_form_is_a_400_in_openai_shape(net: PlanetThread) -> None:
    """aiohttp bounds part headers (line length, count) and boundaries: what it refuses is
    the client's fault, answered as such, not a 500."""
    before = _uploads(net)
    head = b'--XX\r\nContent-Disposition: form-data; name="purpose"\r\n'
    bodies = {
        "long header": head + b"X-Big: " + b"a" * 20_000 + b"\r\n\r\nbatch\r\n--XX--\r\n",
        "many headers": head
        + b"".join(b"X-H%d: a\r\n" % i for i in range(1000))
        + b"\r\nbatch\r\n--XX--\r\n",
        "no closing boundary": head + b"\r\nbatch",
        "wrong boundary": b"--YY\r\n" + head[6:] + b"\r\nbatch\r\n--YY--\r\n",
    }
    for what, raw in bodies.items():
        status, body = _send(
            net,
            "POST",
            "/v1/files",
            raw,
            **{"Content-Type": "multipart/form-data; boundary=XX"},
        )
        assert status == 400 and _is_openai_error(body, "invalid_multipart"), (what, body)
    assert _uploads(net) == before
