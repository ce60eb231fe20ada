"""Who may do what: the bucket policy, the ACLs and the Public Access Block, together.

Every request on a bucket is decided here before its handler runs, as S3 decides:

1. an explicit Deny of the bucket policy refuses anyone, the owner too (except
   for Get/Put/DeleteBucketPolicy, which the owner may always run, so that no
   policy locks its owner out);
2. the owning project may do anything else;
3. another project, or an anonymous caller, may do what a policy Allow grants it
   (unless RestrictPublicBuckets is on and the policy is public), or else what
   the ACLs grant (``public-read``; never with IgnorePublicAcls or
   BucketOwnerEnforced), or nothing: ``AccessDenied``.

A grant by policy runs the request with the owner's client (its credential, its
keys): cross-project access works only through a gateway that holds the owning
project's key. The caller still sees only what S3 would show it
(``S3Request.caller_owns`` is false). Grants by ACL go through the
:class:`~skymesh.gateway.s3.public.PublicRead` client, which checks the object's
own ACL on the very version it reads.

The bucket's configuration comes from the :class:`BucketDirectory`, cached for
``public.CACHE_TTL`` seconds, so changes made through another gateway are seen
within that time and the owner's requests pay no extra coordinator call while
the cache holds.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from aiohttp import web

from skymesh.client.client import Client
from skymesh.config import Credential
from skymesh.errors import SkymeshError
from skymesh.gateway.s3 import actions
from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.gateway.s3.policy import Decision, Policy, evaluate, is_public, parse_cached
from skymesh.gateway.s3.public import BucketDirectory, Owned
from skymesh.gateway.s3.router import Endpoint, Op
from skymesh.wire.metainfo import BucketConfig, PublicAccessBlock

log = logging.getLogger(__name__)

#: What an unsigned request may do by ACL (public-read decides per bucket/object)
ANONYMOUS_OPS = frozenset(
    {Op.GetObject, Op.HeadObject, Op.ListObjects, Op.ListObjectsV2, Op.HeadBucket}
)
#: Operations that need no bucket policy: no bucket yet, or none at all
_UNCHECKED = frozenset({Op.ListBuckets, Op.CreateBucket, Op.Options})
#: Writes whose x-amz-acl header sets an ACL (Public Access Block, ownership controls)
_ACL_WRITES = frozenset(
    {
        Op.PutObject,
        Op.CopyObject,
        Op.CreateMultipartUpload,
        Op.PutObjectAcl,
        Op.PutBucketAcl,
        Op.PostObject,
    }
)
PUBLIC_CANNED = frozenset(
    {"public-read", "public-read-write", "authenticated-read", "aws-exec-read"}
)
ENFORCED = "BucketOwnerEnforced"
#: x-amz-acl values a BucketOwnerEnforced bucket accepts (they change nothing)
ENFORCED_ACLS = frozenset({"private", "bucket-owner-full-control"})
_HEADER_KEYS = (
    "x-amz-acl",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    "x-amz-storage-class",
    "x-amz-content-sha256",
    "x-amz-website-redirect-location",
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
)
_NO_PAB = PublicAccessBlock()
_MISSING = frozenset({"NoSuchKey", "NoSuchVersion"})


def denied(message: str = "Access Denied") -> S3Error:
    return s3_error("AccessDenied", message)


def acls_disabled(config: BucketConfig) -> bool:
    return config.ownership == ENFORCED


def ignores_public_acls(config: BucketConfig) -> bool:
    pab = config.public_access_block or _NO_PAB
    return pab.ignore_public_acls or acls_disabled(config)


def stored_policy(config: BucketConfig) -> Policy | None:
    """The bucket's policy, parsed once per text; one that no longer parses (a newer
    gateway stored it) grants nothing and denies nothing, and is logged."""
    if not config.policy:
        return None
    try:
        return parse_cached(config.policy, config.name)
    except S3Error as e:
        log.warning("bucket %s has a policy this gateway cannot read: %s", config.name, e)
        return None


@dataclass(frozen=True)
class Access:
    """One request's standing with the bucket it acts on, for the checks a handler
    makes resource by resource (DeleteObjects' keys, a copy's source)."""

    directory: BucketDirectory
    signer: Credential | None  # the signed caller, None anonymous
    owner: str  # the bucket's project
    config: BucketConfig
    policy: Policy | None
    context: Mapping[str, Sequence[str]]

    @property
    def caller(self) -> str | None:
        return None if self.signer is None else self.signer.project_id

    @property
    def is_owner(self) -> bool:
        return self.caller == self.owner

    def _restricted(self, policy: Policy) -> bool:
        pab = self.config.public_access_block or _NO_PAB
        return pab.restrict_public_buckets and is_public(policy)

    def decide(self, action: str, resource: str) -> Decision | None:
        if self.policy is None:
            return None
        return evaluate(self.policy, self.caller, action, resource, self.context)

    def allows(self, action: str, resource: str) -> bool:
        """Whether the caller may do ``action`` on ``resource`` of this bucket by its
        policy (the owner: unless denied)."""
        decision = self.decide(action, resource)
        if decision is Decision.DENY:
            return False
        if self.is_owner:
            return True
        return (
            decision is Decision.ALLOW
            and self.policy is not None
            and not self._restricted(self.policy)
        )

    def may_allow(self) -> bool:
        """Whether some Allow of the policy could reach this caller at all."""
        if self.policy is None or self._restricted(self.policy):
            return False
        return any(
            s.effect is Decision.ALLOW and s.principals.match(self.caller) != s.not_principal
            for s in self.policy.statements
        )

    async def check_source(self, bucket: str, key: str, version_id: str) -> None:
        """A copy reads ``bucket/key``: the caller needs ``s3:GetObject`` on it."""
        action = actions.action_for(Op.GetObject, version_id) or "s3:GetObject"
        resource = actions.object_arn(bucket, key)
        if bucket == self.config.name:
            if not self.allows(action, resource):
                raise denied()
            return
        owned = await self.directory.lookup(bucket, self.signer)
        if owned is None or owned.credential.project_id != self.owner:
            if self.is_owner:
                return  # the owner's own client reads it, or is refused, as before
            raise denied()
        source = Access(
            self.directory,
            self.signer,
            self.owner,
            owned.config,
            stored_policy(owned.config),
            self.context,
        )
        if not source.allows(action, resource):
            raise denied()


@dataclass(frozen=True)
class Grant:
    """With whose credential and client a request runs, and its :class:`Access`."""

    credential: Credential
    client: Client
    access: Access | None = None
    #: a signed read refused by the coordinator may be retried as a public read
    acl_fallback: bool = False
    #: granted by a policy Allow to a caller that is not the owner
    by_policy: bool = False

    def refusal(self, err: SkymeshError) -> SkymeshError:
        """What a caller granted by policy may learn of a failure: as in S3, a missing
        key is ``AccessDenied`` unless it may list the bucket."""
        if not self.by_policy or self.access is None or err.code not in _MISSING:
            return err
        if self.access.allows("s3:ListBucket", actions.bucket_arn(self.access.config.name)):
            return err
        return denied()


async def anonymous(ctx_directory: BucketDirectory | None, endpoint: Endpoint) -> Grant:
    """The owner's public-read client for an unsigned read, or AccessDenied."""
    if endpoint.name not in ANONYMOUS_OPS or not endpoint.bucket or ctx_directory is None:
        raise denied("anonymous access is not allowed; sign your request")
    owned = await ctx_directory.lookup(endpoint.bucket)
    if owned is None:
        raise denied("anonymous access is not allowed; sign your request")
    if ignores_public_acls(owned.config):
        raise denied()
    return Grant(owned.credential, ctx_directory.public_client(owned.credential))


def _source_ip(remote: str) -> str:
    """The caller's address as policies name it: an IPv4 peer on a dual-stack socket
    (``::ffff:192.0.2.1``) is the IPv4 address."""
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def context_for(
    request: web.Request,
    endpoint: Endpoint,
    params: Mapping[str, Sequence[str]],
    caller: Credential | None,
    owner: str,
) -> dict[str, list[str]]:
    """The request's condition keys (lower-case names) and their values."""
    found: dict[str, list[str]] = {}
    now = time.time()
    found["aws:currenttime"] = [datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
    found["aws:epochtime"] = [str(int(now))]
    found["aws:securetransport"] = ["true" if request.secure else "false"]
    if request.remote:
        found["aws:sourceip"] = [_source_ip(request.remote)]
    for header, key in (("Referer", "aws:referer"), ("User-Agent", "aws:useragent")):
        if header in request.headers:
            found[key] = [request.headers[header]]
    if caller is not None:
        found["aws:principalaccount"] = [caller.project_id]
        found["aws:principaltype"] = ["Account"]
    else:
        found["aws:principaltype"] = ["Anonymous"]
    found["s3:resourceaccount"] = [owner]
    presigned = "X-Amz-Signature" in params or "Signature" in params
    found["s3:authtype"] = ["REST-QUERY-STRING" if presigned else "REST-HEADER"]
    if endpoint.name in (Op.ListObjects, Op.ListObjectsV2, Op.ListObjectVersions):
        for name in ("prefix", "delimiter", "max-keys"):
            values = params.get(name)
            if values:
                found["s3:" + name] = [values[0]]
    if endpoint.version_id:
        found["s3:versionid"] = [endpoint.version_id]
    for header in _HEADER_KEYS:
        value = request.headers.get(header)
        if value is not None:
            found["s3:" + header] = [value.strip()]
    tagging = request.headers.get("x-amz-tagging")
    if tagging is not None:
        tags = parse_qsl(tagging, keep_blank_values=True)
        found["s3:requestobjecttagkeys"] = [k for k, _ in tags]
        for k, v in tags:
            found["s3:requestobjecttag/" + k] = [v]
    return found


async def _existing_tags(
    policy: Policy, client: Client, endpoint: Endpoint, found: dict[str, list[str]]
) -> None:
    """``s3:ExistingObjectTag/<key>``: read only when the policy asks for it."""
    if endpoint.key is None or not any(
        k.startswith("s3:existingobjecttag/") for k in policy.condition_keys()
    ):
        return
    try:
        stored = await client.head_object(
            endpoint.bucket or "", endpoint.key, endpoint.version_id or ""
        )
    except SkymeshError:
        return  # no such object (yet): no tags, as in S3
    for k, v in stored.meta.tags.items():
        found["s3:existingobjecttag/" + k] = [v]


def _check_acl_header(request: web.Request, endpoint: Endpoint, config: BucketConfig) -> None:
    """Block Public Access and BucketOwnerEnforced refuse ACLs in the x-amz-acl header."""
    if endpoint.name not in _ACL_WRITES:
        return
    check_canned_acl(request.headers.get("x-amz-acl"), config)


def check_canned_acl(canned: str | None, config: BucketConfig) -> None:
    """A write asking for the canned ACL ``canned`` (None: none asked): refused when
    BucketOwnerEnforced disables ACLs or Block Public Access blocks public ones."""
    if canned is None:
        return
    canned = canned.strip()
    if acls_disabled(config) and canned not in ENFORCED_ACLS:
        raise s3_error("AccessControlListNotSupported")
    pab = config.public_access_block or _NO_PAB
    if pab.block_public_acls and canned in PUBLIC_CANNED:
        raise denied()


async def authorize(
    directory: BucketDirectory | None,
    clients: Mapping[str, Client],
    request: web.Request,
    endpoint: Endpoint,
    params: Mapping[str, Sequence[str]],
    caller: Credential | None,
) -> Grant:
    """Decide one authenticated request (``caller`` None: unsigned): raise AccessDenied,
    or say with whose credential and client its handler runs."""
    if not endpoint.bucket or endpoint.name in _UNCHECKED or directory is None:
        return await _plain(directory, clients, endpoint, caller)
    owned = await directory.lookup(endpoint.bucket, caller)
    if owned is None:
        return await _plain(directory, clients, endpoint, caller)
    return await _decide(directory, clients, request, endpoint, params, caller, owned)


async def _plain(
    directory: BucketDirectory | None,
    clients: Mapping[str, Client],
    endpoint: Endpoint,
    caller: Credential | None,
) -> Grant:
    if caller is None:
        return await anonymous(directory, endpoint)
    return Grant(caller, clients[caller.access_key_id])


async def _decide(
    directory: BucketDirectory,
    clients: Mapping[str, Client],
    request: web.Request,
    endpoint: Endpoint,
    params: Mapping[str, Sequence[str]],
    caller: Credential | None,
    owned: Owned,
) -> Grant:
    config = owned.config
    owner = owned.credential
    owner_client = clients[owner.access_key_id]
    policy = stored_policy(config)
    context: dict[str, list[str]] = {}
    if policy is not None:
        context = context_for(request, endpoint, params, caller, owner.project_id)
        await _existing_tags(policy, owner_client, endpoint, context)
    access = Access(directory, caller, owner.project_id, config, policy, context)
    action = actions.action_for(endpoint.name, endpoint.version_id)
    per_key = endpoint.name == Op.DeleteObjects  # decided key by key by the handler
    decision = None
    owner_only = access.is_owner and endpoint.name in actions.OWNER_ONLY
    if action is not None and not per_key and not owner_only:
        decision = access.decide(action, actions.resource_for(endpoint))
    if decision is Decision.DENY:
        raise denied()
    if access.is_owner:
        assert caller is not None
        _check_acl_header(request, endpoint, config)
        return Grant(caller, clients[caller.access_key_id], access)
    if endpoint.name in actions.OWNER_ONLY:
        if decision is Decision.ALLOW:
            raise s3_error("MethodNotAllowed")
        raise denied()
    granted = access.may_allow() if per_key else decision is Decision.ALLOW
    if granted and (per_key or access.allows(action or "", actions.resource_for(endpoint))):
        _check_acl_header(request, endpoint, config)
        return Grant(owner, owner_client, access, by_policy=True)
    # no policy grant: what the ACLs allow, unless they are ignored
    if ignores_public_acls(config):
        raise denied()
    if caller is None:
        return await anonymous(directory, endpoint)
    # the caller's own client: the coordinator refuses it another project's bucket,
    # and a read is then retried as a public read
    return Grant(caller, clients[caller.access_key_id], acl_fallback=True)
