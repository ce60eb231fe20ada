"""S3 Object Lock in the coordinator: the pure rules, and the transactions over HTTP on
both engines (the coordinator's own API, with the project's key, as any caller could)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from skymesh.coordinator.metainfo.lock_rules import (
    COMPLIANCE,
    DAY,
    GOVERNANCE,
    check_default_retention,
    check_removable,
    check_retention_change,
    new_version_lock,
)
from skymesh.errors import BadRequest, Conflict, Forbidden, SkymeshError
from skymesh.wire import routes
from skymesh.wire.metainfo import (
    BucketRequest,
    CreateBucketRequest,
    DeleteObjectsItem,
    DeleteObjectsRequest,
    ObjectInfo,
    ObjectLock,
    ObjectRequest,
    PutBucketVersioningRequest,
    PutInlineRequest,
    PutObjectLockConfigRequest,
    PutObjectLockRequest,
)
from tests.unit.test_coordinator_support import Harness, garbage, running

NOW = 1_000_000.0

# ---------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("old", "new", "bypass", "allowed"),
    [
        ((COMPLIANCE, NOW + 10), (COMPLIANCE, NOW + 20), False, True),  # lengthen
        ((COMPLIANCE, NOW + 10), (COMPLIANCE, NOW + 10), False, True),  # keep
        ((COMPLIANCE, NOW + 10), (COMPLIANCE, NOW + 5), True, False),  # shorten: never
        ((COMPLIANCE, NOW + 10), (GOVERNANCE, NOW + 20), True, False),  # weaken: never
        ((COMPLIANCE, NOW + 10), ("", 0.0), True, False),  # remove: never
        ((COMPLIANCE, NOW - 1), ("", 0.0), False, True),  # expired: anything goes
        ((GOVERNANCE, NOW + 10), (COMPLIANCE, NOW + 10), False, True),  # stricter
        ((GOVERNANCE, NOW + 10), (GOVERNANCE, NOW + 5), False, False),
        ((GOVERNANCE, NOW + 10), (GOVERNANCE, NOW + 5), True, True),
        ((GOVERNANCE, NOW + 10), ("", 0.0), False, False),
        ((GOVERNANCE, NOW + 10), ("", 0.0), True, True),
        (("", 0.0), (GOVERNANCE, NOW + 1), False, True),
    ],
)
def test_retention_changes(
    old: tuple[str, float], new: tuple[str, float], bypass: bool, allowed: bool
) -> None:
    def change() -> None:
        check_retention_change(*old, *new, NOW, bypass_governance=bypass)

    if allowed:
        change()
    else:
        with pytest.raises(Forbidden) as e:
            change()
        assert e.value.code == "AccessDenied"


def test_retention_must_end_in_the_future_and_name_a_mode() -> None:
    for mode, until in [(GOVERNANCE, NOW), ("WORM", NOW + 1), ("", NOW + 1)]:
        with pytest.raises(BadRequest) as e:
            check_retention_change("", 0.0, mode, until, NOW)
        assert e.value.code == "InvalidArgument"


@pytest.mark.parametrize(
    ("mode", "days", "years", "code"),
    [
        ("", 0, 0, None),
        (GOVERNANCE, 1, 0, None),
        (COMPLIANCE, 0, 3, None),
        (GOVERNANCE, 1, 1, "MalformedXML"),
        (GOVERNANCE, 0, 0, "MalformedXML"),
        ("", 5, 0, "MalformedXML"),
        (GOVERNANCE, -1, 0, "InvalidArgument"),
        ("FOREVER", 1, 0, "InvalidArgument"),
    ],
)
def test_default_retention(mode: str, days: int, years: int, code: str | None) -> None:
    if code is None:
        check_default_retention(mode, days, years)
    else:
        with pytest.raises(BadRequest) as e:
            check_default_retention(mode, days, years)
        assert e.value.code == code


def test_removal_and_new_version_lock() -> None:
    def row(mode: str, until: float, hold: bool = False) -> Any:
        return SimpleNamespace(stream_id="s", lock_mode=mode, retain_until=until, legal_hold=hold)

    check_removable(row("", 0.0), NOW)
    check_removable(row(COMPLIANCE, NOW), NOW)  # retention ends at its until-time
    check_removable(row(GOVERNANCE, NOW + 1), NOW, bypass_governance=True)
    for locked, bypass in [
        (row(COMPLIANCE, NOW + 1), True),
        (row(GOVERNANCE, NOW + 1), False),
        (row("", 0.0, hold=True), True),
    ]:
        with pytest.raises(Forbidden):
            check_removable(locked, NOW, bypass_governance=bypass)

    bucket = SimpleNamespace(object_lock=True, lock_mode=GOVERNANCE, lock_days=2, lock_years=0)
    assert new_version_lock(None, bucket, NOW) == {
        "lock_mode": GOVERNANCE,
        "retain_until": NOW + 2 * DAY,
        "legal_hold": False,
    }
    asked = ObjectLock(mode=COMPLIANCE, retain_until=NOW + 5, legal_hold=True)
    assert new_version_lock(asked, bucket, NOW) == {
        "lock_mode": COMPLIANCE,
        "retain_until": NOW + 5,
        "legal_hold": True,
    }
    plain = SimpleNamespace(object_lock=False, lock_mode="", lock_days=0, lock_years=0)
    assert new_version_lock(None, plain, NOW) == {}
    with pytest.raises(BadRequest) as e:
        new_version_lock(ObjectLock(legal_hold=True), plain, NOW)
    assert e.value.code == "InvalidRequest"
    with pytest.raises(BadRequest):  # mode without a date
        new_version_lock(ObjectLock(mode=GOVERNANCE), bucket, NOW)


# ---------------------------------------------------------------- transactions


async def _put(h: Harness, key: str, lock: ObjectLock | None = None, bucket: str = "vault") -> Any:
    return await h.client.send(
        routes.PUT_INLINE,
        PutInlineRequest(
            bucket=bucket,
            key=key,
            size=0,
            etag="d41d",
            encrypted_key=b"",
            encrypted_metadata=b"",
            lock=lock,
        ),
    )


async def _fails(code: str, call: Any) -> SkymeshError:
    with pytest.raises(SkymeshError) as e:
        await call
    assert e.value.code == code, e.value
    return e.value


async def test_locked_versions_survive_every_removal(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        c, now = h.client, h.clock.now
        await c.send(routes.CREATE_BUCKET, CreateBucketRequest(name="vault", object_lock=True))
        config = await c.send(routes.BUCKET_CONFIG, BucketRequest(name="vault"))
        assert (config.object_lock, config.versioning) == (True, "Enabled")
        err = await _fails(
            "InvalidBucketState",
            c.send(
                routes.PUT_BUCKET_VERSIONING,
                PutBucketVersioningRequest(name="vault", status="Suspended"),
            ),
        )
        assert isinstance(err, Conflict)

        kept = await _put(h, "k", ObjectLock(mode=COMPLIANCE, retain_until=now + 100))
        gov = await _put(h, "g", ObjectLock(mode=GOVERNANCE, retain_until=now + 100))
        held = await _put(h, "h", ObjectLock(legal_hold=True))
        assert (kept.lock_mode, kept.retain_until) == (COMPLIANCE, now + 100)
        assert held.legal_hold and not held.lock_mode

        def delete(key: str, version: str, bypass: bool = False) -> Any:
            return c.send(
                routes.DELETE_OBJECT,
                ObjectRequest(
                    bucket="vault", key=key, version_id=version, bypass_governance=bypass
                ),
            )

        # by id: refused, bypass or not (COMPLIANCE, legal hold), or without bypass (GOVERNANCE)
        err = await _fails("AccessDenied", delete("k", kept.version_id, bypass=True))
        assert isinstance(err, Forbidden)
        await _fails("AccessDenied", delete("g", gov.version_id))
        await _fails("AccessDenied", delete("h", held.version_id, bypass=True))
        batch = await c.send(
            routes.DELETE_OBJECTS,
            DeleteObjectsRequest(
                bucket="vault",
                objects=[
                    DeleteObjectsItem(key="k", version_id=kept.version_id),
                    DeleteObjectsItem(key="g", version_id=gov.version_id),
                ],
                bypass_governance=True,
            ),
        )
        assert batch.results[0].error_code == "AccessDenied"
        assert batch.results[1].outcome is not None and batch.results[1].outcome.deleted

        # a delete marker on top is allowed; an overwrite stacks a version
        marker = await delete("k", "")
        assert marker.delete_marker
        await _put(h, "k")
        # shortening or weakening the retention: refused
        for mode, until in [(COMPLIANCE, now + 50), (GOVERNANCE, now + 200), ("", 0.0)]:
            await _fails(
                "AccessDenied",
                c.send(
                    routes.PUT_OBJECT_LOCK,
                    PutObjectLockRequest(
                        bucket="vault",
                        key="k",
                        version_id=kept.version_id,
                        retention=ObjectLock(mode=mode, retain_until=until),
                        bypass_governance=True,
                    ),
                ),
            )
        longer = await c.send(
            routes.PUT_OBJECT_LOCK,
            PutObjectLockRequest(
                bucket="vault",
                key="k",
                version_id=kept.version_id,
                retention=ObjectLock(mode=COMPLIANCE, retain_until=now + 150),
            ),
        )
        assert longer.retain_until == now + 150
        await _fails("BucketNotEmpty", c.send(routes.DELETE_BUCKET, BucketRequest(name="vault")))

        # the legal hold lifted, and the retention over by the coordinator's clock: gone
        await c.send(
            routes.PUT_OBJECT_LOCK,
            PutObjectLockRequest(
                bucket="vault", key="h", version_id=held.version_id, legal_hold=False
            ),
        )
        await delete("h", held.version_id)
        await _fails("AccessDenied", delete("k", kept.version_id))
        h.clock.advance(151)
        gone = await delete("k", kept.version_id)
        assert gone.deleted


async def test_default_retention_and_enabling_lock(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        c = h.client
        await h.create_bucket("plain")
        await _fails("InvalidRequest", _put(h, "x", ObjectLock(legal_hold=True), bucket="plain"))
        await _put(h, "x", bucket="plain")
        await _fails(
            "InvalidRequest",
            c.send(
                routes.PUT_OBJECT_LOCK,
                PutObjectLockRequest(bucket="plain", key="x", legal_hold=True),
            ),
        )
        lock_config = PutObjectLockConfigRequest(name="plain", mode=GOVERNANCE, days=1)
        await _fails("InvalidBucketState", c.send(routes.PUT_OBJECT_LOCK_CONFIG, lock_config))
        await c.send(
            routes.PUT_BUCKET_VERSIONING, PutBucketVersioningRequest(name="plain", status="Enabled")
        )
        config = await c.send(routes.PUT_OBJECT_LOCK_CONFIG, lock_config)
        assert (config.object_lock, config.lock_mode, config.lock_days) == (True, GOVERNANCE, 1)
        info: ObjectInfo = await _put(h, "y", bucket="plain")
        assert (info.lock_mode, info.retain_until) == (GOVERNANCE, h.clock.now + DAY)
        head = await c.send(routes.HEAD_OBJECT, ObjectRequest(bucket="plain", key="y"))
        assert (head.lock_mode, head.retain_until) == (GOVERNANCE, h.clock.now + DAY)
        # the version written before the lock has none, and may still go
        older = await c.send(
            routes.DELETE_OBJECT, ObjectRequest(bucket="plain", key="x", version_id="null")
        )
        assert older.deleted


async def test_locked_pieces_never_become_garbage(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.add_nodes(("eu", "us", "ap"), 2)
        await h.client.send(
            routes.CREATE_BUCKET, CreateBucketRequest(name="vault", object_lock=True)
        )
        await h.client.send(
            routes.PUT_OBJECT_LOCK_CONFIG,
            PutObjectLockConfigRequest(name="vault", mode=COMPLIANCE, days=1),
        )
        info = await h.upload("vault", "big", [100_000])
        assert info.lock_mode == COMPLIANCE
        await _fails(
            "AccessDenied",
            h.client.send(
                routes.DELETE_OBJECT,
                ObjectRequest(bucket="vault", key="big", version_id=info.version_id),
            ),
        )
        assert await garbage(h) == set()
