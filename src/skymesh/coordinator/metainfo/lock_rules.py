"""S3 Object Lock rules, pure: who may remove a version, change its retention, and
which lock a new version gets.

A version is *locked* while it has a legal hold or a retention whose until-time is
after ``now`` (the coordinator's clock). A locked version is never removed: the
transactions that remove versions (``common.drop_version``, used by deletes by id,
null-version replacement and whatever else forgets a version) call
:func:`check_removable` first, so every caller (the S3 gateway, the coordinator's
own API, lifecycle expiration, admin tooling) meets the same refusal. GOVERNANCE
retention yields to ``bypass_governance`` (S3's x-amz-bypass-governance-retention,
asked by the bucket's project); COMPLIANCE retention and legal holds yield to no one.
"""

from __future__ import annotations

from typing import Any

from skymesh.errors import BadRequest, Forbidden
from skymesh.wire.metainfo import ObjectLock

GOVERNANCE = "GOVERNANCE"
COMPLIANCE = "COMPLIANCE"
MODES = (GOVERNANCE, COMPLIANCE)
DAY = 86400.0
YEAR = 365 * DAY  # a default retention of N years is N x 365 days
MAX_DAYS = 36500  # a sanity cap on default retention: 100 years
MAX_YEARS = 100

NO_LOCK_CONFIGURATION = "Bucket is missing Object Lock Configuration"


class VersionLocked(Forbidden):
    """The version is under retention or legal hold (S3 answers AccessDenied)."""

    code = "AccessDenied"


def missing_lock_configuration() -> BadRequest:
    return BadRequest(NO_LOCK_CONFIGURATION, code="InvalidRequest")


def check_removable(row: Any, now: float, *, bypass_governance: bool = False) -> None:
    """Refuse to remove ``row`` (an objects row) while it is locked."""
    if row.legal_hold:
        raise VersionLocked(f"version {row.stream_id} is under legal hold")
    if row.lock_mode and row.retain_until > now:
        if row.lock_mode == GOVERNANCE and bypass_governance:
            return
        raise VersionLocked(
            f"version {row.stream_id} is under {row.lock_mode} retention"
            f" until {row.retain_until:.0f} (unix seconds)"
        )


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise BadRequest(
            f"the Object Lock mode must be one of {', '.join(MODES)}", code="InvalidArgument"
        )


def check_retain_until(until: float, now: float) -> None:
    if until <= now:
        raise BadRequest("The retain until date must be in the future", code="InvalidArgument")


def check_default_retention(mode: str, days: int, years: int) -> None:
    """A bucket's default retention: none at all, or a mode and exactly one positive period."""
    if not mode:
        if days or years:
            raise BadRequest("a default retention period needs a mode", code="MalformedXML")
        return
    check_mode(mode)
    if bool(days) == bool(years):
        raise BadRequest(
            "a default retention has exactly one of Days and Years", code="MalformedXML"
        )
    if not (0 < days <= MAX_DAYS or 0 < years <= MAX_YEARS):
        raise BadRequest(f"Days must be 1-{MAX_DAYS}, Years 1-{MAX_YEARS}", code="InvalidArgument")


def new_version_lock(requested: ObjectLock | None, bucket: Any, now: float) -> dict[str, Any]:
    """The lock columns of a new version: what the write asked for, else the bucket's
    default retention (``bucket`` has object_lock, lock_mode, lock_days, lock_years)."""
    asked = requested is not None and (
        requested.mode or requested.retain_until or requested.legal_hold
    )
    if not bucket.object_lock:
        if asked:
            raise missing_lock_configuration()
        return {}
    mode, until = "", 0.0
    if requested is not None and (requested.mode or requested.retain_until):
        if not (requested.mode and requested.retain_until):
            raise BadRequest(
                "x-amz-object-lock-mode and x-amz-object-lock-retain-until-date"
                " must both be supplied",
                code="InvalidArgument",
            )
        check_mode(requested.mode)
        check_retain_until(requested.retain_until, now)
        mode, until = requested.mode, requested.retain_until
    elif bucket.lock_mode:
        mode = bucket.lock_mode
        until = now + bucket.lock_days * DAY + bucket.lock_years * YEAR
    return {
        "lock_mode": mode,
        "retain_until": until,
        "legal_hold": bool(requested is not None and requested.legal_hold),
    }


def check_retention_change(
    old_mode: str,
    old_until: float,
    new_mode: str,
    new_until: float,
    now: float,
    *,
    bypass_governance: bool = False,
) -> None:
    """May a version's retention go from (old_mode, old_until) to (new_mode, new_until)?

    A new retention must end in the future. A retention in force may be kept,
    lengthened or made COMPLIANCE; shortening, weakening or removing it needs
    GOVERNANCE and ``bypass_governance``, and is never allowed in COMPLIANCE.
    """
    if new_mode or new_until:
        check_mode(new_mode)
        check_retain_until(new_until, now)
    if not old_mode or old_until <= now:
        return
    stricter = new_mode in MODES and new_until >= old_until
    if old_mode == COMPLIANCE:
        if stricter and new_mode == COMPLIANCE:
            return
        raise VersionLocked(
            "a COMPLIANCE retention can be neither shortened nor weakened, by anyone"
        )
    if stricter or bypass_governance:
        return
    raise VersionLocked(
        "shortening or removing a GOVERNANCE retention needs x-amz-bypass-governance-retention"
    )
