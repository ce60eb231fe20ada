"""Each bucket's lifecycle rules as the gateway last read them, kept a few seconds.

GetObject, HeadObject, PutObject and CreateMultipartUpload answer headers that
depend on the bucket's lifecycle rules (``x-amz-expiration``, ``x-amz-abort-date``).
Reading the rules from the coordinator on every such request would double its
calls, so they are kept for :data:`CACHE_TTL` seconds, as the bucket directory keeps
owners (``public.py``); this gateway forgets a bucket's at once when it changes
them, and sees another gateway's change within the TTL. The read goes through the
requester's own client (the owner's, for a public read), not the directory's
bounded owner search, which anonymous requests need.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from skymesh.client.client import Client
from skymesh.wire.metainfo import LifecycleRule

CACHE_TTL = 5.0  # seconds a bucket's rules are trusted
MAX_CACHED = 10_000  # buckets remembered, least recently used dropped first
DAY = 86400.0


class BucketRules:
    """Lifecycle rules by bucket, with the coordinator's day length."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, list[LifecycleRule], float]] = OrderedDict()
        self.reads = 0  # coordinator reads, for tests

    def forget(self, bucket: str) -> None:
        self._cache.pop(bucket, None)

    async def rules(self, client: Client, bucket: str) -> tuple[list[LifecycleRule], float]:
        """The bucket's rules ([] when none) and the length of a lifecycle day in seconds."""
        now = self.clock()
        entry = self._cache.get(bucket)
        if entry is not None and now - entry[0] < CACHE_TTL:
            self._cache.move_to_end(bucket)
            return entry[1], entry[2]
        self.reads += 1
        config = await client.metainfo.bucket_config(bucket)
        found = (now, config.lifecycle or [], config.lifecycle_day)
        self._cache[bucket] = found
        self._cache.move_to_end(bucket)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return found[1], found[2]
