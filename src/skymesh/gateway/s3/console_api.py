"""The tenant console's JSON API on the S3 port, at ``/_console/api/``: the project's keys
and usage, for the signer's project.

The console signs these requests as it signs S3's (SigV4, in the browser, with the
tenant's S3 access key), and they are verified by the same code (``s3.sigv4.verify``).
The gateway then acts for the signer's project with the project's API key, on the
coordinator's ``/v1/projects/self/...`` routes: so a page can only ever see and change
its own project's keys. A new S3 key's secret is derived here from the project's root
secret (``skymesh.access_secret``), as ``skymesh keys create`` does beside a gateway: the
coordinator issues the id and never learns the secret. The gateway's key refresh serves
the new key (and stops serving a revoked one) at once, and every gateway of the project
within its refresh interval.

| request | answer (JSON) |
|---|---|
| GET  /_console/api/keys | KeyList: S3 access key ids and inference keys, never a secret |
| POST /_console/api/keys | CreateKeysRequest -> {"created": KeysCreated, "secret_access_key": str or null} |
| POST /_console/api/keys/{key_id}/revoke | KeyList: the key revoked (404 NoSuchKey unless the project's) |
| GET  /_console/api/usage?since=&until=&step= | ProjectUsage |

Only header-signed SigV4 is taken: not SigV2 (it does not sign the body), not a presigned
URL (it could be handed on), and a body only with its SHA-256 signed. Errors are S3's
XML errors, as the page reads them. Bucket names hold no ``_``, so nothing here hides a
bucket; on a virtual-hosted bucket's host the path is that bucket's key and left to S3.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from skymesh.access_secret import derive_s3_secret
from skymesh.gateway import console
from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.request import S3Context
from skymesh.gateway.s3.sigv2 import is_sigv2
from skymesh.gateway.s3.sigv4 import SigV4Request, parse_query, verify, verify_payload_sha256
from skymesh.wire.projects import CreateKeysRequest

log = logging.getLogger(__name__)

PREFIX = console.API_PREFIX
MAX_BODY = 16 * 1024  # a CreateKeysRequest is a few dozen bytes
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # an S3 access key id or an inference key id
USAGE_QUERY = ("since", "until", "step")
#: Never kept: the answer to a creation holds a secret
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def claims(request: web.Request, base_hosts: Sequence[str]) -> bool:
    """Whether ``request`` is one of the console API's (any method, signed or not)."""
    return request.path.startswith(PREFIX) and not console.virtual_hosted(request, base_hosts)


def _json(value: object) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(value), content_type="application/json", headers=HEADERS
    )


async def serve(
    ctx: S3Context, request: web.Request, raw_path: str, raw_query: str
) -> web.Response:
    """Authenticate the signer, then run the request for its project; S3Error otherwise."""
    length = request.content_length
    if request.body_exists and length is None:
        raise s3_error("MissingContentLength", "You must provide the Content-Length HTTP header.")
    if length is not None and length > MAX_BODY:
        raise s3_error(
            "EntityTooLarge", f"A console API request's body is at most {MAX_BODY} bytes."
        )
    sigv4 = SigV4Request(
        method=request.method,
        path=raw_path,
        query=raw_query,
        headers=list(request.headers.items()),
        now=datetime.now(UTC),
    )
    if is_sigv2(sigv4):
        raise s3_error("AccessDenied", "The console API takes AWS Signature Version 4 only.")
    auth = verify(sigv4, ctx.lookup_secret, max_skew=ctx.config.max_clock_skew)
    if auth.access_key is None or auth.presigned:
        raise s3_error("AccessDenied", "The console API takes requests signed in a header only.")
    body = await request.read() if length else b""
    if auth.payload_mode != "signed" and (body or request.method != "GET"):
        raise s3_error("AccessDenied", "The console API takes a body only with its SHA-256 signed.")
    verify_payload_sha256(auth, hashlib.sha256(body).hexdigest())
    credential = ctx.credentials.get(auth.access_key)
    client = ctx.clients.get(auth.access_key)
    if credential is None or client is None:  # revoked between the check and now
        raise s3_error("InvalidAccessKeyId", AWSAccessKeyId=auth.access_key)
    metainfo = client.metainfo
    parts = raw_path[len(PREFIX) :].split("/")
    method = request.method
    if parts == ["keys"] and method == "GET":
        return _json(await metainfo.keys())
    if parts == ["keys"] and method == "POST":
        try:
            req = msgspec.json.decode(body, type=CreateKeysRequest)
        except msgspec.ValidationError as e:
            raise s3_error("InvalidRequest", f"a key to create: {e}") from None
        except msgspec.DecodeError:
            raise s3_error("MalformedPOSTRequest", "The body is not JSON.") from None
        created = await metainfo.create_keys(req)
        secret = None
        if created.access_key is not None:
            secret = derive_s3_secret(
                credential.encryption_secret, created.access_key.access_key_id
            )
        await _keys_changed(ctx)
        return _json({"created": created, "secret_access_key": secret})
    if len(parts) == 3 and parts[0] == "keys" and parts[2] == "revoke" and method == "POST":
        if not _KEY_ID.fullmatch(parts[1]):
            raise s3_error("InvalidRequest", "a key id is letters, digits, - and _ only")
        revoked = await metainfo.revoke_key(parts[1])
        await _keys_changed(ctx)
        return _json(revoked)
    if parts == ["usage"] and method == "GET":
        query = {n: v for n, v in parse_query(raw_query) if n in USAGE_QUERY}
        return _json(await metainfo.usage(query))
    raise s3_error("InvalidRequest", f"no console API {method} {request.path}")


async def _keys_changed(ctx: S3Context) -> None:
    """Serve what changed now rather than at the next key refresh. A failure here must not
    lose the answer (a new key's secret is in it): the periodic refresh catches up."""
    if ctx.refresh_keys is None:
        return
    try:
        await ctx.refresh_keys()
    except Exception as e:
        log.warning("access keys not refreshed after a console change: %s", e)
