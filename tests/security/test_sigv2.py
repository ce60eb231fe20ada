"""Signature Version 2 end to end: botocore's SigV2 signers against a real gateway.

The AWS CLI v1 presigns with SigV2 (``AWSAccessKeyId``, ``Expires``, ``Signature``)
and old tools sign headers with ``Authorization: AWS key:signature``. Both verify
with the same access-key lookup as SigV4; expired, tampered, unknown-key and
(with ``GatewayConfig.sigv2`` off) every SigV2 request is a 403.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from botocore.exceptions import ClientError

from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client

BUCKET = "sigv2"
DATA = b"signed the old way\n" * 100


@pytest.fixture(scope="module")
def v2(planet: PlanetThread) -> Any:
    """A boto3 client that signs with SigV2 (botocore's HmacV1Auth)."""
    return planet.boto3(signature_version="s3")


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="obj", Body=DATA)
    return BUCKET


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def code_of(body: bytes) -> str:
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else ""


def test_header_signed_requests_work(v2: Any, bucket: str) -> None:
    v2.put_object(Bucket=bucket, Key="dir/a b+c.txt", Body=b"one", ContentType="text/plain")
    got = v2.get_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert got["Body"].read() == b"one" and got["ContentType"] == "text/plain"
    listing = v2.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listing["Contents"]] == ["dir/a b+c.txt"]
    v2.put_object_tagging(
        Bucket=bucket, Key="dir/a b+c.txt", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]}
    )
    tags = v2.get_object_tagging(Bucket=bucket, Key="dir/a b+c.txt")["TagSet"]
    assert tags == [{"Key": "t", "Value": "1"}]
    upload = v2.create_multipart_upload(Bucket=bucket, Key="mp")
    part = v2.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"part"
    )
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    # SigV2 signs no body hash: a control body must carry a (signed) Content-MD5
    with pytest.raises(ClientError) as e:
        v2.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload=parts
        )
    assert e.value.response["Error"]["Code"] == "InvalidRequest"

    def add_md5(request: Any, **_: Any) -> None:
        digest = hashlib.md5(request.body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode()

    v2.meta.events.register("before-sign.s3.CompleteMultipartUpload", add_md5)
    try:
        v2.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload=parts
        )
    finally:
        v2.meta.events.unregister("before-sign.s3.CompleteMultipartUpload", add_md5)
    assert v2.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"part"
    v2.delete_object(Bucket=bucket, Key="mp")
    v2.delete_object(Bucket=bucket, Key="dir/a b+c.txt")


@pytest.mark.parametrize("version", ["s3", "s3v4"])
def test_presigned_get_with_either_signature(
    planet: PlanetThread, bucket: str, version: str
) -> None:
    client = planet.boto3(signature_version=version)
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "obj"}, ExpiresIn=300
    )
    assert ("AWSAccessKeyId=" in url) == (version == "s3"), url
    assert fetch(url) == (200, DATA)


def test_presigned_url_does_not_outlive_expires(planet: PlanetThread, bucket: str) -> None:
    client = planet.boto3(signature_version="s3")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "obj"}, ExpiresIn=1
    )
    time.sleep(2.1)
    status, body = fetch(url)
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    assert b"Request has expired" in body


def test_tampered_unknown_key_and_incomplete_urls_are_refused(
    planet: PlanetThread, bucket: str
) -> None:
    client = planet.boto3(signature_version="s3")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "obj"}, ExpiresIn=300
    )
    expires = int(re.search(r"Expires=(\d+)", url).group(1))  # type: ignore[union-attr]
    cases = {
        url.replace("/obj?", "/other?"): "SignatureDoesNotMatch",
        url.replace(f"Expires={expires}", f"Expires={expires + 60}"): "SignatureDoesNotMatch",
        re.sub(r"AWSAccessKeyId=[^&]+", "AWSAccessKeyId=NOSUCHKEY", url): "InvalidAccessKeyId",
        re.sub(r"&?Signature=[^&]+", "", url): "AccessDenied",
    }
    for bad, code in cases.items():
        status, body = fetch(bad)
        assert (status, code_of(body)) == (403, code), (bad, body)
    assert fetch(url) == (200, DATA)


def test_header_signed_with_a_wrong_secret_is_refused(planet: PlanetThread, bucket: str) -> None:
    import boto3
    from botocore.config import Config

    cred = planet.planet.credential
    assert cred is not None
    wrong = boto3.client(
        "s3",
        endpoint_url=planet.planet.endpoint,
        aws_access_key_id=cred.access_key_id,
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
        config=Config(
            signature_version="s3",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )
    with pytest.raises(ClientError) as e:
        wrong.put_object(Bucket=bucket, Key="forged", Body=b"x")
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.fixture
def sigv2_off(planet: PlanetThread) -> Iterator[None]:
    gateway = planet.planet.gateway
    assert gateway is not None and gateway.context is not None
    ctx = gateway.context
    config = ctx.config
    ctx.config = msgspec.structs.replace(config, sigv2=False)
    try:
        yield
    finally:
        ctx.config = config


def test_turned_off_sigv2_is_refused(
    planet: PlanetThread, v2: Any, s3: S3Client, bucket: str, sigv2_off: None
) -> None:
    url = planet.boto3(signature_version="s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "obj"}, ExpiresIn=300
    )
    status, body = fetch(url)
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    assert b"Signature Version 2 is turned off" in body
    with pytest.raises(ClientError) as e:
        v2.put_object(Bucket=bucket, Key="off", Body=b"x")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    # SigV4 goes on working
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == DATA
