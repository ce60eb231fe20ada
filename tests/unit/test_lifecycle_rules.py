"""S3 lifecycle rules: matching, expiry dates, the header, the loop's plan, and the XML checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from skymesh.client.client import StoredObject
from skymesh.client.objectmeta import ObjectMeta
from skymesh.config import CoordinatorConfig, load_config
from skymesh.coordinator.metainfo.apply_lifecycle import (
    DROP_MARKER,
    DROP_VERSION,
    EXPIRE_CURRENT,
    next_run,
    plan_key,
)
from skymesh.errors import ConfigError
from skymesh.gateway.s3.errors import S3Error
from skymesh.gateway.s3.handlers.lifecycle import EXPIRATION_HEADER, expiration_headers
from skymesh.gateway.s3.lifecycle import lifecycle_xml, parse_lifecycle
from skymesh.lifecycle_rules import (
    DAY,
    after_days,
    day_boundary,
    expiration_header,
    matches,
    noncurrent_expired,
    object_expiration,
    tag_digest,
    tag_digests,
    upload_expired,
)
from skymesh.wire.metainfo import BucketConfig, LifecycleRule, ObjectInfo, Tag

T0 = datetime(2012, 12, 20, 15, 30, tzinfo=UTC).timestamp()


def _rule(**fields: Any) -> LifecycleRule:
    return LifecycleRule(**{"id": "r", "enabled": True, **fields})


def test_days_round_up_to_the_next_day_boundary() -> None:
    assert day_boundary(T0) == datetime(2012, 12, 21, tzinfo=UTC).timestamp()
    assert (
        day_boundary(datetime(2012, 12, 21, tzinfo=UTC).timestamp())
        == datetime(2012, 12, 21, tzinfo=UTC).timestamp()
    )  # a boundary itself
    # created 20 Dec 15:30 with Days 3: 23 Dec 15:30, rounded up to 24 Dec 00:00
    assert after_days(T0, 3) == datetime(2012, 12, 24, tzinfo=UTC).timestamp()
    # a short "day" (the coordinator's lifecycle_day_seconds) scales everything
    assert after_days(10.2, 2, day=1.0) == 13.0
    assert after_days(10.0, 2, day=1.0) == 12.0


def test_filters_match_prefix_size_and_every_tag() -> None:
    secret = b"s" * 32
    d = tag_digests(secret, {"a": "1", "b": "2"})
    rule = _rule(
        prefix="logs/",
        size_greater_than=10,
        size_less_than=100,
        tags=[Tag(key="a", value="1")],
        tag_digests=[tag_digest(secret, "a", "1")],
    )
    assert matches(rule, "logs/x", 50, d)
    assert not matches(rule, "other/x", 50, d)
    assert not matches(rule, "logs/x", 10, d) and not matches(rule, "logs/x", 100, d)
    assert not matches(rule, "logs/x", 50, tag_digests(secret, {"a": "2"}))
    assert not matches(rule, "logs/x", 50, tag_digests(b"t" * 32, {"a": "1"}))  # other key
    assert matches(_rule(), "anything", 0, [])  # an empty filter takes everything
    # the key and value are framed: "a=b" + "c" is not "a" + "b=c"
    assert tag_digest(secret, "a=b", "c") != tag_digest(secret, "a", "b=c")


def test_object_expiration_is_the_earliest_enabled_matching_rule() -> None:
    date = datetime(2012, 12, 23, tzinfo=UTC).timestamp()
    rules = [
        _rule(id="late", expiration_days=30),
        _rule(id="dated", prefix="a", expiration_date=date),
        _rule(id="off", enabled=False, expiration_days=1),
        _rule(id="noncurrent", noncurrent_days=1),
    ]
    assert object_expiration(rules, "a/k", 1, T0, []) == (date, "dated")
    assert object_expiration(rules, "b/k", 1, T0, []) == (after_days(T0, 30), "late")
    assert object_expiration(rules[2:], "a/k", 1, T0, []) is None
    assert (
        expiration_header(date, "dated")
        == 'expiry-date="Sun, 23 Dec 2012 00:00:00 GMT", rule-id="dated"'
    )
    assert expiration_header(date, 'a"b\u00e9').endswith('rule-id="a%22b%C3%A9"')


def test_noncurrent_and_upload_expiry() -> None:
    rule = _rule(noncurrent_days=2, newer_noncurrent_versions=1)
    due = after_days(T0, 2)
    assert not noncurrent_expired(rule, T0, 1, due - 1, DAY)
    assert noncurrent_expired(rule, T0, 1, due, DAY)
    assert not noncurrent_expired(rule, T0, 0, due, DAY)  # the newest noncurrent one is kept
    abort = _rule(prefix="up/", abort_days=1)
    assert upload_expired(abort, "up/x", T0, after_days(T0, 1), DAY)
    assert not upload_expired(abort, "up/x", T0, after_days(T0, 1) - 1, DAY)
    assert not upload_expired(abort, "other", T0, after_days(T0, 1), DAY)


def _version(sid: str, created: float, marker: bool = False, size: int = 5) -> Any:
    return SimpleNamespace(
        stream_id=sid, created_at=created, delete_marker=marker, size=size, tag_digests=None
    )


def test_the_loop_plans_what_s3_removes() -> None:
    day = 1.0
    rules = [
        _rule(id="cur", prefix="k", expiration_days=1),
        _rule(id="nc", noncurrent_days=1, newer_noncurrent_versions=1),
        _rule(id="dm", expired_object_delete_marker=True),
    ]
    versions = [_version("v3", 30.5), _version("v2", 20.5), _version("v1", 10.5)]
    plan = plan_key(rules, "k", versions, now=40.0, day=day)
    # v3 is current and past its day; v2 is the one noncurrent version kept; v1 goes
    assert [(r.action, r.version_id, r.rule_id) for r in plan] == [
        (EXPIRE_CURRENT, "v3", "cur"),
        (DROP_VERSION, "v1", "nc"),
    ]
    assert plan_key(rules, "k", versions, now=31.9, day=day)[0].action == DROP_VERSION
    lone = [_version("m", 1.0, marker=True)]
    assert [r.action for r in plan_key(rules, "x", lone, 2.0, day)] == [DROP_MARKER]
    # a marker over a version is not expired
    assert plan_key(rules[2:], "x", [*lone, _version("v", 0.5)], 2.0, day) == []
    # an Expiration's Days also removes a lone marker, once the marker is that old
    days = [_rule(id="cur", expiration_days=2)]
    assert plan_key(days, "x", lone, 2.9, day) == []
    assert [(r.action, r.rule_id) for r in plan_key(days, "x", lone, 3.0, day)] == [
        (DROP_MARKER, "cur")
    ]
    tagged = [_rule(expiration_days=1, tag_digests=["d" * 64])]
    assert plan_key(tagged, "x", lone, 9.0, day) == []  # a marker has no tags


def _body(*rules: str) -> bytes:
    return ("<LifecycleConfiguration>" + "".join(rules) + "</LifecycleConfiguration>").encode()


def _rule_xml(inner: str, status: str = "Enabled", scope: str = "<Filter></Filter>") -> str:
    return f"<Rule>{scope}<Status>{status}</Status>{inner}</Rule>"


DAYS_1 = "<Expiration><Days>1</Days></Expiration>"


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (_body(), "MalformedXML", None),
        (_body(_rule_xml(DAYS_1, status="On")), "MalformedXML", None),
        (_body(_rule_xml(DAYS_1, scope="")), "MalformedXML", None),
        (
            _body(_rule_xml("<Expiration><Days>0</Days></Expiration>")),
            "InvalidArgument",
            "'Days' for Expiration action must be a positive integer",
        ),
        (
            _body(_rule_xml("<Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration>")),
            "InvalidArgument",
            "'Date' must be at midnight GMT",
        ),
        (
            _body(
                _rule_xml(
                    "<Expiration><Days>3</Days><ExpiredObjectDeleteMarker>true"
                    "</ExpiredObjectDeleteMarker></Expiration>"
                )
            ),
            "MalformedXML",
            None,
        ),
        (
            _body(
                _rule_xml(
                    "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
                    "</Expiration>",
                    scope="<Filter><Tag><Key>a</Key><Value>b</Value></Tag></Filter>",
                )
            ),
            "InvalidRequest",
            "ExpiredObjectDeleteMarker cannot be specified with Tags.",
        ),
        (
            _body(
                _rule_xml(
                    "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1"
                    "</DaysAfterInitiation></AbortIncompleteMultipartUpload>",
                    scope="<Filter><Tag><Key>a</Key><Value>b</Value></Tag></Filter>",
                )
            ),
            "InvalidRequest",
            "AbortIncompleteMultipartUpload cannot be specified with Tags.",
        ),
        (
            _body(_rule_xml("", scope="<ID>x</ID><Filter></Filter>")),
            "InvalidRequest",
            "At least one action needs to be specified in a rule",
        ),
        (
            _body(*[_rule_xml(DAYS_1, scope="<ID>same</ID><Filter></Filter>")] * 2),
            "InvalidArgument",
            "Rule ID must be unique. Found same ID for more than one rule",
        ),
        (
            _body(_rule_xml(DAYS_1, scope=f"<ID>{'i' * 256}</ID><Filter></Filter>")),
            "InvalidArgument",
            "ID length should not exceed allowed limit of 255",
        ),
        (_body(*[_rule_xml(DAYS_1)] * 1001), "InvalidRequest", None),
        (
            _body(_rule_xml(DAYS_1), _rule_xml(DAYS_1, scope="<Prefix>a</Prefix>")),
            "InvalidRequest",
            None,
        ),
        (
            _body(
                _rule_xml(
                    DAYS_1,
                    scope="<Filter><Prefix>a</Prefix><Tag><Key>k</Key>"
                    "<Value>v</Value></Tag></Filter>",
                )
            ),
            "MalformedXML",
            None,
        ),
        (
            _body(
                _rule_xml(DAYS_1, scope="<Prefix>a</Prefix>"),
                _rule_xml(DAYS_1, scope="<Prefix>ab</Prefix>"),
            ),
            "InvalidRequest",
            "Found overlapping prefixes 'a' and 'ab' for same action type 'Expiration'",
        ),
        (
            _body(
                _rule_xml(
                    "<Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition>"
                )
            ),
            "InvalidStorageClass",
            None,
        ),
    ],
)
def test_configurations_s3_refuses(body: bytes, code: str, message: str | None) -> None:
    with pytest.raises(S3Error) as e:
        parse_lifecycle(body)
    assert e.value.code == code
    if message is not None:
        assert e.value.message == message


def test_parse_and_render_round_trip() -> None:
    body = _body(
        _rule_xml(
            "<Expiration><Date>2030-01-01T00:00:00.000Z</Date></Expiration>"
            "<NoncurrentVersionExpiration><NoncurrentDays>3</NoncurrentDays>"
            "<NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration>",
            scope="<ID>a</ID><Filter><And><Prefix>p/</Prefix><Tag><Key>k</Key><Value>v</Value>"
            "</Tag><ObjectSizeLessThan>9</ObjectSizeLessThan></And></Filter>",
        ),
        _rule_xml(DAYS_1, status="Disabled", scope="<Filter><Prefix>q/</Prefix></Filter>"),
    )
    rules = parse_lifecycle(body)
    a, b = rules
    assert (a.id, a.prefix, a.tags, a.size_less_than, a.filter_and) == (
        "a",
        "p/",
        [Tag(key="k", value="v")],
        9,
        True,
    )
    assert a.expiration_date == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert (a.noncurrent_days, a.newer_noncurrent_versions) == (3, 2)
    assert b.id and not b.enabled and b.expiration_days == 1  # an ID was made for it
    assert parse_lifecycle(lifecycle_xml(rules)) == rules


def test_the_day_length_is_a_coordinator_setting(tmp_path: Path) -> None:
    assert CoordinatorConfig().lifecycle_day_seconds == DAY
    path = tmp_path / "c.toml"
    path.write_text("[coordinator]\nlifecycle_day_seconds = 2.5\n")
    assert load_config(CoordinatorConfig, path, environ={}).lifecycle_day_seconds == 2.5
    env = {"SKYMESH_COORDINATOR_LIFECYCLE_DAY_SECONDS": "1"}
    assert load_config(CoordinatorConfig, None, environ=env).lifecycle_day_seconds == 1.0
    with pytest.raises(ConfigError):
        CoordinatorConfig(lifecycle_day_seconds=0)


def test_a_run_starts_a_minute_after_each_day_boundary() -> None:
    midnight = datetime(2012, 12, 21, tzinfo=UTC).timestamp()
    assert next_run(midnight - 3600, DAY) == midnight + 60
    # a run that ended just past midnight still runs for that day
    assert next_run(midnight + 1, DAY) == midnight + 60
    assert next_run(midnight + 60, DAY) == midnight + DAY + 60
    assert next_run(10.01, 1.0) == 10.05 and next_run(10.05, 1.0) == 11.05  # a short day


async def test_the_expiration_header_reads_the_config_authorization_read() -> None:
    """x-amz-expiration costs no coordinator call of its own: it reads the bucket's
    configuration that authorization took from the bucket directory."""
    rules = [_rule(expiration_days=1)]
    config = BucketConfig(name="b", lifecycle=rules, lifecycle_day=DAY)

    async def no_call(bucket: str) -> BucketConfig:
        raise AssertionError("the header must not ask the coordinator")

    client = SimpleNamespace(metainfo=SimpleNamespace(bucket_config=no_call))
    req: Any = SimpleNamespace(
        access=SimpleNamespace(config=config),
        ctx=SimpleNamespace(directory=None),
        client=client,
        bucket="b",
    )
    info = ObjectInfo(
        bucket="b",
        key="k",
        version_id="v",
        size=1,
        etag="e",
        created_at=T0,
        encrypted_key=b"",
        encrypted_metadata=b"",
        segment_count=0,
    )
    headers = await expiration_headers(req, StoredObject(info, ObjectMeta()))
    assert headers == {EXPIRATION_HEADER: expiration_header(after_days(T0, 1), "r")}
    # no rules in the configuration: no header
    req.access = SimpleNamespace(config=BucketConfig(name="b"))
    assert await expiration_headers(req, StoredObject(info, ObjectMeta())) == {}
