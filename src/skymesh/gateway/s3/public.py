"""Requests with no credentials: anonymous public reads and CORS preflights.

Bucket names are global, but the coordinator answers a project only about its own
buckets, and this gateway may hold keys of several projects. To serve an
unsigned request it must find which of *its* projects owns the bucket: it asks
``/v1/buckets/config`` with each project's key in turn (the owner gets the
configuration, another project ``AccessDenied``, and ``NoSuchBucket`` ends the
search at once) and keeps the answer for :data:`CACHE_TTL` seconds. With one
project per gateway, the usual case, that is one call per bucket per TTL. A
bucket no project of this gateway owns is never served anonymously.

Reads then go through the owner's client with the :class:`PublicRead` access
rule: an object is served only when its own sealed metadata says
``public-read``, checked on the very version being read (no window between
check and read); a listing only when the bucket's ACL, fetched fresh, says so.
Missing keys read as ``AccessDenied`` unless the bucket is publicly listable, as
in S3, so anonymous callers cannot probe for names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from skymesh.client.client import Client
from skymesh.client.metainfo import MetainfoClient
from skymesh.client.objectmeta import ObjectMeta
from skymesh.config import Credential
from skymesh.errors import SkymeshError
from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.wire.metainfo import BucketConfig

CACHE_TTL = 5.0
MAX_CACHED = 10_000
PUBLIC_READ = "public-read"


def _denied() -> S3Error:
    return s3_error("AccessDenied", "Access Denied: this resource is not public-read")


@dataclass(frozen=True)
class Owned:
    """A bucket owned by one of this gateway's projects, with its configuration."""

    credential: Credential
    config: BucketConfig


class PublicRead:
    """The access rule of anonymous callers: what the owner made ``public-read``, no more."""

    head_first = True  # refusing a private object must not make the coordinator sign orders

    def __init__(self, metainfo: MetainfoClient) -> None:
        self.metainfo = metainfo  # the owner's: bucket ACLs are read with its API key

    async def _bucket_public(self, bucket: str) -> bool:
        return (await self.metainfo.bucket_config(bucket)).acl == PUBLIC_READ

    async def check_bucket(self, bucket: str) -> None:
        if not await self._bucket_public(bucket):
            raise _denied()

    def check_object(self, meta: ObjectMeta) -> None:
        if meta.acl != PUBLIC_READ:
            raise _denied()

    async def refusal(self, bucket: str, err: SkymeshError) -> SkymeshError:
        if err.code in ("NoSuchKey", "NoSuchVersion") and await self._bucket_public(bucket):
            return err
        return _denied()


@dataclass
class _Entry:
    owned: Owned | None
    at: float


class BucketDirectory:
    """Which of this gateway's projects owns a bucket, and its configuration, cached briefly.

    ``credentials`` and ``clients`` are the gateway's live maps (keys added later
    are seen). ``forget`` drops a bucket after this gateway changed its ACL or CORS.
    """

    def __init__(
        self,
        credentials: Mapping[str, Credential],
        clients: Mapping[str, Client],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.credentials = credentials
        self.clients = clients
        self.clock = clock
        self._cache: dict[str, _Entry] = {}
        self._public: dict[str, Client] = {}

    def forget(self, bucket: str) -> None:
        self._cache.pop(bucket, None)

    async def lookup(self, bucket: str) -> Owned | None:
        """The owner and configuration of ``bucket``, or None if no project here owns it."""
        now = self.clock()
        entry = self._cache.get(bucket)
        if entry is not None and now - entry.at < CACHE_TTL:
            return entry.owned
        owned = await self._ask(bucket)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[bucket] = _Entry(owned, now)
        return owned

    async def _ask(self, bucket: str) -> Owned | None:
        seen: set[str] = set()
        for access_key, cred in list(self.credentials.items()):
            if cred.project_id in seen:
                continue
            seen.add(cred.project_id)
            try:
                config = await self.clients[access_key].metainfo.bucket_config(bucket)
            except SkymeshError as e:
                if e.code in ("NoSuchBucket", "InvalidBucketName"):
                    return None
                if e.code == "AccessDenied":
                    continue
                raise
            return Owned(cred, config)
        return None

    def public_client(self, owner: Credential) -> Client:
        """``owner``'s client under the :class:`PublicRead` rule (made once per project)."""
        client = self._public.get(owner.project_id)
        if client is None:
            own = self.clients[owner.access_key_id]
            client = Client(
                own.metainfo,
                own.keys,
                own.session,
                access=PublicRead(own.metainfo),
                download_extra_pieces=own.extra,
                buffers=own.buffers,
            )
            self._public[owner.project_id] = client
        return client
