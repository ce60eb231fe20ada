"""SSE-C through boto3: objects under a customer's key, its errors, multipart and copies.

The planet's gateway allows SSE-C over plain HTTP (``sse_c_over_http``), which saves
TLS here; the refusal without it is in test_s3_attributes.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from skymesh import errors
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from tests.conftest import S3Client

KEY = os.urandom(32)
OTHER = os.urandom(32)
MiB = 1024 * 1024
# larger than the inline threshold: its segment goes to nodes as pieces
MARKER = b"customer-plaintext-marker/"
BODY = MARKER * (64 * 1024 // len(MARKER))


def sse(key: bytes = KEY) -> dict[str, Any]:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def sse_encoded(key: bytes = KEY) -> dict[str, Any]:
    """As :func:`sse`, for operations whose key botocore does not base64 itself."""
    return {
        "SSECustomerAlgorithm": "AES256",
        "SSECustomerKey": base64.b64encode(key).decode(),
        "SSECustomerKeyMD5": md5_b64(key),
    }


def copy_sse(key: bytes = KEY) -> dict[str, Any]:
    return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key}


def md5_b64(key: bytes) -> str:
    return base64.b64encode(hashlib.md5(key).digest()).decode()


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanetThread]:
    planet = Planet(
        tmp_path_factory.mktemp("planet"),
        PlanetConfig(node_count=6, gateway_overrides={"sse_c_over_http": True}),
    )
    thread = PlanetThread(planet).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket="ssec")
    s3.put_object(Bucket="ssec", Key="obj", Body=BODY, **sse())
    s3.put_object(Bucket="ssec", Key="plain", Body=b"plain bytes")
    return "ssec"


def _error(call: Callable[[], Any]) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response["Error"]
    return err["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"], err["Message"]


def test_put_get_head_range_with_the_key(s3: S3Client, bucket: str) -> None:
    got = s3.get_object(Bucket=bucket, Key="obj", **sse())
    assert got["Body"].read() == BODY
    assert got["SSECustomerAlgorithm"] == "AES256"
    assert got["SSECustomerKeyMD5"] == md5_b64(KEY)
    assert "ServerSideEncryption" not in got  # S3 answers SSE-C, not SSE-S3
    # S3's ETag of an SSE-C object is not the MD5 of its bytes; ours neither
    assert got["ETag"].strip('"') != hashlib.md5(BODY).hexdigest()
    head = s3.head_object(Bucket=bucket, Key="obj", **sse())
    assert head["ContentLength"] == len(BODY) and head["SSECustomerKeyMD5"] == md5_b64(KEY)
    assert head["ETag"] == got["ETag"]
    part = s3.get_object(Bucket=bucket, Key="obj", Range="bytes=1000-2999", **sse())
    assert part["Body"].read() == BODY[1000:3000]
    one = s3.get_object(Bucket=bucket, Key="obj", PartNumber=1, **sse())
    assert one["Body"].read() == BODY
    # the conditions compare with the ETag as answered
    cond = s3.get_object(Bucket=bucket, Key="obj", IfMatch=got["ETag"], **sse())
    assert cond["Body"].read() == BODY
    attrs = s3.get_object_attributes(
        Bucket=bucket, Key="obj", ObjectAttributes=["ObjectSize", "ETag"], **sse_encoded()
    )
    assert attrs["ObjectSize"] == len(BODY)
    # small objects live inline in the coordinator's records: still under the key
    s3.put_object(Bucket=bucket, Key="small", Body=b"tiny", **sse(OTHER))
    assert s3.get_object(Bucket=bucket, Key="small", **sse(OTHER))["Body"].read() == b"tiny"


def test_reads_without_the_right_key_are_refused(s3: S3Client, bucket: str) -> None:
    needs = (
        "The object was stored using a form of Server Side Encryption. The correct parameters"
        " must be provided to retrieve the object."
    )
    for call in (
        lambda: s3.get_object(Bucket=bucket, Key="obj"),
        lambda: s3.get_object(Bucket=bucket, Key="obj", Range="bytes=0-10"),
        lambda: s3.get_object(Bucket=bucket, Key="obj", PartNumber=1),
        lambda: s3.get_object_attributes(Bucket=bucket, Key="obj", ObjectAttributes=["ETag"]),
    ):
        assert _error(call) == ("InvalidRequest", 400, needs)
    # HEAD answers have no body: the status says it
    assert _error(lambda: s3.head_object(Bucket=bucket, Key="obj"))[:2] == ("400", 400)
    for call in (
        lambda: s3.get_object(Bucket=bucket, Key="obj", **sse(OTHER)),
        lambda: s3.get_object(Bucket=bucket, Key="obj", Range="bytes=0-10", **sse(OTHER)),
        lambda: s3.get_object_attributes(
            Bucket=bucket, Key="obj", ObjectAttributes=["ETag"], **sse_encoded(OTHER)
        ),
    ):
        assert _error(call)[:2] == ("AccessDenied", 403)
    assert _error(lambda: s3.head_object(Bucket=bucket, Key="obj", **sse(OTHER)))[1] == 403
    # a key for an object stored without one
    code, status, message = _error(lambda: s3.get_object(Bucket=bucket, Key="plain", **sse()))
    assert (code, status) == ("InvalidRequest", 400) and "not applicable" in message
    # tags need no key, as on S3
    assert s3.get_object_tagging(Bucket=bucket, Key="obj")["TagSet"] == []


def test_the_project_secret_alone_does_not_open_the_bytes(
    planet: PlanetThread, bucket: str
) -> None:
    """Neither the nodes' pieces nor the coordinator's records hold the plaintext, and the
    project owner's own client (root secret and all) cannot read it without the key."""
    root: Path = planet.planet.root
    for path in root.rglob("*"):
        if path.is_file():
            assert MARKER not in path.read_bytes(), path

    async def read_without_key() -> None:
        async with planet.planet.client() as client:
            await client.open_object(bucket, "obj")

    with pytest.raises(errors.BadRequest):
        planet.run(read_without_key())


class Tamper:
    """Changes an operation's headers just before boto3 signs them (so the signature
    still holds): S3's errors for malformed SSE-C triples."""

    def __init__(self, s3: S3Client, change: Callable[[Any], None]) -> None:
        self.s3, self.change = s3, change

    def _apply(self, request: Any, **_: Any) -> None:
        self.change(request.headers)

    def __enter__(self) -> Tamper:
        self.s3.meta.events.register("before-sign.s3", self._apply)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.s3.meta.events.unregister("before-sign.s3", self._apply)


def test_malformed_customer_headers(s3: S3Client, bucket: str) -> None:
    prefix = "x-amz-server-side-encryption-customer-"
    requires = "Requests specifying Server Side Encryption with Customer provided keys must"

    def put() -> Any:
        return s3.put_object(Bucket=bucket, Key="bad", Body=b"x", **sse())

    def drop(name: str) -> Callable[[Any], None]:
        return lambda h: h.__delitem__(prefix + name)

    def set_(name: str, value: str) -> Callable[[Any], None]:
        def change(h: Any) -> None:
            del h[prefix + name]  # botocore's headers append on assignment
            h[prefix + name] = value

        return change

    cases = [
        (drop("algorithm"), f"{requires} provide a valid encryption algorithm."),
        (set_("algorithm", "AES128"), f"{requires} provide a valid encryption algorithm."),
        (drop("key"), f"{requires} provide an appropriate secret key."),
        (
            set_("key", base64.b64encode(KEY[:16]).decode()),
            "The secret key was invalid for the specified algorithm.",
        ),
        (drop("key-MD5"), f"{requires} provide the client calculated MD5 of the secret key."),
        (
            set_("key-MD5", md5_b64(OTHER)),
            "The calculated MD5 hash of the key did not match the hash that was provided.",
        ),
    ]
    for change, message in cases:
        with Tamper(s3, change):
            assert _error(put) == ("InvalidArgument", 400, message)
    code, status, message = _error(
        lambda: s3.put_object(
            Bucket=bucket, Key="bad", Body=b"x", ServerSideEncryption="AES256", **sse()
        )
    )
    assert (code, status) == ("InvalidArgument", 400) and "incompatible" in message
    assert _error(lambda: s3.head_object(Bucket=bucket, Key="bad"))[1] == 404  # never written


def test_multipart_with_the_key_on_every_part(s3: S3Client, bucket: str) -> None:
    first = os.urandom(5 * MiB)
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="mp", **sse())
    assert mpu["SSECustomerKeyMD5"] == md5_b64(KEY)
    upload = {"Bucket": bucket, "Key": "mp", "UploadId": mpu["UploadId"]}
    p1 = s3.upload_part(PartNumber=1, Body=first, **upload, **sse())
    assert p1["SSECustomerKeyMD5"] == md5_b64(KEY)
    assert p1["ETag"].strip('"') != hashlib.md5(first).hexdigest()
    code, status, message = _error(lambda: s3.upload_part(PartNumber=2, Body=b"x", **upload))
    assert (code, status) == ("InvalidRequest", 400) and "initiate requested encryption" in message
    code, status, message = _error(
        lambda: s3.upload_part(PartNumber=2, Body=b"x", **upload, **sse(OTHER))
    )
    assert (code, status) == ("InvalidRequest", 400) and "did not match" in message
    # a part copied from an SSE-C source under another key, into this upload under its own
    p2 = s3.upload_part_copy(
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "small"},
        **upload,
        **sse(),
        **copy_sse(OTHER),
    )
    parts = [
        {"PartNumber": 1, "ETag": p1["ETag"]},
        {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]},
    ]
    s3.complete_multipart_upload(**upload, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="mp", **sse())["Body"].read() == first + b"tiny"
    assert s3.get_object(Bucket=bucket, Key="mp", PartNumber=2, **sse())["Body"].read() == b"tiny"
    ranged = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={5 * MiB - 2}-", **sse())
    assert ranged["Body"].read() == first[-2:] + b"tiny"
    assert _error(lambda: s3.get_object(Bucket=bucket, Key="mp", PartNumber=2))[1] == 400
    assert _error(lambda: s3.get_object(Bucket=bucket, Key="mp", **sse(OTHER)))[1] == 403


def test_copies_in_every_direction(s3: S3Client, bucket: str) -> None:
    src = {"Bucket": bucket, "Key": "obj"}
    # SSE-C -> SSE-C under another key
    out = s3.copy_object(Bucket=bucket, Key="c-other", CopySource=src, **copy_sse(), **sse(OTHER))
    assert out["SSECustomerKeyMD5"] == md5_b64(OTHER)
    assert s3.get_object(Bucket=bucket, Key="c-other", **sse(OTHER))["Body"].read() == BODY
    assert _error(lambda: s3.get_object(Bucket=bucket, Key="c-other", **sse()))[1] == 403
    # SSE-C -> the gateway's own encryption only
    s3.copy_object(Bucket=bucket, Key="c-plain", CopySource=src, **copy_sse())
    assert s3.get_object(Bucket=bucket, Key="c-plain")["Body"].read() == BODY
    # the gateway's own -> SSE-C
    s3.copy_object(Bucket=bucket, Key="p-c", CopySource={"Bucket": bucket, "Key": "plain"}, **sse())
    assert s3.get_object(Bucket=bucket, Key="p-c", **sse())["Body"].read() == b"plain bytes"
    # onto itself with a new key (key rotation): allowed, since the encryption changes
    s3.copy_object(
        Bucket=bucket,
        Key="c-other",
        CopySource={"Bucket": bucket, "Key": "c-other"},
        **copy_sse(OTHER),
        **sse(),
    )
    assert s3.get_object(Bucket=bucket, Key="c-other", **sse())["Body"].read() == BODY
    # an SSE-C source without its key, or with another
    code, status, _ = _error(lambda: s3.copy_object(Bucket=bucket, Key="x", CopySource=src))
    assert (code, status) == ("InvalidRequest", 400)
    code, status, _ = _error(
        lambda: s3.copy_object(Bucket=bucket, Key="x", CopySource=src, **copy_sse(OTHER))
    )
    assert (code, status) == ("AccessDenied", 403)


def test_presigned_get_takes_the_key_as_signed_headers(planet: PlanetThread, bucket: str) -> None:
    s3 = planet.boto3(signature_version="s3v4")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "obj", **sse()}, ExpiresIn=300
    )
    assert "customer-key=" not in url.lower()  # signed as headers: the key is not in the URL
    headers = {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(KEY).decode(),
        "x-amz-server-side-encryption-customer-key-MD5": md5_b64(KEY),
    }
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        assert r.status == 200 and r.read() == BODY
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=30)  # the signed headers are missing
    assert e.value.code == 403

    # a URL that carries the key in its signed query (SigV2 presigners hoist x-amz-*
    # headers there; here a SigV4 one is made to): refused, never served nor stored
    # without the key
    def hoist(request: Any, **_: Any) -> None:
        for name in [n for n in request.headers if "customer" in n.lower()]:
            request.params[name] = request.headers[name]
            del request.headers[name]

    s3.meta.events.register("before-sign.s3", hoist)
    for method, body in (("GET", None), ("PUT", b"stored without the key?")):
        op = "get_object" if method == "GET" else "put_object"
        url = s3.generate_presigned_url(
            op, Params={"Bucket": bucket, "Key": "obj", **sse()}, ExpiresIn=300
        )
        assert "customer-key=" in url.lower()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(url, data=body, method=method))
        assert e.value.code == 400 and b"InvalidArgument" in e.value.read()
