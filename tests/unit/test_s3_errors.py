"""S3 error codes and statuses, and the one mapping from skymesh errors to them."""

from __future__ import annotations

import pytest

from skymesh.errors import (
    BadRequest,
    CodecError,
    ConfigError,
    Conflict,
    Forbidden,
    InsufficientStorage,
    IntegrityError,
    NotFound,
    PreconditionFailed,
    SkymeshError,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from skymesh.gateway.s3.errors import S3_ERRORS, S3Error, from_skymesh_error, s3_error

# AWS's documented statuses for the codes the gateway relies on.
AWS_STATUS = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidObjectState": 403,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "KeyTooLongError": 400,
    "MalformedACLError": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NotImplemented": 501,
    "NotModified": 304,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "ServiceUnavailable": 503,
    "SlowDown": 503,
    "SignatureDoesNotMatch": 403,
    "XAmzContentSHA256Mismatch": 400,
    "AccountProblem": 403,
    "ExpiredToken": 400,
}


@pytest.mark.parametrize(("code", "status"), sorted(AWS_STATUS.items()))
def test_aws_statuses(code: str, status: int) -> None:
    err = s3_error(code)
    assert (err.code, err.status) == (code, status)
    assert err.message == S3_ERRORS[code][1]
    assert isinstance(err, SkymeshError)


def test_every_code_has_a_status_and_message() -> None:
    for code, (status, message) in S3_ERRORS.items():
        assert 300 <= status < 600, code
        assert message and message[0].isupper(), code


def test_fields_and_message() -> None:
    err = s3_error("NoSuchUpload", "gone", UploadId="u1", PartNumber=3)
    assert err.message == "gone" and str(err) == "gone"
    assert err.fields == {"UploadId": "u1", "PartNumber": "3"}
    assert err.headers == {} and err.resource is None
    assert "NoSuchUpload" in repr(err)


def test_unknown_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        s3_error("NoSuchThing")
    custom = S3Error("InsufficientStorage", "full", status=507)
    assert (custom.code, custom.status, custom.message) == ("InsufficientStorage", 507, "full")


def test_headers_and_resource() -> None:
    err = S3Error("SlowDown", headers={"Retry-After": "1"}, resource="/b")
    assert err.headers == {"Retry-After": "1"} and err.resource == "/b"


@pytest.mark.parametrize(
    "code",
    [
        "NoSuchBucket",
        "NoSuchKey",
        "BucketNotEmpty",
        "BucketAlreadyOwnedByYou",
        "BucketAlreadyExists",
        "NoSuchUpload",
        "InvalidPart",
        "InvalidPartOrder",
        "EntityTooSmall",
    ],
)
def test_coordinator_codes_pass_through(code: str) -> None:
    mapped = from_skymesh_error(SkymeshError("detail", code=code, status=400))
    assert (mapped.code, mapped.status, mapped.message) == (code, AWS_STATUS[code], "detail")


def test_coordinator_code_without_message_gets_aws_message() -> None:
    mapped = from_skymesh_error(SkymeshError(code="NoSuchBucket", status=404))
    assert mapped.message == S3_ERRORS["NoSuchBucket"][1]


@pytest.mark.parametrize(
    ("err", "code", "status"),
    [
        (Unavailable("only 3 of 10 nodes answered"), "ServiceUnavailable", 503),
        (InsufficientStorage(), "ServiceUnavailable", 503),
        (BadRequest("bad thing"), "InvalidRequest", 400),
        (NotFound("no such object"), "NoSuchKey", 404),
        (Forbidden("nope"), "AccessDenied", 403),
        (Unauthorized(), "AccessDenied", 403),
        (PreconditionFailed("etag"), "PreconditionFailed", 412),
        (TooLarge("big"), "EntityTooLarge", 400),
        (Conflict("race"), "OperationAborted", 409),
        (IntegrityError("merkle root mismatch on node 7"), "InternalError", 500),
        (CodecError("x"), "InternalError", 500),
        (ConfigError("x"), "InternalError", 500),
        (SkymeshError("db path /var/lib/x"), "InternalError", 500),
        (RuntimeError("boom"), "InternalError", 500),
        (KeyError("k"), "InternalError", 500),
    ],
)
def test_mapping_by_class(err: BaseException, code: str, status: int) -> None:
    mapped = from_skymesh_error(err)
    assert (mapped.code, mapped.status) == (code, status)


def test_internal_details_do_not_leak() -> None:
    for err in (
        IntegrityError("node 7 at 10.0.0.7"),
        RuntimeError("secret path"),
        SkymeshError("x"),
    ):
        assert from_skymesh_error(err).message == S3_ERRORS["InternalError"][1]


def test_own_messages_are_kept_for_client_errors() -> None:
    assert from_skymesh_error(BadRequest("part too small")).message == "part too small"
    assert from_skymesh_error(Unavailable("try later")).message == "try later"
    # a bare error falls back to AWS's text, not our class docstring
    assert from_skymesh_error(NotFound()).message == S3_ERRORS["NoSuchKey"][1]
    assert "storage" in from_skymesh_error(InsufficientStorage()).message


def test_s3_error_passes_through() -> None:
    err = s3_error("InvalidRange")
    assert from_skymesh_error(err) is err
