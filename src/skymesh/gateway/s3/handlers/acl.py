"""Canned ACLs: ``private`` and ``public-read``, on buckets and objects.

skymesh has one kind of principal, the project, so S3's ACL model reduces to two
states: the owner alone, or the owner plus anonymous readers. A bucket's ACL
lives in a coordinator column (the gateway must read it before it knows which
project's keys to use); an object's lives in its sealed metadata, so that a new
version starts private unless its PUT says otherwise, exactly as in S3, and the
check is made on the version being read.

As in S3, ``public-read`` on a bucket lets anyone list it (and HEAD it), not read
its objects; an object is readable by anyone only with its own ``public-read``.
Grants other than these canned shapes are ``NotImplemented``.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from aiohttp import web

from skymesh.client.objectmeta import ObjectMeta
from skymesh.gateway.s3 import access
from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.gateway.s3.handlers.small_body import read_small_body
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.xml import ALL_USERS, MAX_ACL_BODY, acl_xml, parse_acl

PRIVATE = "private"
PUBLIC_READ = "public-read"
#: Canned ACLs that mean something only with several principals or AWS services.
UNSUPPORTED = (
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "log-delivery-write",
)
#: On an object, the bucket owner is always the object owner here: these equal private.
OWNER_ALIASES = ("bucket-owner-read", "bucket-owner-full-control")
GRANT_HEADERS = (
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
)


def _not_implemented(what: str) -> S3Error:
    return s3_error(
        "NotImplemented",
        f"{what} is not supported: skymesh implements the canned ACLs 'private' and "
        "'public-read' only",
    )


def canned_acl(headers: Mapping[str, str], *, bucket: bool) -> str | None:
    """The ``x-amz-acl`` header as "private" / "public-read", or None when absent."""
    for name in GRANT_HEADERS:
        if name in headers:
            raise _not_implemented(f"the {name} header")
    value = headers.get("x-amz-acl")
    if value is None:
        return None
    value = value.strip()
    if value in (PRIVATE, PUBLIC_READ):
        return value
    if value in UNSUPPORTED:
        raise _not_implemented(f"the canned ACL {value!r}")
    if not bucket and value in OWNER_ALIASES:
        return PRIVATE
    raise s3_error(
        "InvalidArgument",
        f"x-amz-acl {value[:64]!r} is not a canned ACL; use 'private' or 'public-read'",
        ArgumentName="x-amz-acl",
        ArgumentValue=value[:64],
    )


def object_acl(headers: Mapping[str, str]) -> str:
    """The ACL to seal into a new object's metadata ("" means private)."""
    acl = canned_acl(headers, bucket=False)
    return PUBLIC_READ if acl == PUBLIC_READ else ""


def _owner(req: S3Request) -> tuple[str, str]:
    return (req.credential.project_id, req.credential.project_id)


async def _requested_acl(req: S3Request, *, bucket: bool) -> str:
    """PutBucketAcl / PutObjectAcl: the canned ACL from the header or the policy body."""
    header = canned_acl(req.http.headers, bucket=bucket)
    body = await read_small_body(req, MAX_ACL_BODY)
    if header is not None:
        if body.strip():
            raise s3_error(
                "UnexpectedContent", "give either the x-amz-acl header or an ACL body, not both"
            )
        return header
    if not body.strip():
        raise s3_error(
            "InvalidRequest", "PutAcl needs an x-amz-acl header or an AccessControlPolicy body"
        )
    owner_id = req.credential.project_id
    grants = {(g.kind, g.grantee, g.permission) for g in parse_acl(body)}
    owner_full = ("id", owner_id, "FULL_CONTROL")
    public = ("uri", ALL_USERS, "READ")
    if grants == {owner_full}:
        return PRIVATE
    if grants == {owner_full, public}:
        return PUBLIC_READ
    for kind, who, _ in grants:
        if kind == "id" and who != owner_id:
            raise s3_error("InvalidArgument", "Invalid id: grants name the owner only here")
    raise _not_implemented(
        "this AccessControlPolicy (only the owner's FULL_CONTROL, plus AllUsers READ for public-read)"
    )


# ---------------------------------------------------------------- buckets


def _public_acls_shown(req: S3Request) -> bool:
    """With BucketOwnerEnforced, ACLs are disabled: they read as the owner's alone."""
    return req.access is None or not access.acls_disabled(req.access.config)


def _check_new_acl(req: S3Request, acl: str) -> None:
    """BucketOwnerEnforced refuses any ACL but private; BlockPublicAcls a public one."""
    if req.access is None:
        return
    config = req.access.config
    if access.acls_disabled(config) and acl != PRIVATE:
        raise s3_error("AccessControlListNotSupported")
    pab = config.public_access_block
    if pab is not None and pab.block_public_acls and acl == PUBLIC_READ:
        raise access.denied()


async def get_bucket_acl(req: S3Request) -> web.StreamResponse:
    config = await req.client.metainfo.bucket_config(req.bucket)
    body = acl_xml(_owner(req), config.acl == PUBLIC_READ and _public_acls_shown(req))
    return web.Response(body=body, content_type=XML)


async def put_bucket_acl(req: S3Request) -> web.StreamResponse:
    acl = await _requested_acl(req, bucket=True)
    _check_new_acl(req, acl)
    await req.client.metainfo.put_bucket_acl(req.bucket, acl)
    if req.ctx.directory is not None:
        req.ctx.directory.forget(req.bucket)
    return web.Response(status=200)


# ---------------------------------------------------------------- objects


async def get_object_acl(req: S3Request) -> web.StreamResponse:
    obj = await req.client.head_object(req.bucket, req.key, req.query("versionId", "") or "")
    body = acl_xml(_owner(req), obj.meta.acl == PUBLIC_READ and _public_acls_shown(req))
    return web.Response(body=body, content_type=XML)


async def put_object_acl(req: S3Request) -> web.StreamResponse:
    acl = await _requested_acl(req, bucket=False)
    _check_new_acl(req, acl)
    stored = PUBLIC_READ if acl == PUBLIC_READ else ""

    def change(meta: ObjectMeta) -> ObjectMeta:
        return msgspec.structs.replace(meta, acl=stored)

    await req.client.update_object_meta(
        req.bucket, req.key, change, req.query("versionId", "") or ""
    )
    return web.Response(status=200)
