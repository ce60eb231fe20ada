"""The network across an outage of its only coordinator: a read in progress waits it
out (the object's later segments are asked for while its body already streams: a
failure would cut the body short), and nodes count as online again within a
heartbeat of its return (their retries are not left to a grown backoff)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from skymesh.client.download import FIRST_CALL_SEGMENTS, SEGMENTS_PER_CALL
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from tests.conftest import random_bytes

SEGMENT = 64 * 1024
#: more segments than the first call and one later batch bring
SEGMENTS = FIRST_CALL_SEGMENTS + 2 * SEGMENTS_PER_CALL


@pytest.fixture
def small_segments(tmp_path: Path) -> Iterator[PlanetThread]:
    config = PlanetConfig(node_count=6, coordinator_overrides={"max_segment_size": SEGMENT})
    thread = PlanetThread(Planet(tmp_path / "planet", config)).start()
    try:
        yield thread
    finally:
        thread.stop()


def test_a_read_waits_out_the_coordinator_being_down_mid_stream(
    small_segments: PlanetThread,
) -> None:
    planet = small_segments.planet
    data = random_bytes(SEGMENTS * SEGMENT, seed=5)

    async def scenario() -> bytes:
        async with planet.client() as client:
            await client.create_bucket("outage")

            async def body() -> AsyncIterator[bytes]:
                yield data

            await client.put_object("outage", "big", body(), size=len(data))
            handle = await client.open_object("outage", "big")
            out = bytearray()
            chunks = handle.read()
            async for chunk in chunks:
                out += chunk
                if len(out) >= SEGMENT:  # the body streams; later batches not asked yet
                    break
            await planet.stop_coordinator(0, crash=True)
            restart = asyncio.get_running_loop().call_later(
                1.5, lambda: asyncio.ensure_future(planet.start_coordinator(0))
            )
            try:
                async for chunk in chunks:
                    out += chunk
            finally:
                restart.cancel()
            return bytes(out)

    assert small_segments.run(scenario(), timeout=120) == data


def test_nodes_are_back_online_within_a_heartbeat_of_the_coordinator(
    small_segments: PlanetThread,
) -> None:
    planet = small_segments.planet
    beat = planet.config.heartbeat_interval

    async def scenario() -> float:
        await planet.stop_coordinator(0, crash=True)
        await asyncio.sleep(16 * beat)  # long enough for a doubling backoff to reach 4 s
        await planet.start_coordinator(0)
        started = time.monotonic()
        await planet.wait_online(planet.config.node_count)
        return time.monotonic() - started

    back = small_segments.run(scenario(), timeout=120)
    # a heartbeat's interval, and the sweep until the coordinator counts them
    assert back < 4 * beat, f"nodes online again {back:.1f} s after the coordinator"
