"""PostObject: a browser form (``multipart/form-data``) uploading straight to a bucket.

The form authorizes itself (``postpolicy``), so the front door hands it here
before any header signature is looked for. The fields before ``file`` are read
(at most :data:`~skymesh.gateway.s3.postpolicy.MAX_PRE_DATA` bytes of them, as
S3 allows); the file then streams into the same upload path as PutObject
(``Client.put_object``, a megabyte at a time, never whole), checked against the
policy's ``content-length-range`` and a ``x-amz-checksum-*`` field before the
commit. Fields after the file are ignored, as S3 ignores them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import msgspec
from aiohttp import BodyPartReader, MultipartReader, web
from multidict import CIMultiDict

from skymesh.gateway.s3.access import authorize, check_canned_acl
from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.gateway.s3.handlers.body import READ_CHUNK
from skymesh.gateway.s3.handlers.checksums import HEADER_PREFIX, Checksum, requested, verified
from skymesh.gateway.s3.handlers.encryption import CUSTOMER
from skymesh.gateway.s3.handlers.encryption import RESPONSE_HEADERS as SSE_HEADERS
from skymesh.gateway.s3.handlers.encryption import check_request as check_sse
from skymesh.gateway.s3.handlers.objects import MAX_PUT_SIZE, meta_from_headers, version_headers
from skymesh.gateway.s3.handlers.tagging import MAX_OBJECT_TAGS, validate_tags
from skymesh.gateway.s3.postpolicy import (
    MAX_PRE_DATA,
    SizeRange,
    authenticate,
    check_conditions,
    decode_policy,
    missing_field,
)
from skymesh.gateway.s3.request import XML, S3Context
from skymesh.gateway.s3.router import Endpoint, Op, validate_key
from skymesh.gateway.s3.xml import parse_tagging, post_response_xml, quote_etag

#: form fields that become the object's headers, by the header name PutObject reads
_HEADER_FIELDS = {
    "acl": "x-amz-acl",
    "content-type": "Content-Type",
    "cache-control": "Cache-Control",
    "content-disposition": "Content-Disposition",
    "content-encoding": "Content-Encoding",
    "expires": "Expires",
}
_BODY_ERRORS = (ValueError, AssertionError, RuntimeError, LookupError)


def _malformed() -> S3Error:
    return s3_error("MalformedPOSTRequest")


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except _BODY_ERRORS as e:
        raise _malformed() from e
    if part is not None and not isinstance(part, BodyPartReader):
        raise _malformed()  # a nested multipart is no form field
    return part


async def _read_field(part: BodyPartReader, room: int) -> bytes:
    """A field's value, or MaxPostPreDataLengthExceeded past ``room`` bytes."""
    value = bytearray()
    while True:
        try:
            chunk = await part.read_chunk(min(READ_CHUNK, room + 1))
        except _BODY_ERRORS as e:
            raise _malformed() from e
        if not chunk:
            return bytes(value)
        value += chunk
        if len(value) > room:
            raise s3_error("MaxPostPreDataLengthExceeded", MaxPostPreDataLengthBytes=MAX_PRE_DATA)


async def read_fields(reader: MultipartReader) -> tuple[dict[str, str], BodyPartReader]:
    """The fields before ``file`` (lower-case names) and the file part."""
    fields: dict[str, str] = {}
    used = 0
    while True:
        part = await _next_part(reader)
        if part is None:
            raise s3_error(
                "InvalidArgument",
                "POST requires exactly one file upload per request.",
                ArgumentName="file",
                ArgumentValue=0,
            )
        name = (part.name or "").lower()
        if name == "file":
            return fields, part
        raw = await _read_field(part, MAX_PRE_DATA - used)
        used += len(name) + len(raw)
        if used > MAX_PRE_DATA:
            raise s3_error("MaxPostPreDataLengthExceeded", MaxPostPreDataLengthBytes=MAX_PRE_DATA)
        if name in fields:
            raise s3_error(
                "InvalidArgument",
                f"The form field {name[:64]!r} is given more than once.",
                ArgumentName=name[:64],
            )
        try:
            fields[name] = raw.decode()
        except UnicodeDecodeError as e:
            raise _malformed() from e


def form_headers(fields: dict[str, str]) -> CIMultiDict[str]:
    """The form's fields as the request headers PutObject would have had."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in fields.items():
        if name in _HEADER_FIELDS:
            headers[_HEADER_FIELDS[name]] = value
        elif name.startswith(("x-amz-meta-", HEADER_PREFIX, "x-amz-server-side-encryption")):
            headers[name] = value
        elif name.startswith("x-amz-grant-"):
            headers[name] = value  # refused as on PutObject (canned ACLs only)
    return headers


class _FileBody:
    """The file part as PutObject's source: bounded as it streams, checked before commit."""

    def __init__(
        self,
        part: BodyPartReader,
        size: SizeRange | None,
        checksum: Checksum | None,
        expected: str | None,
    ):
        self.part = part
        self.size = size
        self.high = min(MAX_PUT_SIZE, size.high) if size is not None else MAX_PUT_SIZE
        self.checksum = checksum
        self.expected = expected

    async def chunks(self) -> AsyncIterator[bytes]:
        total = 0
        while True:
            try:
                data = await self.part.read_chunk(READ_CHUNK)
            except _BODY_ERRORS as e:
                raise _malformed() from e
            if not data:
                return
            total += len(data)
            if total > self.high:
                raise s3_error(
                    "EntityTooLarge",
                    "Your proposed upload exceeds the maximum allowed size",
                    ProposedSize=total,
                    MaxSizeAllowed=self.high,
                )
            yield bytes(data)

    def verify(self, md5_hex: str, size: int) -> dict[str, str]:
        if self.size is not None and size < self.size.low:
            raise s3_error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                ProposedSize=size,
                MinSizeAllowed=self.size.low,
            )
        return verified(self.checksum, self.expected)


def _object_url(request: web.Request, endpoint: Endpoint, bucket: str, key: str) -> str:
    path = quote(key, safe="/")
    base = f"{request.scheme}://{request.host}"
    return f"{base}/{path}" if endpoint.virtual_host else f"{base}/{bucket}/{path}"


def _redirect(url: str, bucket: str, key: str, etag: str) -> str | None:
    if not url.startswith(("http://", "https://")):
        return None  # S3 ignores a redirect it cannot follow, and answers the status
    query = urlencode({"bucket": bucket, "key": key, "etag": etag})
    return url + ("&" if "?" in url else "?") + query


async def post_object(
    ctx: S3Context, request: web.Request, endpoint: Endpoint
) -> web.StreamResponse:
    bucket = endpoint.bucket
    if not bucket:
        raise s3_error("MethodNotAllowed")
    content_type = request.headers.get("Content-Type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise s3_error(
            "PreconditionFailed",
            Condition="Bucket POST must be of the enclosure-type multipart/form-data",
        )
    try:
        reader = await request.multipart()
    except _BODY_ERRORS as e:
        raise _malformed() from e
    fields, file_part = await read_fields(reader)
    if "key" not in fields:
        raise missing_field("key")
    if "policy" not in fields:
        if any(n in fields for n in ("x-amz-signature", "signature", "awsaccesskeyid")):
            raise missing_field("policy")
        raise s3_error(
            "AccessDenied",
            "anonymous form uploads are not allowed (skymesh has no public-write ACL); "
            "sign a policy",
        )
    policy = decode_policy(fields["policy"])
    access_key = authenticate(fields, policy, ctx.lookup_secret, sigv2=ctx.config.sigv2)
    size = check_conditions(policy, fields, bucket, datetime.now(UTC))
    key = fields["key"].replace("${filename}", file_part.filename or "")
    validate_key(key)
    headers = form_headers(fields)
    check_sse(headers)
    unsupported = [n for n in fields if n.startswith((CUSTOMER, "x-amz-object-lock-"))]
    if unsupported:
        # never stored without the key or the lock the form asked for
        raise s3_error(
            "NotImplemented",
            "customer-provided keys (SSE-C) and Object Lock fields are not supported in"
            f" POST forms: {', '.join(sorted(unsupported))[:200]}",
        )
    meta = meta_from_headers(headers)
    if "tagging" in fields:
        tags = validate_tags(parse_tagging(fields["tagging"].encode()), MAX_OBJECT_TAGS)
        meta = msgspec.structs.replace(meta, tags=tags)
    algorithm, expected, _ = requested(headers)
    body = _FileBody(file_part, size, Checksum(algorithm) if algorithm else None, expected)
    # the bucket's policy, Public Access Block and ownership controls decide as for
    # a PutObject of this key by the form's signer
    grant = await authorize(
        ctx.directory,
        ctx.clients,
        request,
        replace(endpoint, name=Op.PutObject, key=key),
        {},
        ctx.credentials[access_key],
    )
    if grant.access is not None:
        check_canned_acl(fields.get("acl"), grant.access.config)
    stored = await grant.client.put_object(
        bucket,
        key,
        body.chunks(),
        meta=meta,
        hashers=[body.checksum] if body.checksum is not None else [],
        before_commit=body.verify,
    )
    etag = quote_etag(stored.info.etag)
    location = _object_url(request, endpoint, bucket, key)
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    target = _redirect(redirect, bucket, key, etag) if redirect else None
    if target is not None:
        resp = web.Response(status=303)
        resp.headers["Location"] = target
    elif fields.get("success_action_status") == "201":
        resp = web.Response(
            status=201,
            body=post_response_xml(location, bucket, key, etag),
            content_type=XML,
        )
        resp.headers["Location"] = location
    else:
        status = 200 if fields.get("success_action_status") == "200" else 204
        resp = web.Response(status=status)
        resp.headers["Location"] = location
    resp.headers["ETag"] = etag
    if body.checksum is not None:
        resp.headers[HEADER_PREFIX + body.checksum.algorithm] = body.checksum.b64()
    resp.headers.update(version_headers(stored.info))
    resp.headers.update(SSE_HEADERS)
    return resp
