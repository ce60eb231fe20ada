"""Every way an S3 client authenticates, end to end against a live gateway.

The verifier has its own unit tests (test_s3_sigv4, test_s3_chunked); these prove
the wiring: presigned URLs from boto3, unsigned and streaming payloads signed by
botocore's signer, what a bad signature leaves behind (nothing), clock skew, and
virtual-hosted-style addressing.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator

import pytest
import urllib3
from botocore.awsrequest import AWSPreparedRequest
from botocore.config import Config
from botocore.exceptions import ClientError

from skymesh.config import GatewayConfig
from skymesh.gateway.service import GatewayService
from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client, random_bytes
from tests.planet import s3raw

BUCKET = "auth"


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket=BUCKET)
    return BUCKET


def _missing(s3: S3Client, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError as e:
        return e.response["Error"]["Code"] in ("404", "NoSuchKey")
    return False


def test_presigned_get_and_put(planet: PlanetThread, bucket: str) -> None:
    s3 = planet.boto3(signature_version="s3v4")
    http = urllib3.PoolManager(retries=False)
    data = random_bytes(70_000, seed=1)
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=60
    )
    assert http.request("PUT", put_url, body=data).status == 200
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=60
    )
    resp = http.request("GET", get_url)
    assert resp.status == 200 and resp.data == data


def test_presigned_url_expires(planet: PlanetThread, bucket: str) -> None:
    s3 = planet.boto3(signature_version="s3v4")
    s3.put_object(Bucket=bucket, Key="short-lived", Body=b"x")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "short-lived"}, ExpiresIn=1
    )
    time.sleep(2.1)
    resp = urllib3.PoolManager(retries=False).request("GET", url)
    assert resp.status == 403
    assert b"<Code>AccessDenied</Code>" in resp.data and b"expired" in resp.data


def test_unsigned_payload(planet: PlanetThread, s3: S3Client, bucket: str) -> None:
    data = random_bytes(10_000, seed=2)
    r = s3raw.request(planet, "PUT", f"/{bucket}/unsigned", data, payload="UNSIGNED-PAYLOAD")
    assert r.status == 200, r.body
    assert s3.get_object(Bucket=bucket, Key="unsigned")["Body"].read() == data


def test_signed_payload_mismatch_stores_nothing(
    planet: PlanetThread, s3: S3Client, bucket: str
) -> None:
    r = s3raw.request(planet, "PUT", f"/{bucket}/bad-sha", b"hello", payload="a" * 64)
    assert r.status == 400 and r.code == "XAmzContentSHA256Mismatch"
    assert _missing(s3, "bad-sha")


def _streaming_put(
    planet: PlanetThread, key: str, chunks: list[bytes], tamper: int | None = None
) -> s3raw.Reply:
    size = sum(len(c) for c in chunks)
    headers = s3raw.chunked_headers(size, s3raw.signed_chunks_length(chunks))
    path = f"/{BUCKET}/{key}"
    signed = s3raw.sign(planet, "PUT", path, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", headers)
    body = s3raw.signed_chunks(signed, chunks, tamper)
    return s3raw.send(planet, "PUT", path, signed.headers, body)


def test_streaming_signed_chunks(planet: PlanetThread, s3: S3Client, bucket: str) -> None:
    chunks = [random_bytes(64 * 1024, seed=3), random_bytes(64 * 1024, seed=4), b"tail" * 25]
    r = _streaming_put(planet, "streamed", chunks)
    assert r.status == 200, r.body
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == b"".join(chunks)


@pytest.mark.parametrize("tamper", [0, 2, 3])
def test_wrong_chunk_signature_stores_nothing(
    planet: PlanetThread,
    s3: S3Client,
    bucket: str,
    tamper: int,
) -> None:
    chunks = [random_bytes(64 * 1024, seed=5), random_bytes(64 * 1024, seed=6), b"end"]
    r = _streaming_put(planet, f"tampered-{tamper}", chunks, tamper=tamper)
    assert r.status == 403 and r.code == "SignatureDoesNotMatch", r.body
    assert _missing(s3, f"tampered-{tamper}")


def test_streaming_unsigned_trailer(planet: PlanetThread, s3: S3Client, bucket: str) -> None:
    import base64
    import zlib

    data = random_bytes(100_000, seed=7)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    chunks = [data[:65536], data[65536:]]
    body = s3raw.unsigned_chunks(chunks, {"x-amz-checksum-crc32": crc})
    headers = s3raw.chunked_headers(
        len(data), len(body), **{"x-amz-trailer": "x-amz-checksum-crc32"}
    )
    path = f"/{bucket}/trailer"
    signed = s3raw.sign(planet, "PUT", path, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers)
    r = s3raw.send(planet, "PUT", path, signed.headers, body)
    assert r.status == 200, r.body
    head = s3.head_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc


def test_clock_skew(planet: PlanetThread, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth

    skewed = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
        minutes=20
    )
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: skewed)
    r = s3raw.request(planet, "GET", f"/{bucket}/anything")
    assert r.status == 403 and r.code == "RequestTimeTooSkewed", r.body


@pytest.fixture(scope="module")
def virtual_gateway(planet: PlanetThread) -> Iterator[str]:
    """A second gateway of the same project that knows the ``s3.localhost`` suffix."""
    p = planet.planet
    assert p.coordinator is not None and p.credential is not None
    service = GatewayService(
        GatewayConfig(
            data_dir=str(p.root / "gateway-vhost"),
            port=0,
            coordinator_url=p.coordinator.url,
            virtual_host_suffixes=["s3.localhost"],
        ),
        credentials=[p.credential],
    )
    planet.run(service.start())
    try:
        yield service.url
    finally:
        planet.run(service.stop())


def test_virtual_hosted_style(
    planet: PlanetThread, s3: S3Client, bucket: str, virtual_gateway: str
) -> None:
    port = virtual_gateway.rsplit(":", 1)[1]
    host = {"Host": f"{bucket}.s3.localhost:{port}"}
    data = b"virtually hosted"
    r = s3raw.request(planet, "PUT", "/vhost-key", data, dict(host), endpoint=virtual_gateway)
    assert r.status == 200, r.body
    assert s3.get_object(Bucket=bucket, Key="vhost-key")["Body"].read() == data
    r = s3raw.request(planet, "GET", "/vhost-key", headers=dict(host), endpoint=virtual_gateway)
    assert r.status == 200 and r.body == data
    r = s3raw.request(planet, "GET", "/?list-type=2", headers=dict(host), endpoint=virtual_gateway)
    assert r.status == 200 and b"<Key>vhost-key</Key>" in r.body
    # boto3's own virtual addressing: it names the bucket in the host, which we send to loopback
    vs3 = boto3_virtual(planet, virtual_gateway)
    assert vs3.get_object(Bucket=bucket, Key="vhost-key")["Body"].read() == data
    vs3.put_object(Bucket=bucket, Key="vhost-boto3", Body=b"via boto3")
    assert s3.get_object(Bucket=bucket, Key="vhost-boto3")["Body"].read() == b"via boto3"


def boto3_virtual(planet: PlanetThread, endpoint: str) -> S3Client:
    """A virtual-addressing boto3 client whose connections go to 127.0.0.1 (no DNS needed)."""
    from urllib.parse import urlsplit

    import boto3

    cred = planet.planet.credential
    assert cred is not None
    port = endpoint.rsplit(":", 1)[1]
    client = boto3.client(
        "s3",
        endpoint_url=f"http://s3.localhost:{port}",
        aws_access_key_id=cred.access_key_id,
        aws_secret_access_key=cred.secret_access_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}),
    )

    def to_loopback(request: AWSPreparedRequest, **_kw: object) -> None:
        url = urlsplit(request.url)
        assert url.netloc.endswith(f".s3.localhost:{port}")
        request.headers["Host"] = url.netloc
        request.url = url._replace(netloc=f"127.0.0.1:{port}").geturl()

    client.meta.events.register("before-send.s3", to_loopback)
    return client


@pytest.mark.parametrize("good", [True, False])
def test_streaming_signed_trailer(
    planet: PlanetThread, s3: S3Client, bucket: str, good: bool
) -> None:
    import base64
    import hashlib

    data = random_bytes(90_000, seed=8)
    digest = hashlib.sha256(data if good else b"other").digest()
    trailers = {"x-amz-checksum-sha256": base64.b64encode(digest).decode()}
    chunks = [data[:65536], data[65536:]]
    headers = s3raw.chunked_headers(
        len(data),
        s3raw.signed_chunks_length(chunks, trailers),
        **{"x-amz-trailer": "x-amz-checksum-sha256"},
    )
    key = f"signed-trailer-{good}"
    path = f"/{bucket}/{key}"
    signed = s3raw.sign(planet, "PUT", path, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", headers)
    r = s3raw.send(
        planet, "PUT", path, signed.headers, s3raw.signed_chunks(signed, chunks, trailers=trailers)
    )
    if good:
        assert r.status == 200, r.body
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == trailers["x-amz-checksum-sha256"]
    else:
        assert r.status == 400 and r.code == "BadDigest", r.body
        assert _missing(s3, key)
