"""S3 Object Lock through boto3: bucket configuration, retention, legal hold, lock
headers on writes and reads, governance bypass, and S3's error codes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client


def _error(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _in(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def _locked_bucket(s3: S3Client) -> str:
    name = f"lock-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def test_bucket_configuration(s3: S3Client) -> None:
    bucket = _locked_bucket(s3)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    got = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert got == {"ObjectLockEnabled": "Enabled"}
    assert _error(
        lambda: s3.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}
        )
    ) == ("InvalidBucketState", 409)
    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}
    s3.put_object_lock_configuration(
        Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": rule}
    )
    got = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert got == {"ObjectLockEnabled": "Enabled", "Rule": rule}
    # a new version that names no retention gets the default
    s3.put_object(Bucket=bucket, Key="d", Body=b"default")
    head = s3.head_object(Bucket=bucket, Key="d")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert abs(head["ObjectLockRetainUntilDate"] - _in(2)) < timedelta(minutes=1)

    for bad, code in [
        ({"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}}, "MalformedXML"),
        ({"DefaultRetention": {"Mode": "GOVERNANCE"}}, "MalformedXML"),
        ({"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 0}}, "InvalidArgument"),
    ]:
        config = {"ObjectLockEnabled": "Enabled", "Rule": bad}
        assert _error(
            lambda c=config: s3.put_object_lock_configuration(
                Bucket=bucket, ObjectLockConfiguration=c
            )
        ) == (code, 400)

    # a bucket without lock: none to get; enabling it needs versioning Enabled
    plain = f"plain-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=plain)
    assert _error(lambda: s3.get_object_lock_configuration(Bucket=plain)) == (
        "ObjectLockConfigurationNotFoundError",
        404,
    )
    enable = {"ObjectLockEnabled": "Enabled"}
    assert _error(
        lambda: s3.put_object_lock_configuration(Bucket=plain, ObjectLockConfiguration=enable)
    ) == ("InvalidBucketState", 409)
    assert _error(
        lambda: s3.put_object(
            Bucket=plain,
            Key="x",
            Body=b"x",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=_in(1),
        )
    ) == ("InvalidRequest", 400)
    s3.put_object(Bucket=plain, Key="x", Body=b"x")
    assert _error(lambda: s3.get_object_retention(Bucket=plain, Key="x")) == (
        "InvalidRequest",
        400,
    )
    s3.put_bucket_versioning(Bucket=plain, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=plain, ObjectLockConfiguration=enable)
    assert s3.get_object_lock_configuration(Bucket=plain)["ObjectLockConfiguration"] == enable


def test_retention_and_legal_hold(s3: S3Client) -> None:
    bucket = _locked_bucket(s3)
    until = _in(1)
    v1 = s3.put_object(
        Bucket=bucket,
        Key="k",
        Body=b"kept",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
        ObjectLockLegalHoldStatus="ON",
    )["VersionId"]
    got = s3.get_object(Bucket=bucket, Key="k", VersionId=v1)
    assert (got["ObjectLockMode"], got["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    assert got["ObjectLockLegalHoldStatus"] == "ON"
    retention = s3.get_object_retention(Bucket=bucket, Key="k", VersionId=v1)["Retention"]
    assert retention == {"Mode": "COMPLIANCE", "RetainUntilDate": until}
    assert s3.get_object_legal_hold(Bucket=bucket, Key="k")["LegalHold"] == {"Status": "ON"}

    # no delete by id, bypass or not; a delete marker on top is fine
    for bypass in (False, True):
        assert _error(
            lambda b=bypass: s3.delete_object(
                Bucket=bucket, Key="k", VersionId=v1, BypassGovernanceRetention=b
            )
        ) == ("AccessDenied", 403)
    s3.put_object_legal_hold(Bucket=bucket, Key="k", VersionId=v1, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=bucket, Key="k")["LegalHold"] == {"Status": "OFF"}
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": v1}]})
    assert [e["Code"] for e in result["Errors"]] == ["AccessDenied"]
    assert s3.delete_object(Bucket=bucket, Key="k")["DeleteMarker"] is True
    # COMPLIANCE: lengthen yes, shorten or weaken no
    later = _in(2)
    s3.put_object_retention(
        Bucket=bucket,
        Key="k",
        VersionId=v1,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later},
    )
    for shorter in (
        {"Mode": "COMPLIANCE", "RetainUntilDate": _in(0.5)},
        {"Mode": "GOVERNANCE", "RetainUntilDate": _in(3)},
    ):
        assert _error(
            lambda r=shorter: s3.put_object_retention(
                Bucket=bucket, Key="k", VersionId=v1, Retention=r, BypassGovernanceRetention=True
            )
        ) == ("AccessDenied", 403)
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"kept"
    assert _error(lambda: s3.delete_bucket(Bucket=bucket)) == ("BucketNotEmpty", 409)

    # lock headers must come in pairs, dated in the future
    for extra in (
        {"ObjectLockMode": "GOVERNANCE"},
        {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": _in(-1)},
    ):
        assert _error(lambda e=extra: s3.put_object(Bucket=bucket, Key="bad", Body=b"x", **e)) == (
            "InvalidArgument",
            400,
        )


def test_governance_yields_to_the_bypass(s3: S3Client) -> None:
    bucket = _locked_bucket(s3)
    ids = [
        s3.put_object(
            Bucket=bucket,
            Key=f"g{i}",
            Body=b"g",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=_in(1),
        )["VersionId"]
        for i in range(3)
    ]
    assert _error(lambda: s3.delete_object(Bucket=bucket, Key="g0", VersionId=ids[0])) == (
        "AccessDenied",
        403,
    )
    s3.delete_object(Bucket=bucket, Key="g0", VersionId=ids[0], BypassGovernanceRetention=True)
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "g1", "VersionId": ids[1]}]},
        BypassGovernanceRetention=True,
    )
    assert [d["VersionId"] for d in result["Deleted"]] == [ids[1]]
    # shortening needs the bypass too, then the version goes
    sooner = {"Mode": "GOVERNANCE", "RetainUntilDate": _in(0.5)}
    assert _error(
        lambda: s3.put_object_retention(Bucket=bucket, Key="g2", VersionId=ids[2], Retention=sooner)
    ) == ("AccessDenied", 403)
    s3.put_object_retention(
        Bucket=bucket, Key="g2", VersionId=ids[2], Retention={}, BypassGovernanceRetention=True
    )
    assert _error(lambda: s3.get_object_retention(Bucket=bucket, Key="g2")) == (
        "NoSuchObjectLockConfiguration",
        404,
    )
    s3.delete_object(Bucket=bucket, Key="g2", VersionId=ids[2])
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)


def test_multipart_and_copy_take_the_lock_headers(s3: S3Client) -> None:
    bucket = _locked_bucket(s3)
    until = _in(1)
    up = s3.create_multipart_upload(
        Bucket=bucket, Key="mp", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )
    part = s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p" * 1000
    )
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    head = s3.head_object(Bucket=bucket, Key="mp")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    assert _error(
        lambda: s3.delete_object(Bucket=bucket, Key="mp", VersionId=done["VersionId"])
    ) == ("AccessDenied", 403)
    # a copy does not take its source's lock
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "mp"})
    assert "ObjectLockMode" not in s3.head_object(Bucket=bucket, Key="copy")
    s3.copy_object(
        Bucket=bucket,
        Key="held",
        CopySource={"Bucket": bucket, "Key": "mp"},
        ObjectLockLegalHoldStatus="ON",
    )
    assert s3.head_object(Bucket=bucket, Key="held")["ObjectLockLegalHoldStatus"] == "ON"


def test_put_with_lock_needs_an_integrity_check(planet: PlanetThread) -> None:
    """S3 refuses lock headers on a PutObject without Content-MD5 or a checksum."""
    s3 = planet.boto3(request_checksum_calculation="when_required")
    bucket = _locked_bucket(s3)
    lock = {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": _in(1)}
    assert _error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", **lock)) == (
        "InvalidRequest",
        400,
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ContentMD5="ndTkYSaMgDT1yFZOFVxnpg==", **lock)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")  # no lock headers: no need
