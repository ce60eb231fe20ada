"""Anonymous and CORS requests cannot make a gateway flood the coordinator.

To answer an unsigned request, a CORS preflight, or add CORS headers to a request
with an ``Origin``, the gateway must find which of its projects owns the bucket
(``/v1/buckets/config``). A burst of made-up bucket names costs the coordinator
a bounded number of such calls, counted at the coordinator, and every caller a
quick answer (403, or 503 SlowDown past the bound); names already known keep
being served.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from skymesh.coordinator.metainfo import api
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.gateway.s3.public import BucketDirectory
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.wire import routes
from skymesh.wire.metainfo import BucketConfig, BucketRequest
from tests.conftest import S3Client

Request = tuple[str, str, dict[str, str]]  # method, path, headers
RATE = 10.0  # searches a second, and the burst, this gateway allows
IN_FLIGHT = 4
QUICK = 2.0  # seconds: no answer waits on the coordinator's backlog


class Calls:
    """``/v1/buckets/config`` calls the coordinator answered, by bucket name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def about(self, names: set[str]) -> int:
        return sum(1 for n in self.names if n in names)


@pytest.fixture(scope="module")
def calls() -> Calls:
    return Calls()


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory, calls: Calls) -> Iterator[PlanetThread]:
    real = api.PROJECT_OPERATIONS[routes.BUCKET_CONFIG]

    async def counted(m: Metainfo, project_id: str, req: BucketRequest) -> BucketConfig:
        calls.names.append(req.name)
        config: BucketConfig = await real(m, project_id, req)
        return config

    config = PlanetConfig(
        node_count=3,
        gateway_overrides={
            "bucket_lookups_per_second": RATE,
            "bucket_lookups_in_flight": IN_FLIGHT,
        },
    )
    # the coordinator mounts its operations when it starts: it counts from then on
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(api.PROJECT_OPERATIONS, routes.BUCKET_CONFIG, counted)
        thread = PlanetThread(Planet(tmp_path_factory.mktemp("anonymous"), config)).start()
    try:
        yield thread
    finally:
        thread.stop()


def _directory(planet: PlanetThread) -> BucketDirectory:
    gateway = planet.planet.gateway
    assert gateway is not None and gateway.context is not None
    directory = gateway.context.directory
    assert directory is not None
    return directory


def _names(n: int) -> set[str]:
    return {f"nobody-{secrets.token_hex(8)}" for _ in range(n)}


async def _burst(
    planet: PlanetThread, requests: list[Request]
) -> tuple[list[int], list[float], float]:
    """Send ``(method, path, headers)`` all at once: statuses, latencies, total seconds."""
    base = planet.planet.endpoint

    async def one(s: aiohttp.ClientSession, method: str, path: str, h: dict[str, str]) -> Any:
        started = time.monotonic()
        async with s.request(method, base + path, headers=h) as resp:
            await resp.read()
            return resp.status, time.monotonic() - started

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as s:
        results = await asyncio.gather(*(one(s, m, p, h) for m, p, h in requests))
    return [r[0] for r in results], [r[1] for r in results], time.monotonic() - started


def _bound(elapsed: float) -> int:
    """The most searches the gateway may start in ``elapsed`` seconds: a burst, then RATE/s."""
    return int(RATE + RATE * elapsed) + 1


def test_a_burst_of_unknown_buckets_makes_a_bounded_number_of_calls(
    planet: PlanetThread, calls: Calls
) -> None:
    names = _names(300)
    requests: list[Request] = [("GET", f"/{name}/some-key", {}) for name in names]
    statuses, latencies, elapsed = planet.run(_burst(planet, requests))
    made = calls.about(names)
    assert 1 <= made <= _bound(elapsed), (made, elapsed)
    assert set(statuses) <= {403, 503} and statuses.count(503) >= 200
    assert max(latencies) < QUICK


def test_preflights_and_origin_headers_share_the_bound(planet: PlanetThread, calls: Calls) -> None:
    time.sleep(1.5)  # the bucket of searches refills
    names = _names(200)
    cors = {"Origin": "https://example.com", "Access-Control-Request-Method": "GET"}
    requests: list[Request] = [("OPTIONS", f"/{name}/k", cors) for name in sorted(names)[:100]]
    # unsigned GETs with an Origin: both their CORS headers and their owner need the lookup
    requests += [
        ("GET", f"/{name}?list-type=2", {"Origin": "https://example.com"})
        for name in sorted(names)[100:]
    ]
    statuses, latencies, elapsed = planet.run(_burst(planet, requests))
    assert calls.about(names) <= _bound(elapsed)
    assert set(statuses) <= {403, 503} and 503 in statuses
    assert max(latencies) < QUICK


def test_one_unknown_bucket_asked_at_once_is_searched_once(
    planet: PlanetThread, calls: Calls
) -> None:
    time.sleep(1.5)
    (name,) = _names(1)
    statuses, _, _ = planet.run(_burst(planet, [("GET", f"/{name}/k", {})] * 50))
    assert statuses == [403] * 50
    assert calls.about({name}) == 1
    statuses, _, _ = planet.run(_burst(planet, [("HEAD", f"/{name}", {})] * 20))
    assert statuses == [403] * 20 and calls.about({name}) == 1  # "no owner here" is cached


def test_known_public_bucket_is_served_while_unknown_ones_are_refused(
    planet: PlanetThread, s3: S3Client
) -> None:
    s3.create_bucket(Bucket="shown")
    s3.put_object(Bucket="shown", Key="page", Body=b"hello", ACL="public-read")
    directory = _directory(planet)

    async def get(path: str) -> int:
        statuses, _, _ = await _burst(planet, [("GET", path, {})])
        return statuses[0]

    assert planet.run(get("/shown/page")) == 200  # its owner is now known
    clock = directory.clock
    try:
        directory.clock = lambda: clock() + 60  # a minute on: the answer is stale
        statuses, _, _ = planet.run(_burst(planet, [("GET", f"/{n}/k", {}) for n in _names(100)]))
        assert 503 in statuses  # no searches left ...
        assert planet.run(get("/shown/page")) == 200  # ... but a known bucket is served
    finally:
        directory.clock = clock
