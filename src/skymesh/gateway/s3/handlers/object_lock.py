"""S3 Object Lock: the bucket's configuration, a version's retention and legal hold,
and the lock headers of writes, reads and deletes.

The gateway only translates: S3's XML and headers to ``ObjectLock`` values and back.
The coordinator holds the lock state in plain columns and enforces it in the same
transactions that remove versions, so no caller can get around it through the
gateway or without it (``coordinator/metainfo/lock_rules.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.handlers.checksums import requested as requested_checksum
from skymesh.gateway.s3.handlers.small_body import read_small_body
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.xml import (
    MAX_OBJECT_LOCK_BODY,
    iso8601,
    legal_hold_xml,
    object_lock_configuration_xml,
    parse_legal_hold,
    parse_object_lock_configuration,
    parse_retention,
    parse_timestamp,
    retention_xml,
)
from skymesh.wire.metainfo import (
    ObjectInfo,
    ObjectLock,
    PutObjectLockConfigRequest,
    PutObjectLockRequest,
)

MODE_HEADER = "x-amz-object-lock-mode"
UNTIL_HEADER = "x-amz-object-lock-retain-until-date"
HOLD_HEADER = "x-amz-object-lock-legal-hold"
BYPASS_HEADER = "x-amz-bypass-governance-retention"
MODES = ("GOVERNANCE", "COMPLIANCE")
NO_LOCK_CONFIGURATION = "Bucket is missing Object Lock Configuration"


def bypass_governance(req: S3Request) -> bool:
    return req.http.headers.get(BYPASS_HEADER, "").strip().lower() == "true"


def lock_from_headers(headers: Mapping[str, str]) -> ObjectLock | None:
    """The Object Lock a write asks for, or None (the bucket's default applies)."""
    mode = headers.get(MODE_HEADER, "").strip()
    until_text = headers.get(UNTIL_HEADER, "").strip()
    hold = headers.get(HOLD_HEADER, "").strip()
    if not (mode or until_text or hold):
        return None
    if bool(mode) != bool(until_text):
        raise s3_error(
            "InvalidArgument",
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
        )
    until = 0.0
    if mode:
        if mode not in MODES:
            raise s3_error("InvalidArgument", "Unknown wormMode directive.")
        parsed = parse_timestamp(until_text)
        if parsed is None:
            raise s3_error("InvalidArgument", "The retain until date must be an ISO 8601 timestamp")
        until = parsed
    if hold and hold not in ("ON", "OFF"):
        raise s3_error("InvalidArgument", "Legal Hold must be either of 'ON' or 'OFF'")
    return ObjectLock(mode=mode, retain_until=until, legal_hold=hold == "ON")


async def write_lock(req: S3Request, *, needs_integrity: bool = False) -> ObjectLock | None:
    """The lock headers of a write, checked before any byte is stored: the bucket must
    have Object Lock, and a PutObject with them must carry Content-MD5 or a checksum."""
    lock = lock_from_headers(req.http.headers)
    if lock is None:
        return None
    if needs_integrity and "Content-MD5" not in req.http.headers:
        algorithm, _, _ = requested_checksum(req.http.headers)
        if algorithm is None:
            raise s3_error(
                "InvalidRequest",
                "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object"
                " requests with Object Lock parameters",
            )
    if not (await req.client.metainfo.bucket_config(req.bucket)).object_lock:
        raise s3_error("InvalidRequest", NO_LOCK_CONFIGURATION)
    return lock


def lock_headers(info: ObjectInfo) -> dict[str, str]:
    """HeadObject / GetObject: the version's retention and legal hold, when it has them."""
    headers = {}
    if info.lock_mode:
        headers[MODE_HEADER] = info.lock_mode
        headers[UNTIL_HEADER] = iso8601(info.retain_until)
    if info.legal_hold:
        headers[HOLD_HEADER] = "ON"
    return headers


# ---------------------------------------------------------------- bucket configuration


async def get_object_lock_configuration(req: S3Request) -> web.StreamResponse:
    config = await req.client.metainfo.bucket_config(req.bucket)
    if not config.object_lock:
        raise s3_error("ObjectLockConfigurationNotFoundError")
    body = object_lock_configuration_xml(config.lock_mode, config.lock_days, config.lock_years)
    return web.Response(body=body, content_type=XML)


async def put_object_lock_configuration(req: S3Request) -> web.StreamResponse:
    mode, days, years = parse_object_lock_configuration(
        await read_small_body(req, MAX_OBJECT_LOCK_BODY)
    )
    await req.client.metainfo.put_object_lock_config(
        PutObjectLockConfigRequest(name=req.bucket, mode=mode, days=days, years=years)
    )
    return web.Response(status=200)


# ---------------------------------------------------------------- one version


async def _locked_version(req: S3Request) -> ObjectInfo:
    """The version asked for, in a bucket with Object Lock (else InvalidRequest)."""
    if not (await req.client.metainfo.bucket_config(req.bucket)).object_lock:
        raise s3_error("InvalidRequest", NO_LOCK_CONFIGURATION)
    return (await req.client.head_object(req.bucket, req.key, _version(req))).info


def _version(req: S3Request) -> str:
    return req.query("versionId", "") or ""


async def get_object_retention(req: S3Request) -> web.StreamResponse:
    info = await _locked_version(req)
    if not info.lock_mode:
        raise s3_error("NoSuchObjectLockConfiguration")
    return web.Response(body=retention_xml(info.lock_mode, info.retain_until), content_type=XML)


async def put_object_retention(req: S3Request) -> web.StreamResponse:
    mode, until = parse_retention(await read_small_body(req, MAX_OBJECT_LOCK_BODY))
    await req.client.metainfo.put_object_lock(
        PutObjectLockRequest(
            bucket=req.bucket,
            key=req.key,
            version_id=_version(req),
            retention=ObjectLock(mode=mode, retain_until=until),
            bypass_governance=bypass_governance(req),
        )
    )
    return web.Response(status=200)


async def get_object_legal_hold(req: S3Request) -> web.StreamResponse:
    info = await _locked_version(req)
    return web.Response(body=legal_hold_xml(info.legal_hold), content_type=XML)


async def put_object_legal_hold(req: S3Request) -> web.StreamResponse:
    on = parse_legal_hold(await read_small_body(req, MAX_OBJECT_LOCK_BODY))
    await req.client.metainfo.put_object_lock(
        PutObjectLockRequest(
            bucket=req.bucket, key=req.key, version_id=_version(req), legal_hold=on
        )
    )
    return web.Response(status=200)
