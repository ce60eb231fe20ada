"""The ``lifecycle-rules`` loop: S3 lifecycle rules applied once a day, as S3 does.

Each run goes through every bucket that has rules, a batch of keys at a time
(:data:`BATCH`, in key order, so a run's work per transaction is bounded and the
next batch starts after the last key seen). For each key it plans, from one read
of the key's versions (the pure ``skymesh.lifecycle_rules`` decides):

- the current version past an enabled Expiration (Days or Date) expires: in an
  unversioned bucket it is deleted; in a versioned one (Enabled or Suspended) a
  delete marker goes on top, as a DELETE without a version id does;
- a delete marker that is the key's only version goes when a rule says
  ``ExpiredObjectDeleteMarker``, or when an Expiration's Days (Date) would have
  expired it as an object, as S3 does;
- a noncurrent version goes ``NoncurrentDays`` after it became noncurrent (when
  its successor was created), unless it is one of the ``NewerNoncurrentVersions``
  newest noncurrent versions;

and every incomplete multipart upload past ``AbortIncompleteMultipartUpload`` is
aborted.

Every removal goes through the operation a client's request would use,
:func:`~skymesh.coordinator.metainfo.delete_object.delete_one` and
:func:`~skymesh.coordinator.metainfo.multipart.abort_upload`, so pieces go to
garbage as usual and any check those make (a version under Object Lock) holds
here too. A batch's removals share one write transaction that first checks each
is still due (the key's latest version is still the one planned, a marker still
alone); when the deletion path refuses one, the batch is done again one removal
per transaction and the refused ones are logged and skipped, never fatal. A run
therefore is idempotent: what it removed no longer matches, and a coordinator that
dies mid-run leaves the rest for the next run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.schema import buckets, objects, pending_streams
from skymesh.coordinator.metainfo.bucket_config import decode_lifecycle
from skymesh.coordinator.metainfo.checks import MULTIPART
from skymesh.coordinator.metainfo.common import current_stream, find_version
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.delete_object import delete_one
from skymesh.coordinator.metainfo.multipart import abort_upload
from skymesh.errors import SkymeshError
from skymesh.lifecycle_rules import (
    current_expiry,
    decode_digests,
    marker_expired,
    matches,
    noncurrent_expired,
    upload_expired,
)
from skymesh.wire.metainfo import LifecycleRule, UploadRequest

log = logging.getLogger(__name__)

BATCH = 200  # keys planned (and their removals written) per transaction
# a run starts this long after each day boundary (a minute past midnight UTC, or 5 %
# of a shortened day), so that coordinator clocks a little behind still see the new day
RUN_AFTER_BOUNDARY = 60.0
RUN_AFTER_BOUNDARY_FRACTION = 0.05

EXPIRE_CURRENT = "expire-current"  # the latest version: deleted, or a delete marker on top
DROP_VERSION = "drop-version"  # a noncurrent version, by id
DROP_MARKER = "drop-marker"  # a delete marker that is the key's only version


@dataclass(frozen=True)
class Removal:
    action: str
    key: str
    version_id: str  # the planned version's stream id
    rule_id: str


@dataclass
class LifecycleRun:
    """What one run did (``MetainfoService.lifecycle_rules.last``: the latest run)."""

    buckets: int = 0
    expired: int = 0  # current versions deleted or covered by a delete marker
    noncurrent: int = 0  # noncurrent versions deleted
    markers: int = 0  # expired delete markers removed
    uploads: int = 0  # incomplete multipart uploads aborted
    skipped: int = 0  # removals the deletion path refused (logged)
    refused: list[str] = field(default_factory=list)  # "bucket/key@version: why", the first few


_COUNTER = {EXPIRE_CURRENT: "expired", DROP_VERSION: "noncurrent", DROP_MARKER: "markers"}
_MAX_REFUSALS_KEPT = 20

_BUCKETS = (
    sa.select(buckets.c.name, buckets.c.project_id)
    .where(buckets.c.lifecycle.is_not(None))
    .order_by(buckets.c.name)
)
_BUCKET_RULES = sa.select(buckets.c.lifecycle, buckets.c.versioning).where(
    buckets.c.name == sa.bindparam("bucket")
)
_VERSIONS = (
    objects.c.key,
    objects.c.seq,
    objects.c.stream_id,
    objects.c.size,
    objects.c.created_at,
    objects.c.delete_marker,
    objects.c.tag_digests,
)


def next_run(now: float, day: float) -> float:
    """When the run after ``now`` starts: the first time past ``now`` that is a little
    after a day boundary (a run that ends just after a boundary still runs again for it)."""
    after = min(RUN_AFTER_BOUNDARY, RUN_AFTER_BOUNDARY_FRACTION * day)
    start = math.floor(now / day) * day + after
    return start if start > now else start + day


def _rules(conn: sa.Connection, bucket: str) -> tuple[list[LifecycleRule], str] | None:
    row = conn.execute(_BUCKET_RULES, {"bucket": bucket}).one_or_none()
    if row is None:
        return None
    return [r for r in decode_lifecycle(row.lifecycle) or [] if r.enabled], str(row.versioning)


def _acts_on_objects(rule: LifecycleRule) -> bool:
    return (
        rule.expiration_days is not None
        or rule.expiration_date is not None
        or rule.expired_object_delete_marker
        or rule.noncurrent_days is not None
    )


def plan_key(
    rules: Sequence[LifecycleRule], key: str, versions: Sequence[Any], now: float, day: float
) -> list[Removal]:
    """What the rules remove of one key, given its versions newest first."""
    out: list[Removal] = []
    latest = versions[0]
    if latest.delete_marker:
        if len(versions) == 1:
            for rule in rules:
                if marker_expired(rule, key, latest.created_at, now, day):
                    out.append(Removal(DROP_MARKER, key, latest.stream_id, rule.id))
                    break
    else:
        digests = decode_digests(latest.tag_digests)
        for rule in rules:
            if not matches(rule, key, latest.size, digests):
                continue
            expiry = current_expiry(rule, latest.created_at, day)
            if expiry is not None and now >= expiry:
                out.append(Removal(EXPIRE_CURRENT, key, latest.stream_id, rule.id))
                break
    for i in range(1, len(versions)):
        version, successor = versions[i], versions[i - 1]
        digests = decode_digests(version.tag_digests)
        for rule in rules:
            if matches(rule, key, version.size, digests) and noncurrent_expired(
                rule, successor.created_at, i - 1, now, day
            ):
                out.append(Removal(DROP_VERSION, key, version.stream_id, rule.id))
                break
    return out


def _plan(
    conn: sa.Connection, bucket: str, after: str, now: float, day: float
) -> tuple[list[Removal], str | None]:
    """The removals due among the next :data:`BATCH` keys after ``after``, and the last
    key seen (None: the bucket is done)."""
    found = _rules(conn, bucket)
    if found is None:
        return [], None
    rules = [r for r in found[0] if _acts_on_objects(r)]
    if not rules:
        return [], None  # only AbortIncompleteMultipartUpload: no key to look at
    keys = list(
        conn.execute(
            sa.select(objects.c.key)
            .where(objects.c.bucket == bucket, objects.c.latest == sa.true(), objects.c.key > after)
            .order_by(objects.c.key)
            .limit(BATCH)
        ).scalars()
    )
    if not keys:
        return [], None
    rows = conn.execute(
        sa.select(*_VERSIONS)
        .where(objects.c.bucket == bucket, objects.c.key >= keys[0], objects.c.key <= keys[-1])
        .order_by(objects.c.key, objects.c.seq)
    ).all()
    by_key: dict[str, list[Any]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    removals: list[Removal] = []
    for key, versions in by_key.items():
        removals.extend(plan_key(rules, key, versions, now, day))
    return removals, (keys[-1] if len(keys) == BATCH else None)


def _still_due(conn: sa.Connection, bucket: str, removal: Removal) -> Any:
    """The version to remove if the plan still holds (under the writer's lock), else None."""
    if removal.action == EXPIRE_CURRENT:
        latest = current_stream(conn, bucket, removal.key)
        if latest is None or latest.delete_marker or latest.stream_id != removal.version_id:
            return None  # overwritten or deleted since: the new latest is judged next run
        return latest
    row = find_version(conn, bucket, removal.key, removal.version_id)
    if row is None:
        return None
    if removal.action == DROP_MARKER:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(objects)
            .where(objects.c.bucket == bucket, objects.c.key == removal.key)
        ).scalar_one()
        if count != 1:
            return None  # a new version came: the marker is no longer expired
    return row


def _apply(
    conn: sa.Connection, bucket: str, removals: Sequence[Removal], now: float
) -> list[Removal]:
    """Do the removals still due, in the caller's transaction; those done."""
    row = conn.execute(_BUCKET_RULES, {"bucket": bucket}).one_or_none()
    if row is None:
        return []
    versioning = str(row.versioning)
    done = []
    for removal in removals:
        if _still_due(conn, bucket, removal) is None:
            continue
        if removal.action == EXPIRE_CURRENT and versioning:
            delete_one(conn, now, bucket, versioning, removal.key, "")  # a delete marker
        else:
            delete_one(conn, now, bucket, versioning, removal.key, removal.version_id)
        done.append(removal)
    return done


class LifecycleRules:
    """Applies every bucket's lifecycle rules; :meth:`run` is one day's pass."""

    def __init__(self, m: Metainfo) -> None:
        self.m = m
        self.day = m.config.lifecycle_day_seconds
        self.last: LifecycleRun | None = None  # what the last run did

    def next_delay(self) -> float:
        """Seconds until the next run."""
        now = self.m.clock()
        return next_run(now, self.day) - now

    async def step(self) -> float:
        """One run, then the wait until the next (the loop's step)."""
        self.last = await self.run()
        return max(self.next_delay(), 0.001)

    async def run(self) -> LifecycleRun:
        started = time.monotonic()
        result = LifecycleRun()
        bucket_rows = await self.m.db.read(lambda conn: conn.execute(_BUCKETS).all())
        for bucket, project_id in bucket_rows:
            result.buckets += 1
            await self._objects(bucket, result)
            await self._uploads(bucket, project_id, result)
        if (
            result.expired
            or result.noncurrent
            or result.markers
            or result.uploads
            or result.skipped
        ):
            log.info(
                "lifecycle: %d buckets with rules: %d current versions expired, %d noncurrent "
                "versions and %d delete markers removed, %d uploads aborted, %d refused "
                "(%.1f s)",
                result.buckets,
                result.expired,
                result.noncurrent,
                result.markers,
                result.uploads,
                result.skipped,
                time.monotonic() - started,
            )
        return result

    async def _objects(self, bucket: str, result: LifecycleRun) -> None:
        after = ""
        while True:
            now = self.m.clock()

            def plan(conn: sa.Connection, after: str = after, now: float = now) -> Any:
                return _plan(conn, bucket, after, now, self.day)

            removals, last = await self.m.db.read(plan)
            if removals:
                await self._remove(bucket, removals, now, result)
            if last is None:
                return
            after = last

    async def _remove(
        self, bucket: str, removals: list[Removal], now: float, result: LifecycleRun
    ) -> None:
        try:
            done = await self.m.db.write(lambda conn: _apply(conn, bucket, removals, now))
        except SkymeshError:
            # the deletion path refused one (e.g. a locked version): one per transaction
            done = []
            for removal in removals:

                def one(conn: sa.Connection, r: Removal = removal) -> list[Removal]:
                    return _apply(conn, bucket, [r], now)

                try:
                    done += await self.m.db.write(one)
                except SkymeshError as e:
                    self._refused(result, bucket, removal, e)
        for removal in done:
            counter = _COUNTER[removal.action]
            setattr(result, counter, getattr(result, counter) + 1)

    async def _uploads(self, bucket: str, project_id: str, result: LifecycleRun) -> None:
        """Abort the bucket's incomplete multipart uploads a rule says are due, looking
        at :data:`BATCH` old enough to be (by upload id) per read."""
        now = self.m.clock()
        p = pending_streams.c
        after = ""
        while True:

            def due(conn: sa.Connection, after: str = after) -> tuple[list[Any], str | None]:
                found = _rules(conn, bucket)
                days = [r.abort_days for r in found[0] if r.abort_days] if found else []
                if not days:
                    return [], None
                rows = conn.execute(
                    sa.select(p.key, p.stream_id, p.created_at)
                    .where(
                        p.bucket == bucket,
                        p.kind == MULTIPART,
                        p.stream_id > after,
                        p.expires_at >= now,
                        # none younger than the shortest rule's days can be due
                        p.created_at <= now - min(days) * self.day,
                    )
                    .order_by(p.stream_id)
                    .limit(BATCH)
                ).all()
                rules = found[0] if found else []
                todo = [
                    r
                    for r in rows
                    if any(
                        upload_expired(rule, r.key, r.created_at, now, self.day) for rule in rules
                    )
                ]
                return todo, (rows[-1].stream_id if len(rows) == BATCH else None)

            todo, last = await self.m.db.read(due)
            for row in todo:
                req = UploadRequest(bucket=bucket, key=row.key, upload_id=row.stream_id)
                try:
                    await abort_upload(self.m, project_id, req)
                except SkymeshError as e:
                    if e.code != "NoSuchUpload":  # else completed or aborted since
                        self._refused(
                            result, bucket, Removal("abort-upload", row.key, row.stream_id, ""), e
                        )
                    continue
                result.uploads += 1
            if last is None:
                return
            after = last

    def _refused(
        self, result: LifecycleRun, bucket: str, removal: Removal, e: SkymeshError
    ) -> None:
        result.skipped += 1
        what = f"{bucket}/{removal.key}@{removal.version_id}"
        log.warning(
            "lifecycle: rule %r cannot %s %s: %s (%s); skipped",
            removal.rule_id,
            removal.action,
            what,
            e.message,
            e.code,
        )
        if len(result.refused) < _MAX_REFUSALS_KEPT:
            result.refused.append(f"{what}: {e.code}")
