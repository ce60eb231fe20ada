"""Requests with no credentials: anonymous public reads and CORS preflights.

Bucket names are global, but the coordinator answers a project only about its own
buckets, and this gateway may hold keys of several projects. To serve an
unsigned request (or to add CORS headers to any request with an ``Origin``) it
must find which of *its* projects owns the bucket: it asks ``/v1/buckets/config``
with each project's key in turn (the owner gets the configuration, another
project ``AccessDenied``, and ``NoSuchBucket`` ends the search at once) and keeps
the answer, found or not, for :data:`CACHE_TTL` seconds. With one project per
gateway, the usual case, that is one call per bucket per TTL. A bucket no
project of this gateway owns is never served anonymously.

Anyone can name buckets, so lookups are bounded (:class:`BucketDirectory`): the
cache keeps the most recently used :data:`MAX_CACHED` names, concurrent lookups
of one name share one search, and searches start at most ``rate`` a second
(bursts of as many) with at most ``in_flight`` under way. Past that a name whose
answer is merely stale (up to :data:`STALE_TTL`) gets its old answer, and any
other ``503 SlowDown`` at once: a flood of made-up names costs the coordinator
a bounded rate of calls and cannot crowd out the buckets already known.

Reads then go through the owner's client with the :class:`PublicRead` access
rule: an object is served only when its own sealed metadata says
``public-read``, checked on the very version being read (no window between
check and read); a listing only when the bucket's ACL, fetched fresh, says so.
Missing keys read as ``AccessDenied`` unless the bucket is publicly listable, as
in S3, so anonymous callers cannot probe for names.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from skymesh.client.client import Client
from skymesh.client.metainfo import MetainfoClient
from skymesh.client.objectmeta import ObjectMeta
from skymesh.config import Credential
from skymesh.errors import SkymeshError
from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.wire.metainfo import BucketConfig

CACHE_TTL = 5.0  # seconds an owner (or "none here") is trusted as found
STALE_TTL = 300.0  # seconds an older answer may still be used while lookups are refused
MAX_CACHED = 10_000  # names remembered, least recently used dropped first
DEFAULT_LOOKUP_RATE = 50.0  # searches started per second (and the burst allowed)
DEFAULT_LOOKUPS_IN_FLIGHT = 16
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
    Searches are bounded by ``rate`` (a second) and ``in_flight``; see the module.
    """

    def __init__(
        self,
        credentials: Mapping[str, Credential],
        clients: Mapping[str, Client],
        clock: Callable[[], float] = time.monotonic,
        *,
        rate: float = DEFAULT_LOOKUP_RATE,
        in_flight: int = DEFAULT_LOOKUPS_IN_FLIGHT,
    ):
        if rate <= 0 or in_flight < 1:
            raise ValueError(
                f"bucket lookups need a positive rate and in_flight, not {rate}, {in_flight}"
            )
        self.credentials = credentials
        self.clients = clients
        self.clock = clock
        self.rate = rate
        self.in_flight = in_flight
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._searches: dict[str, asyncio.Task[Owned | None]] = {}
        self._tokens = rate  # a token bucket of searches, ``rate`` deep
        self._filled_at = clock()
        self._public: dict[str, Client] = {}
        self.searches = 0  # searches started, for metrics and tests
        self.refused = 0  # lookups answered SlowDown

    def forget(self, bucket: str) -> None:
        self._cache.pop(bucket, None)

    async def lookup(self, bucket: str, caller: Credential | None = None) -> Owned | None:
        """The owner and configuration of ``bucket``, or None if no project here owns it.

        A signed ``caller`` (one of this gateway's projects, authenticated) is asked
        about first and is not bounded: its requests need the bucket's policy.
        Raises ``SlowDown`` when an unsigned search is needed and the bounds allow none."""
        now = self.clock()
        entry = self._cache.get(bucket)
        if entry is not None and now - entry.at < CACHE_TTL:
            self._cache.move_to_end(bucket)
            return entry.owned
        search = self._searches.get(bucket)
        if search is None:
            if caller is not None:
                search = asyncio.create_task(self._search(bucket, caller))
                self._searches[bucket] = search
                search.add_done_callback(lambda t: self._done(bucket, t))
                return await asyncio.shield(search)
            if len(self._searches) >= self.in_flight or not self._take_token(now):
                if entry is not None and now - entry.at < STALE_TTL:
                    return entry.owned
                self.refused += 1
                raise s3_error(
                    "SlowDown", "too many lookups of buckets this gateway does not know yet"
                )
            search = asyncio.create_task(self._search(bucket))
            self._searches[bucket] = search
            search.add_done_callback(lambda t: self._done(bucket, t))
        # shielded: a caller that goes away does not cancel the others' search
        return await asyncio.shield(search)

    def _take_token(self, now: float) -> bool:
        refill = max(0.0, now - self._filled_at) * self.rate
        self._tokens = min(self.rate, self._tokens + refill)
        self._filled_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def _search(self, bucket: str, first: Credential | None = None) -> Owned | None:
        self.searches += 1
        owned = await self._ask(bucket, first)
        self._cache[bucket] = _Entry(owned, self.clock())
        self._cache.move_to_end(bucket)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return owned

    def _done(self, bucket: str, search: asyncio.Task[Owned | None]) -> None:
        self._searches.pop(bucket, None)
        if not search.cancelled():
            search.exception()  # retrieved: each waiting caller got it already

    async def _ask(self, bucket: str, first: Credential | None = None) -> Owned | None:
        seen: set[str] = set()
        ordered = list(self.credentials.items())
        if first is not None:
            ordered.insert(0, (first.access_key_id, first))
        for access_key, cred in ordered:
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
