"""The POST policy rules (``gateway/s3/postpolicy.py``): decoding, conditions, signatures."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.gateway.s3.errors import S3Error
from skymesh.gateway.s3.postpolicy import (
    SizeRange,
    authenticate,
    check_conditions,
    decode_policy,
)
from skymesh.gateway.s3.sigv4 import derive_signing_key, sign_string

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
SECRET = "secret"


def _policy(conditions: list[Any], expiration: str = "2026-12-07T04:00:00.000Z") -> str:
    doc = {"expiration": expiration, "conditions": conditions}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _error(call: Any) -> S3Error:
    with pytest.raises(S3Error) as e:
        call()
    return e.value


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("%%%", "Invalid JSON."),
        (base64.b64encode(b"[1]").decode(), "Invalid JSON."),
        (base64.b64encode(b'{"conditions": []}').decode(), "Policy missing expiration."),
        (
            base64.b64encode(b'{"expiration": "2026-12-07T04:00:00Z"}').decode(),
            "missing conditions",
        ),
        (_policy([], expiration="tomorrow"), "Invalid 'expiration'"),
        (base64.b64encode(b"[" * 15000).decode(), "Invalid JSON."),
    ],
)
def test_invalid_policies(encoded: str, message: str) -> None:
    err = _error(lambda: decode_policy(encoded))
    assert err.code == "InvalidPolicyDocument" and err.status == 400
    assert message in err.message


def test_conditions() -> None:
    policy = decode_policy(
        _policy(
            [
                {"bucket": "b"},
                ["starts-with", "$Key", "user/"],
                ["starts-with", "$content-type", "image/"],
                ["starts-with", "$x-amz-meta-tag", ""],  # anything
                ["content-length-range", 1, 100],
            ]
        )
    )
    fields = {"key": "user/a", "content-type": "image/png, image/jpeg", "x-amz-meta-tag": "z"}
    assert check_conditions(policy, fields, "b", NOW) == SizeRange(1, 100)
    for changed, bucket, shown in [
        ({"key": "other/a"}, "b", '["starts-with", "$Key", "user/"]'),
        ({"content-type": "image/png, text/html"}, "b", '"$content-type"'),
        ({}, "c", '{"bucket": "b"}'),
    ]:
        with pytest.raises(S3Error) as e:
            check_conditions(policy, {**fields, **changed}, bucket, NOW)
        err = e.value
        assert err.code == "AccessDenied" and err.status == 403
        assert err.message.startswith("Invalid according to Policy: Policy Condition failed: ")
        assert shown in err.message
    err = _error(lambda: check_conditions(policy, {**fields, "acl": "private"}, "b", NOW))
    assert err.message == "Invalid according to Policy: Extra input fields: acl"
    # the signature's own fields and x-ignore-* need no condition
    extra = {"policy": "p", "x-amz-signature": "s", "x-ignore-a": "1"}
    assert check_conditions(policy, {**fields, **extra}, "b", NOW) is not None
    late = NOW + timedelta(hours=2)
    err = _error(lambda: check_conditions(policy, fields, "b", late))
    assert err.message == "Invalid according to Policy: Policy expired."
    bad = decode_policy(_policy([["matches", "$key", ".*"]]))
    assert _error(lambda: check_conditions(bad, {}, "b", NOW)).code == "InvalidPolicyDocument"


def test_sigv4_signature() -> None:
    encoded = _policy([])
    signature = sign_string(derive_signing_key(SECRET, "20261207", "us-east-1"), encoded)
    fields = {
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": "AK/20261207/us-east-1/s3/aws4_request",
        "x-amz-date": "20261207T030000Z",
        "x-amz-signature": signature,
    }
    policy = decode_policy(encoded)
    lookup = {"AK": SECRET}.get
    assert authenticate(fields, policy, lookup, sigv2=False) == "AK"
    wrong = {**fields, "x-amz-signature": "0" * 64}
    assert _error(lambda: authenticate(wrong, policy, lookup, sigv2=False)).code == (
        "SignatureDoesNotMatch"
    )
    unknown = {**fields, "x-amz-credential": "XX/20261207/us-east-1/s3/aws4_request"}
    assert _error(lambda: authenticate(unknown, policy, lookup, sigv2=False)).code == (
        "InvalidAccessKeyId"
    )
    partial = {k: v for k, v in fields.items() if k != "x-amz-date"}
    err = _error(lambda: authenticate(partial, policy, lookup, sigv2=False))
    assert err.code == "InvalidArgument" and "x-amz-date" in err.message
    v2 = {"awsaccesskeyid": "AK", "signature": "x"}
    assert _error(lambda: authenticate(v2, policy, lookup, sigv2=False)).code == "AccessDenied"
    assert _error(lambda: authenticate({}, policy, lookup, sigv2=True)).code == "AccessDenied"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    conditions=st.lists(_JSON, max_size=5),
    fields=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
)
def test_any_policy_raises_only_s3_errors(conditions: list[Any], fields: dict[str, str]) -> None:
    try:
        policy = decode_policy(_policy(conditions))
        check_conditions(policy, {k.lower(): v for k, v in fields.items()}, "b", NOW)
    except S3Error:
        pass
