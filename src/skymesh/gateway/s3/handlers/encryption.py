"""Server-side encryption as S3 clients ask for it: always on, always AES256.

The gateway's client encrypts every object with its own key before any byte
leaves the gateway (``skymesh.client``), so there is nothing to switch on or off.
What clients send is answered truthfully:

* Get/PutBucketEncryption speak of that always-on encryption as SSE-S3
  (``AES256``); a Put asking for ``AES256`` changes nothing and is accepted, one
  asking for KMS is refused (skymesh has no KMS); DeleteBucketEncryption is
  accepted and encryption stays on, as it does on AWS since 2023.
* ``x-amz-server-side-encryption: AES256`` on writes is accepted, anything else
  refused; every object answer carries ``x-amz-server-side-encryption: AES256``
  (:data:`RESPONSE_HEADERS`), asked for or not, since every object is encrypted.

Customer-provided keys (SSE-C) are refused (501 NotImplemented) on every write that
names one: accepting the headers and storing the object without that key would let a
client believe a key of its own protects the object.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.handlers.small_body import read_small_body
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.xml import MAX_ENCRYPTION_BODY, encryption_xml, parse_encryption

SSE_HEADER = "x-amz-server-side-encryption"
ALGORITHM = "AES256"
#: what every answer about an object's bytes carries
RESPONSE_HEADERS: Mapping[str, str] = {SSE_HEADER: ALGORITHM}
_KMS_HEADERS = (
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
)
_NO_KMS = (
    "skymesh has no KMS: every object is already encrypted by the gateway with its own"
    " key; ask for AES256 or for nothing"
)


def _refuse(algorithm: str, argument: str) -> None:
    if algorithm.startswith("aws:kms"):
        raise s3_error(
            "InvalidArgument", _NO_KMS, ArgumentName=argument, ArgumentValue=algorithm[:64]
        )
    raise s3_error(
        "InvalidArgument",
        f"The encryption method specified is not supported: skymesh encrypts with {ALGORITHM}",
        ArgumentName=argument,
        ArgumentValue=algorithm[:64],
    )


_SSE_C_PREFIXES = (
    "x-amz-server-side-encryption-customer-",
    "x-amz-copy-source-server-side-encryption-customer-",
)


def check_request(headers: Mapping[str, str]) -> None:
    """Refuse a write that asks for encryption other than AES256 (KMS above all), or
    for a customer-provided key (SSE-C), which is not built."""
    for name in headers:
        if name.lower().startswith(_SSE_C_PREFIXES):
            raise s3_error(
                "NotImplemented",
                "customer-provided encryption keys (SSE-C) are not supported yet; every"
                " object is encrypted by the gateway with a key of its own: send no"
                " x-amz-server-side-encryption-customer-* header",
            )
    value = headers.get(SSE_HEADER)
    if value is not None and value.strip() != ALGORITHM:
        _refuse(value.strip(), SSE_HEADER)
    for name in _KMS_HEADERS:
        if name in headers:
            raise s3_error("InvalidArgument", _NO_KMS, ArgumentName=name)


async def get_bucket_encryption(req: S3Request) -> web.StreamResponse:
    await req.client.metainfo.bucket_config(req.bucket)  # NoSuchBucket, AccessDenied
    return web.Response(body=encryption_xml(ALGORITHM), content_type=XML)


async def put_bucket_encryption(req: S3Request) -> web.StreamResponse:
    """Accepted when every rule asks for AES256, which is what the bucket already has."""
    await req.client.metainfo.bucket_config(req.bucket)
    for algorithm in parse_encryption(await read_small_body(req, MAX_ENCRYPTION_BODY)):
        if algorithm != ALGORITHM:
            _refuse(algorithm, "SSEAlgorithm")
    return web.Response(status=200)


async def delete_bucket_encryption(req: S3Request) -> web.StreamResponse:
    """Accepted; the bucket's objects stay encrypted (there is no unencrypted mode)."""
    await req.client.metainfo.bucket_config(req.bucket)
    return web.Response(status=204)
