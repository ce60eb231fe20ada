"""The S3 gateway over HTTPS: boto3 trusting the local CA sends unsigned, CRC-checked bodies.

That is why HTTPS matters beyond privacy: over plain HTTP boto3 SHA-256-signs every
body and the gateway must verify it; over HTTPS it sends STREAMING-UNSIGNED-PAYLOAD-
TRAILER (aws-chunked with a CRC32 trailer), and the gateway checks the CRC instead.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest
from boto3.s3.transfer import TransferConfig

from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.tls import LocalTls, ensure_local_tls
from tests.conftest import random_bytes

MiB = 1024 * 1024
HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return ensure_local_tls(tmp_path_factory.mktemp("tls"), ["127.0.0.1", "localhost"])


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory, tls_files: LocalTls) -> Iterator[PlanetThread]:
    planet = Planet(
        tmp_path_factory.mktemp("planet"),
        PlanetConfig(
            node_count=6,
            gateway_overrides={"tls_cert": str(tls_files.cert), "tls_key": str(tls_files.key)},
        ),
    )
    thread = PlanetThread(planet).start()
    try:
        yield thread
    finally:
        thread.stop()


class SentHeaders:
    """Every request's headers as boto3 sends them (botocore's ``before-send`` event)."""

    def __init__(self, client: Any) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        client.meta.events.register("before-send.s3", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        self.requests.append((request.method, headers))


def test_endpoint_is_https(planet: PlanetThread) -> None:
    assert planet.planet.endpoint.startswith("https://127.0.0.1:")


def test_boto3_over_https_sends_unsigned_bodies_and_gets_the_bytes_back(
    planet: PlanetThread, tls_files: LocalTls
) -> None:
    s3 = planet.boto3(verify=str(tls_files.ca))
    sent = SentHeaders(s3)
    s3.create_bucket(Bucket="secure")
    small = random_bytes(100_000, seed=1)
    s3.put_object(Bucket="secure", Key="small", Body=small)
    assert s3.get_object(Bucket="secure", Key="small")["Body"].read() == small

    big = random_bytes(20 * MiB, seed=2)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    s3.upload_fileobj(io.BytesIO(big), "secure", "big", Config=config)
    head = s3.head_object(Bucket="secure", Key="big")
    assert head["ContentLength"] == len(big) and head["ETag"].endswith('-3"')  # 3 parts
    assert s3.get_object(Bucket="secure", Key="big")["Body"].read() == big

    # every request with a body: the bucket's PUT has none (its hash is of b"", not signed data)
    bodies = [h for m, h in sent.requests if m == "PUT" and h.get("content-length") != "0"]
    assert len(bodies) == 4, bodies  # the small object and three parts
    for h in bodies:
        assert not HEX_SHA256.match(h["x-amz-content-sha256"])  # not SHA-256-signed
        assert h["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        assert "aws-chunked" in h["content-encoding"]
        assert h["x-amz-trailer"].startswith("x-amz-checksum-")


def test_a_client_that_does_not_trust_the_ca_is_refused(planet: PlanetThread) -> None:
    s3 = planet.boto3(verify=True)  # the system's CAs, which never signed our certificate
    with pytest.raises(botocore.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        s3.list_buckets()
