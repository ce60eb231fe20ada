"""Shared fixtures: a live in-process network (``planet``) and helpers for real clients."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import pytest

from skymesh.testing.planet import Planet, PlanetThread

# A boto3 S3 client. boto3 builds its clients at run time and ships no types, so
# tests name it through this one alias instead of installing a stubs package.
S3Client: TypeAlias = Any


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    """A coordinator, 12 nodes over three regions and a gateway, shared by a test module."""
    root = tmp_path_factory.mktemp("planet")
    thread = PlanetThread(Planet(root)).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def own_planet(tmp_path: Path) -> Iterator[PlanetThread]:
    """A planet for one test alone: for a test that leaves behind what no later test
    should inherit (a disqualified node, one more node, segments repaired)."""
    thread = PlanetThread(Planet(tmp_path / "planet")).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def s3(planet: PlanetThread) -> S3Client:
    """A boto3 client of the module's planet gateway, shared by the module's tests."""
    return planet.boto3()


@pytest.fixture(autouse=True, scope="session")
def _plain_http_env() -> None:
    # The environment may point AWS tools at a CA bundle; our endpoints are plain http.
    os.environ.pop("AWS_CA_BUNDLE", None)


def random_bytes(n: int, seed: int = 0) -> bytes:
    """Incompressible test data, fast and reproducible."""
    import random

    return random.Random(seed).randbytes(n)


def write_random_file(path: Path, size: int, seed: int = 0) -> Path:
    import random

    rnd = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * 1024 * 1024)
            f.write(rnd.randbytes(n))
            left -= n
    return path
