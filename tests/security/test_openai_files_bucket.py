"""No project can take another's OpenAI files bucket first and break its files API.

Before: the files API kept a project's uploads and batch states in
``openai-files-<project id>``. Bucket names are global and project ids are no
secret (they are in every inference key, and in file ids), so any project could
create that bucket first; the victim's ``/v1/files`` and ``/v1/batches`` then
failed for good. Now the name is ``openai-files-`` plus an HMAC of the project's
encryption secret, which only holders of the project's keys can compute; and a
taken name (should the secret leak) answers a 409 that says what to do.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from skymesh.config import Credential
from skymesh.gateway.openai.files import BUCKET_HEADER, files_bucket
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    planet = Planet(tmp_path_factory.mktemp("squat"), PlanetConfig(node_count=4))
    thread = PlanetThread(planet).start()
    try:
        yield thread
    finally:
        thread.stop()


def _project(net: PlanetThread, name: str) -> tuple[Credential, Any]:
    """A new project whose S3 key the gateway takes, and an openai client of it."""
    gateway = net.planet.gateway
    assert gateway is not None
    cred = net.run(net.planet.create_credential(name))
    gateway.add_credential(cred)
    key = net.run(net.planet.create_inference_key(cred))
    return cred, openai.OpenAI(base_url=net.planet.endpoint + "/v1", api_key=key, max_retries=0)


def test_a_squatter_cannot_pre_create_the_victims_files_bucket(net: PlanetThread) -> None:
    victim, victim_ai = _project(net, "victim")
    squatter, _ = _project(net, "squatter")
    squat = net.boto3(squatter)
    # every name the squatter can work out from what it may know of the victim
    guesses = {f"openai-files-{victim.project_id}", f"openai-files-{victim.project_id[:8]}"}
    for name in guesses:
        squat.create_bucket(Bucket=name)

    uploaded = victim_ai.files.create(file=("in.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
    assert uploaded.id in {f.id for f in victim_ai.files.list().data}
    assert victim_ai.files.content(uploaded.id).content == b"{}\n"
    assert victim_ai.batches.list().data == []
    assert files_bucket(victim) not in guesses
    # and the squatter's buckets stay the squatter's, untouched
    assert {b["Name"] for b in squat.list_buckets()["Buckets"]} >= guesses
    for name in guesses:
        assert squat.list_objects_v2(Bucket=name).get("KeyCount", 0) == 0


def test_a_taken_files_bucket_is_reported_clearly(net: PlanetThread) -> None:
    """Should the name still be taken (the secret leaked), the answer says so and how to go on."""
    unlucky, unlucky_ai = _project(net, "unlucky")
    holder, _ = _project(net, "holder")
    net.boto3(holder).create_bucket(Bucket=files_bucket(unlucky))

    with pytest.raises(openai.ConflictError) as e:
        unlucky_ai.files.list()
    error = e.value.body
    assert isinstance(error, dict) and error["code"] == "files_bucket_taken", error
    assert BUCKET_HEADER in error["message"] and "another project" in error["message"]

    # a bucket of its own, named per request, still works
    net.boto3(unlucky).create_bucket(Bucket="unlucky-own-files")
    own = unlucky_ai.files.create(
        file=("in.jsonl", io.BytesIO(b"{}\n")),
        purpose="batch",
        extra_headers={BUCKET_HEADER: "unlucky-own-files"},
    )
    assert unlucky_ai.files.content(own.id).content == b"{}\n"
