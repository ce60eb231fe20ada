"""Two coordinators over one database: the gateway and nodes spread their calls and
fail over, and either coordinator answers any call.

One planet for the module, on each engine: two coordinators sharing a database, six
nodes and a gateway, all given both coordinator URLs (nodes follow the key set).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import boto3
import pytest
import sqlalchemy as sa
from botocore.config import Config
from botocore.exceptions import ClientError

from skymesh import errors
from skymesh.admin import InferenceKeys
from skymesh.coordinator.db.schema import projects
from skymesh.rpc import RpcClient
from skymesh.testing.planet import Planet, PlanetThread
from skymesh.wire import routes
from skymesh.wire.inference import InferenceOrder, InferenceOrderRequest
from skymesh.wire.signing import open_signed
from tests.conftest import ON_BOTH_ENGINES, S3Client, planet_config, random_bytes

MiB = 1024 * 1024


pytestmark = ON_BOTH_ENGINES


@pytest.fixture(scope="module")
def duo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, planet_engine: str
) -> Iterator[PlanetThread]:
    root = tmp_path_factory.mktemp("coordinators")
    config = planet_config(request, planet_engine, node_count=6, coordinators=2)
    thread = PlanetThread(Planet(root, config)).start()
    try:
        yield thread
    finally:
        thread.stop()


def retrying_s3(planet: PlanetThread) -> S3Client:
    """boto3 as applications run it: retryable errors (500, 503) are retried."""
    cred = planet.planet.credential
    assert cred is not None
    return boto3.client(
        "s3",
        endpoint_url=planet.planet.endpoint,
        aws_access_key_id=cred.access_key_id,
        aws_secret_access_key=cred.secret_access_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 6, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def test_s3_works_and_calls_reach_both_coordinators(duo: PlanetThread) -> None:
    s3 = retrying_s3(duo)
    s3.create_bucket(Bucket="duo")
    small, big = random_bytes(3000, 1), random_bytes(300_000, 2)
    s3.put_object(Bucket="duo", Key="small", Body=small)
    s3.put_object(Bucket="duo", Key="big", Body=big)
    assert s3.get_object(Bucket="duo", Key="small")["Body"].read() == small
    assert s3.get_object(Bucket="duo", Key="big")["Body"].read() == big
    listed = s3.list_objects_v2(Bucket="duo")["Contents"]
    assert sorted(o["Key"] for o in listed) == ["big", "small"]

    parts = [random_bytes(5 * MiB, 3), random_bytes(1000, 4)]
    upload = s3.create_multipart_upload(Bucket="duo", Key="multi")["UploadId"]
    etags = [
        s3.upload_part(Bucket="duo", Key="multi", UploadId=upload, PartNumber=n, Body=body)["ETag"]
        for n, body in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket="duo",
        Key="multi",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    assert s3.get_object(Bucket="duo", Key="multi")["Body"].read() == b"".join(parts)

    gateway = duo.planet.gateway
    assert gateway is not None and gateway.coordinators is not None
    answered = gateway.coordinators.answered
    assert all(answered[url] > 0 for url in duo.planet.coordinator_urls), answered


class Traffic:
    """Threads that upload, read back and delete objects until stopped, keeping
    what was acknowledged and every error a client saw."""

    def __init__(self, planet: PlanetThread, workers: int = 2) -> None:
        self.s3 = retrying_s3(planet)
        self.stored: dict[str, bytes] = {}
        self.errors: list[str] = []
        self.done = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(workers)
        ]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(120)

    def _run(self, worker: int) -> None:
        rng = random.Random(worker)
        i = 0
        while not self._stop.is_set():
            key = f"w{worker}/{i}"
            i += 1
            try:
                if i % 6 == 0:
                    body = self._multipart(key, rng)
                else:
                    body = rng.randbytes(rng.choice((100, 20_000, 200_000)))
                    self.s3.put_object(Bucket="chaos", Key=key, Body=body)
                self.stored[key] = body
                got = self.s3.get_object(Bucket="chaos", Key=key)["Body"].read()
                if got != body:
                    self.errors.append(f"{key} read back different bytes")
                self.done += 1
            except ClientError as e:
                self.errors.append(f"{key}: {e}")

    def _multipart(self, key: str, rng: random.Random) -> bytes:
        parts = [rng.randbytes(5 * MiB), rng.randbytes(3000)]
        upload = self.s3.create_multipart_upload(Bucket="chaos", Key=key)["UploadId"]
        listed = []
        for n, body in enumerate(parts, 1):
            r = self.s3.upload_part(
                Bucket="chaos", Key=key, UploadId=upload, PartNumber=n, Body=body
            )
            listed.append({"PartNumber": n, "ETag": r["ETag"]})
        self.s3.complete_multipart_upload(
            Bucket="chaos", Key=key, UploadId=upload, MultipartUpload={"Parts": listed}
        )
        return b"".join(parts)


def test_a_coordinator_crashing_under_traffic_fails_no_request(duo: PlanetThread) -> None:
    planet = duo.planet
    retrying_s3(duo).create_bucket(Bucket="chaos")
    with Traffic(duo) as traffic:
        time.sleep(1.5)
        duo.run(planet.stop_coordinator(1, crash=True))
        time.sleep(3.0)  # past the nodes' offline_after: heartbeats must have failed over
        duo.run(planet.start_coordinator(1))
        time.sleep(1.0)
        duo.run(planet.stop_coordinator(0))  # a clean stop of the other one too
        time.sleep(2.0)
        duo.run(planet.start_coordinator(0))
        time.sleep(1.0)
    assert traffic.errors == []
    assert traffic.done >= 4, traffic.done
    s3 = retrying_s3(duo)
    for key, body in traffic.stored.items():
        assert s3.get_object(Bucket="chaos", Key=key)["Body"].read() == body, key
    duo.run(planet.wait_online(len(planet.nodes)))


def test_inference_is_routed_by_a_coordinator_the_node_does_not_heartbeat_to(
    duo: PlanetThread,
) -> None:
    planet = duo.planet
    cred = planet.credential
    assert cred is not None
    first, second = planet.coordinator_urls
    # a compute node that reaches the first coordinator only
    node = duo.run(
        planet.add_node("eu-west", compute=True, coordinator_urls=[first], compute_threads=1)
    )

    async def orders_from_second() -> InferenceOrder:
        async with aiohttp.ClientSession() as s:
            rpc = RpcClient(second, s, {"Authorization": f"Bearer {cred.api_key}"})
            deadline = time.monotonic() + 15
            while True:
                listed = await rpc.send(routes.COMPUTE_NODES, None)
                mine = [n for n in listed.nodes if n.node_id == node.node_id]
                if mine:
                    break
                assert time.monotonic() < deadline, "the second coordinator never listed it"
                await asyncio.sleep(0.1)
            model = mine[0].advert.models[0].name
            got = await rpc.send(
                routes.INFERENCE_ORDERS,
                InferenceOrderRequest(model=model, node_ids=[node.node_id], max_tokens=16),
            )
            coordinators = planet.coordinators
            return open_signed(
                got.orders[0], InferenceOrder, trusted=[coordinators[1].identity.public_key]
            )

    order = duo.run(orders_from_second())
    assert order.node_id == node.node_id
    assert planet.coordinators[1].inference.adverts.get(node.node_id) is not None
    duo.run(planet.stop_node(node))


def test_a_replaced_key_stops_working_on_the_other_coordinator(duo: PlanetThread) -> None:
    planet = duo.planet
    first, second = planet.coordinators
    second.auth.key_ttl = 1.0
    cred = duo.run(planet.create_credential("short-lived"))

    async def calls(url: str) -> int:
        async with aiohttp.ClientSession() as s:
            return len((await InferenceKeys(url, cred.api_key, s).list()).keys)

    assert duo.run(calls(second.url)) == 0  # verified, and remembered, by the second
    # the project's key is replaced (as a rotation will) through the first coordinator
    duo.run(
        first.db.write(
            lambda conn: conn.execute(
                sa.update(projects)
                .where(projects.c.project_id == cred.project_id)
                .values(api_key_hash=bytes(32))
            )
        )
    )
    deadline = time.monotonic() + 5
    while True:
        try:
            duo.run(calls(second.url))
        except errors.Unauthorized:  # once the second's verification is older than its ttl
            break
        assert time.monotonic() < deadline, "the removed key kept working"
        time.sleep(0.2)
