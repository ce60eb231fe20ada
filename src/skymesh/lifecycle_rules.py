"""S3 lifecycle rules as pure functions: which rule matches a version, and when it expires.

Both roles use this one module: the coordinator's ``lifecycle-rules`` loop decides
what to expire (``coordinator/metainfo/apply_lifecycle.py``), and the gateway tells
a reader when the current version will go (``x-amz-expiration``). Time is counted
in "days" of ``day`` seconds (the coordinator's ``lifecycle_day_seconds``, 86400
unless a test shortens it); like S3, an expiry ``N`` days after ``t`` is rounded up
to the next day boundary (a multiple of ``day`` since the epoch: midnight UTC for
real days).

Tag filters match by digest: object tags are sealed in the object's metadata, so
the gateway stores beside each version a keyed digest of each ``key=value``
(:func:`tag_digest`, keyed by a secret the coordinator never holds), and a rule
carries the digests of its own tags. A rule matches a version holding every one of
its rule's digests.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Collection, Iterable, Mapping
from email.utils import formatdate
from urllib.parse import quote

from skymesh.wire.metainfo import LifecycleRule

DAY = 86400.0  # seconds in a real day: S3's unit of Days

#: printable ASCII but the double quote: kept as is in x-amz-expiration's rule-id
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"%')


def day_boundary(t: float, day: float = DAY) -> float:
    """The first day boundary at or after ``t``."""
    return math.ceil(t / day) * day


def after_days(t: float, days: int, day: float = DAY) -> float:
    """When ``days`` days after ``t`` have passed, rounded up to a day boundary as S3 does."""
    return day_boundary(t + days * day, day)


def tag_digest(secret: bytes, key: str, value: str) -> str:
    """The keyed digest of one tag: HMAC-SHA256 over the length-prefixed key and value
    (so ``a=b`` + ``c`` never equals ``a`` + ``b=c``), hex."""
    k, v = key.encode(), value.encode()
    message = len(k).to_bytes(4, "big") + k + v
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def tag_digests(secret: bytes, tags: Mapping[str, str]) -> list[str]:
    """:func:`tag_digest` of each tag, sorted (their order tells nothing)."""
    return sorted(tag_digest(secret, k, v) for k, v in tags.items())


def encode_digests(digests: Iterable[str]) -> str:
    """Digests as stored beside a version: space-separated."""
    return " ".join(digests)


def decode_digests(text: str | None) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


def matches(rule: LifecycleRule, key: str, size: int, digests: Collection[str]) -> bool:
    """Whether ``rule``'s filter takes the version (key, size, tag digests); its status
    and actions are the caller's."""
    if not key.startswith(rule.prefix):
        return False
    if rule.size_greater_than is not None and not size > rule.size_greater_than:
        return False
    if rule.size_less_than is not None and not size < rule.size_less_than:
        return False
    return all(d in digests for d in rule.tag_digests)


def current_expiry(rule: LifecycleRule, created_at: float, day: float = DAY) -> float | None:
    """When ``rule``'s Expiration takes a current version created at ``created_at``
    (None: it has no Days or Date)."""
    if rule.expiration_date is not None:
        return rule.expiration_date
    if rule.expiration_days is not None:
        return after_days(created_at, rule.expiration_days, day)
    return None


def object_expiration(
    rules: Iterable[LifecycleRule],
    key: str,
    size: int,
    created_at: float,
    digests: Collection[str],
    day: float = DAY,
) -> tuple[float, str] | None:
    """(expiry, rule id) of the enabled rule that expires this current version first."""
    best: tuple[float, str] | None = None
    for rule in rules:
        if not rule.enabled or not matches(rule, key, size, digests):
            continue
        expiry = current_expiry(rule, created_at, day)
        if expiry is not None and (best is None or expiry < best[0]):
            best = (expiry, rule.id)
    return best


def marker_expired(
    rule: LifecycleRule, key: str, created_at: float, now: float, day: float = DAY
) -> bool:
    """Whether ``rule`` removes a delete marker, created at ``created_at``, that is its
    key's only version (an "expired object delete marker"): at once with
    ``ExpiredObjectDeleteMarker``, else when its Expiration would take an object of that
    age (S3 does that cleanup for Days rules). A marker has no tags and no size."""
    if not matches(rule, key, 0, ()):
        return False
    if rule.expired_object_delete_marker:
        return True
    expiry = current_expiry(rule, created_at, day)
    return expiry is not None and now >= expiry


def noncurrent_expired(
    rule: LifecycleRule, noncurrent_since: float, newer_noncurrent: int, now: float, day: float
) -> bool:
    """Whether ``rule``'s NoncurrentVersionExpiration takes a version that became
    noncurrent at ``noncurrent_since`` with ``newer_noncurrent`` noncurrent versions
    newer than it (the rule keeps the ``NewerNoncurrentVersions`` newest)."""
    if rule.noncurrent_days is None:
        return False
    if rule.newer_noncurrent_versions is not None and (
        newer_noncurrent < rule.newer_noncurrent_versions
    ):
        return False
    return now >= after_days(noncurrent_since, rule.noncurrent_days, day)


def upload_expired(
    rule: LifecycleRule, key: str, initiated_at: float, now: float, day: float
) -> bool:
    """Whether ``rule``'s AbortIncompleteMultipartUpload takes an upload of ``key``
    (its filter can only be a prefix: S3 refuses tags there, and an upload has no size)."""
    return (
        rule.enabled
        and rule.abort_days is not None
        and key.startswith(rule.prefix)
        and now >= after_days(initiated_at, rule.abort_days, day)
    )


def upload_abort(
    rules: Iterable[LifecycleRule], key: str, initiated_at: float, day: float = DAY
) -> tuple[float, str] | None:
    """(abort date, rule id) of the enabled AbortIncompleteMultipartUpload rule that
    aborts an upload of ``key`` first (S3's ``x-amz-abort-date`` / ``-rule-id``)."""
    best: tuple[float, str] | None = None
    for rule in rules:
        if not rule.enabled or rule.abort_days is None or not key.startswith(rule.prefix):
            continue
        when = after_days(initiated_at, rule.abort_days, day)
        if best is None or when < best[0]:
            best = (when, rule.id)
    return best


def expiration_header(expiry: float, rule_id: str) -> str:
    """S3's ``x-amz-expiration`` value: ``expiry-date="Fri, 23 Dec 2012 00:00:00 GMT",
    rule-id="..."`` (a rule id's quotes and non-ASCII characters percent-encoded, so
    the header stays one well-formed line)."""
    return (
        f'expiry-date="{formatdate(expiry, usegmt=True)}", '
        f'rule-id="{quote(rule_id, safe=_HEADER_SAFE)}"'
    )
