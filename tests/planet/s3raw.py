"""Raw S3 requests for what boto3 will not send over plain http: aws-chunked bodies
(signed chunks, trailers), a chosen payload hash, a chosen Host, a skewed clock.

Requests are signed by botocore's own ``S3SigV4Auth`` (only the payload hash is
ours to choose), so the gateway is checked against AWS's signer, not against a
copy of its own code.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from skymesh.testing.planet import PlanetThread

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_http = urllib3.PoolManager(retries=False)


def _signer(credentials: Credentials, payload: str) -> S3SigV4Auth:
    """botocore's S3 signer, signing ``payload`` as the request's payload hash."""
    signer = S3SigV4Auth(credentials, "s3", "us-east-1")
    signer.payload = lambda _request: payload  # where botocore asks for the hash
    return signer


@dataclass
class Signed:
    """What a streaming body needs to sign its chunks."""

    headers: dict[str, str]
    signing_key: bytes
    timestamp: str
    scope: str
    seed: str


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def code(self) -> str:
        import re

        match = re.search(rb"<Code>([^<]*)</Code>", self.body)
        return match.group(1).decode() if match else ""


def signing_key(secret: str, date: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    planet: PlanetThread,
    method: str,
    path: str,
    payload: str,
    headers: dict[str, str] | None = None,
    endpoint: str | None = None,
) -> Signed:
    """Headers for ``method path`` signed with the planet's credential and ``payload`` hash."""
    cred = planet.planet.credential
    assert cred is not None
    url = (endpoint or planet.planet.endpoint) + path
    request = AWSRequest(method=method, url=url, headers=headers or {})
    _signer(Credentials(cred.access_key_id, cred.secret_access_key), payload).add_auth(request)
    timestamp = request.context["timestamp"]
    auth = request.headers["Authorization"]
    return Signed(
        headers=dict(request.headers.items()),
        signing_key=signing_key(cred.secret_access_key, timestamp[:8]),
        timestamp=timestamp,
        scope=f"{timestamp[:8]}/us-east-1/s3/aws4_request",
        seed=auth.rsplit("Signature=", 1)[1],
    )


def send(
    planet: PlanetThread,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes = b"",
    endpoint: str | None = None,
) -> Reply:
    url = (endpoint or planet.planet.endpoint) + path
    resp = _http.request(method, url, body=body, headers=headers, preload_content=True)
    return Reply(resp.status, resp.headers, resp.data)


def request(
    planet: PlanetThread,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    payload: str | None = None,
    endpoint: str | None = None,
) -> Reply:
    """One signed request; ``payload`` None signs the body's SHA-256."""
    payload = payload or hashlib.sha256(body).hexdigest()
    signed = sign(planet, method, path, payload, dict(headers or {}), endpoint)
    return send(planet, method, path, signed.headers, body, endpoint)


def chunk_signature(signed: Signed, previous: str, data: bytes) -> str:
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            signed.timestamp,
            signed.scope,
            previous,
            EMPTY_SHA256,
            hashlib.sha256(data).hexdigest(),
        ]
    )
    return hmac.new(signed.signing_key, to_sign.encode(), hashlib.sha256).hexdigest()


def signed_chunks_length(chunks: list[bytes], trailers: dict[str, str] | None = None) -> int:
    """The encoded size of :func:`signed_chunks` (Content-Length is signed, so it comes first)."""
    return len(_frame(chunks, trailers, lambda _prev, _data: "0" * 64, None))


def signed_chunks(
    signed: Signed,
    chunks: list[bytes],
    tamper: int | None = None,
    trailers: dict[str, str] | None = None,
) -> bytes:
    """An ``aws-chunked`` body with chunk signatures (chunk ``tamper`` gets a wrong one),
    ending in signed ``trailers`` when given."""
    return _frame(
        chunks, trailers, lambda prev, data: chunk_signature(signed, prev, data), signed, tamper
    )


def _frame(
    chunks: list[bytes],
    trailers: dict[str, str] | None,
    sign_chunk: Any,
    signed: Signed | None,
    tamper: int | None = None,
) -> bytes:
    out = bytearray()
    previous = signed.seed if signed is not None else ""
    for i, data in enumerate([*chunks, b""]):
        sig = sign_chunk(previous, data)
        previous = sig
        if i == tamper:
            sig = "0" * 64
        out += f"{len(data):x};chunk-signature={sig}\r\n".encode() + data
        if data or trailers is None:
            out += b"\r\n"
    if trailers is not None:
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(trailers.items()))
        if signed is None:
            trailer_sig = "0" * 64
        else:
            to_sign = "\n".join(
                [
                    "AWS4-HMAC-SHA256-TRAILER",
                    signed.timestamp,
                    signed.scope,
                    previous,
                    hashlib.sha256(canonical.encode()).hexdigest(),
                ]
            )
            trailer_sig = hmac.new(signed.signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        out += canonical.replace("\n", "\r\n").encode()
        out += f"x-amz-trailer-signature:{trailer_sig}\r\n\r\n".encode()
    return bytes(out)


def unsigned_chunks(chunks: list[bytes], trailers: dict[str, str]) -> bytes:
    """An ``aws-chunked`` body without signatures, ending in trailers (botocore's https form)."""
    out = bytearray()
    for data in chunks:
        out += f"{len(data):x}\r\n".encode() + data + b"\r\n"
    out += b"0\r\n"
    for name, value in trailers.items():
        out += f"{name}:{value}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def chunked_headers(decoded_length: int, encoded_length: int, **extra: str) -> dict[str, str]:
    return {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(decoded_length),
        "Content-Length": str(encoded_length),
        **{k.replace("_", "-"): v for k, v in extra.items()},
    }
