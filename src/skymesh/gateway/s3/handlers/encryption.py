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

Customer-provided keys (SSE-C, :func:`customer_key`): the three
``x-amz-server-side-encryption-customer-*`` headers (and their
``x-amz-copy-source-`` twins for a copy's source) are checked as S3 checks them and
handed to the client, which mixes the key into the object's own
(:mod:`skymesh.client.customerkey`). The key lives only as long as the request; it
is never stored, logged or put in an error. Answers about such an object echo the
algorithm and the key's MD5 instead of ``x-amz-server-side-encryption``. As on S3,
the headers are refused over plain HTTP unless ``GatewayConfig.sse_c_over_http``.
Presigned URLs carry them as signed headers, never in the query (SigV4 refuses
unsigned ``x-amz-*`` headers).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from aiohttp import web

from skymesh.client.customerkey import CUSTOMER_KEY_SIZE, CustomerKey
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


CUSTOMER = "x-amz-server-side-encryption-customer-"
COPY_SOURCE_CUSTOMER = "x-amz-copy-source-server-side-encryption-customer-"
_REQUIRES = "Requests specifying Server Side Encryption with Customer provided keys must"
_OVER_HTTP = f"{_REQUIRES} be made over a secure connection."


def customer_key(req: S3Request, prefix: str = CUSTOMER) -> CustomerKey | None:
    """The customer key a request names with ``prefix``-``algorithm``/``key``/``key-MD5``
    (``x-amz-copy-source-...`` for a copy's source), or None; S3's errors for an
    incomplete or inconsistent triple, and for one sent over plain HTTP."""
    if any(name.lower().startswith((CUSTOMER, COPY_SOURCE_CUSTOMER)) for name in req.params):
        # a presigned URL that carries the key in its query (SigV2 presigners hoist
        # x-amz-* headers there): the key has leaked into logs and histories, and S3
        # reads SSE-C only from headers; refused rather than stored without the key
        raise s3_error(
            "InvalidArgument",
            "Server Side Encryption with Customer provided keys must be sent as request"
            " headers, not as query parameters",
        )
    headers = req.http.headers
    algorithm = headers.get(prefix + "algorithm")
    encoded = headers.get(prefix + "key")
    md5 = headers.get(prefix + "key-MD5")
    if algorithm is None and encoded is None and md5 is None:
        return None
    if not req.http.secure and not req.ctx.config.sse_c_over_http:
        raise s3_error("InvalidRequest", _OVER_HTTP)
    if prefix == CUSTOMER and SSE_HEADER in headers:
        raise s3_error(
            "InvalidArgument",
            "Server Side Encryption with Customer provided key is incompatible with the"
            " encryption method specified",
            ArgumentName=SSE_HEADER,
            ArgumentValue=headers[SSE_HEADER][:64],
        )
    if algorithm is None or algorithm.strip() != ALGORITHM:
        raise s3_error(
            "InvalidArgument",
            f"{_REQUIRES} provide a valid encryption algorithm.",
            ArgumentName=prefix + "algorithm",
            ArgumentValue=(algorithm or "")[:64],
        )
    if encoded is None:
        raise s3_error(
            "InvalidArgument",
            f"{_REQUIRES} provide an appropriate secret key.",
            ArgumentName=prefix + "key",
        )
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != CUSTOMER_KEY_SIZE:
        # never the value: it is (or is meant to be) the customer's secret
        raise s3_error(
            "InvalidArgument",
            "The secret key was invalid for the specified algorithm.",
            ArgumentName=prefix + "key",
        )
    if md5 is None:
        raise s3_error(
            "InvalidArgument",
            f"{_REQUIRES} provide the client calculated MD5 of the secret key.",
            ArgumentName=prefix + "key-MD5",
        )
    digest = base64.b64encode(hashlib.md5(key, usedforsecurity=False).digest()).decode()
    if not hmac.compare_digest(digest.encode(), md5.strip().encode()):
        raise s3_error(
            "InvalidArgument",
            "The calculated MD5 hash of the key did not match the hash that was provided.",
            ArgumentName=prefix + "key-MD5",
        )
    return CustomerKey(key, digest)


def response_headers(customer: CustomerKey | None) -> Mapping[str, str]:
    """What an answer about an object's bytes says of their encryption: AES256, or the
    customer key's algorithm and MD5 (S3 echoes those, and no x-amz-server-side-encryption)."""
    if customer is None:
        return RESPONSE_HEADERS
    return {CUSTOMER + "algorithm": ALGORITHM, CUSTOMER + "key-MD5": customer.md5}


def check_request(headers: Mapping[str, str]) -> None:
    """Refuse a write that asks for encryption other than AES256 (KMS above all)."""
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
