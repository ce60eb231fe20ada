"""S3's POST policy for browser form uploads (PostObject), as pure functions.

A form upload carries its own authorization: a base64 JSON ``policy`` (an
``expiration`` and a list of ``conditions`` on the form's fields) and a
signature of that base64 text, with the SigV4 signing key (``x-amz-algorithm``,
``x-amz-credential``, ``x-amz-date``, ``x-amz-signature``) or, where SigV2 is
allowed, HMAC-SHA1 under the secret (``AWSAccessKeyId``, ``signature``). The
policy is the whole of what the signer allowed, so every form field but the
policy, the signature, the file and ``x-ignore-*`` must be named by a condition
(S3's "Extra input fields"). No I/O here: the handler reads the form
(``handlers/post_object.py``).

Field names compare case-insensitively; the ``fields`` these functions take
are keyed by lower-case name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.gateway.s3.sigv4 import (
    ALGORITHM,
    CredentialLookup,
    _parse_credential,
    derive_signing_key,
    sign_string,
    signatures_equal,
)

#: S3's limit on the form's bytes before the file field
MAX_PRE_DATA = 20480
#: fields no condition needs to name: the signature covers the policy, not itself
UNCOVERED = frozenset({"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"})
_V4_FIELDS = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature")


@dataclass(frozen=True)
class Policy:
    """A decoded POST policy; ``encoded`` is the base64 text the signature covers."""

    encoded: str
    expiration: datetime
    conditions: list[Any]


@dataclass(frozen=True)
class SizeRange:
    """``content-length-range``: the file's size must lie in [low, high]."""

    low: int
    high: int


def _invalid(message: str) -> S3Error:
    return s3_error("InvalidPolicyDocument", f"Invalid Policy: {message}")


def _denied(message: str) -> S3Error:
    return s3_error("AccessDenied", f"Invalid according to Policy: {message}")


def decode_policy(encoded: str) -> Policy:
    """The policy field as a :class:`Policy`, or ``InvalidPolicyDocument``."""
    try:
        doc = json.loads(base64.b64decode(encoded.strip(), validate=True))
    except (binascii.Error, ValueError, RecursionError) as e:  # "[[[[..." nests past the stack
        raise _invalid("Invalid JSON.") from e
    if not isinstance(doc, dict):
        raise _invalid("Invalid JSON.")
    raw_expiration = doc.get("expiration")
    if raw_expiration is None:
        raise _invalid("Policy missing expiration.")
    try:
        expiration = datetime.fromisoformat(str(raw_expiration))
    except ValueError as e:
        raise _invalid("Invalid 'expiration' value: " + json.dumps(raw_expiration)[:100]) from e
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    conditions = doc.get("conditions")
    if conditions is None:
        raise _invalid("Policy missing conditions.")
    if not isinstance(conditions, list):
        raise _invalid("Policy conditions must be a list.")
    return Policy(encoded.strip(), expiration, conditions)


def authenticate(
    fields: Mapping[str, str], policy: Policy, lookup: CredentialLookup, *, sigv2: bool
) -> str:
    """The access key whose signature over the policy the form carries.

    ``SignatureDoesNotMatch`` for a wrong one, ``InvalidAccessKeyId`` for an
    unknown key, ``InvalidArgument`` for a missing or malformed field,
    ``AccessDenied`` for a SigV2 form where SigV2 is turned off.
    """
    if any(name in fields for name in _V4_FIELDS):
        for name in _V4_FIELDS:
            if name not in fields:
                raise missing_field(name)
        if fields["x-amz-algorithm"] != ALGORITHM:
            raise s3_error(
                "InvalidArgument",
                f"Only {ALGORITHM} is supported for POST policies.",
                ArgumentName="x-amz-algorithm",
                ArgumentValue=fields["x-amz-algorithm"][:64],
            )
        access_key, date, region = _parse_credential(
            fields["x-amz-credential"], "InvalidArgument", "Invalid credential: "
        )
        secret = _secret(lookup, access_key)
        expected = sign_string(derive_signing_key(secret, date, region), policy.encoded)
        provided = fields["x-amz-signature"]
    elif "awsaccesskeyid" in fields or "signature" in fields:
        if not sigv2:
            raise s3_error(
                "AccessDenied",
                "Signature Version 2 is turned off on this gateway (its sigv2 setting); "
                "sign the policy with AWS4-HMAC-SHA256.",
            )
        for name in ("awsaccesskeyid", "signature"):
            if name not in fields:
                raise missing_field("AWSAccessKeyId" if name == "awsaccesskeyid" else name)
        access_key = fields["awsaccesskeyid"]
        secret = _secret(lookup, access_key)
        digest = hmac.new(secret.encode(), policy.encoded.encode(), hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode()
        provided = fields["signature"]
        if hmac.compare_digest(expected.encode(), provided.encode()):
            return access_key
        raise _mismatch(access_key, policy, provided)
    else:
        raise s3_error(
            "AccessDenied",
            "anonymous form uploads are not allowed (skymesh has no public-write ACL); "
            "sign the policy",
        )
    if not signatures_equal(expected, provided):
        raise _mismatch(access_key, policy, provided)
    return access_key


def _secret(lookup: CredentialLookup, access_key: str) -> str:
    secret = lookup(access_key)
    if secret is None:
        raise s3_error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
    return secret


def missing_field(name: str) -> S3Error:
    """A field the form must have (``key``, ``policy``...) is absent."""
    return s3_error(
        "InvalidArgument",
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please "
        "check the order of the fields.",
        ArgumentName=name,
        ArgumentValue="",
    )


def _mismatch(access_key: str, policy: Policy, provided: str) -> S3Error:
    return s3_error(
        "SignatureDoesNotMatch",
        AWSAccessKeyId=access_key,
        StringToSign=policy.encoded[:4096],
        SignatureProvided=provided[:128],
    )


def check_conditions(
    policy: Policy, fields: Mapping[str, str], bucket: str, now: datetime
) -> SizeRange | None:
    """Raise S3's AccessDenied when the form is not what the policy allows; the
    file's size bounds when the policy sets them."""
    if now >= policy.expiration:
        raise _denied("Policy expired.")
    values = {**fields, "bucket": bucket}
    covered: set[str] = set()
    size: SizeRange | None = None
    for condition in policy.conditions:
        if isinstance(condition, dict):
            for name, expected in condition.items():
                name = str(name).lower()
                covered.add(name)
                if not isinstance(expected, str) or values.get(name) != expected:
                    raise _failed(condition)
            continue
        if not isinstance(condition, list) or not condition:
            raise _invalid("Invalid Simple-Condition: " + _show(condition))
        op = str(condition[0]).lower()
        if op == "content-length-range":
            size = _size_range(condition)
            continue
        if op not in ("eq", "starts-with") or len(condition) != 3:
            raise _invalid("Invalid Condition: " + _show(condition))
        target, expected = condition[1], condition[2]
        if not isinstance(target, str) or not target.startswith("$"):
            raise _invalid("Invalid Condition: " + _show(condition))
        if not isinstance(expected, str):
            raise _invalid("Invalid Condition: " + _show(condition))
        name = target[1:].lower()
        covered.add(name)
        value = values.get(name)
        if value is None:
            raise _failed(condition)
        if op == "eq":
            ok = value == expected
        elif name == "content-type":
            # S3 takes a list of types here, each of which must start so
            ok = all(v.strip().startswith(expected) for v in value.split(","))
        else:
            ok = value.startswith(expected)
        if not ok:
            raise _failed(condition)
    extra = [
        name
        for name in fields
        if name not in covered and name not in UNCOVERED and not name.startswith("x-ignore-")
    ]
    if extra:
        raise _denied("Extra input fields: " + ", ".join(extra))
    return size


def _size_range(condition: list[Any]) -> SizeRange:
    if len(condition) != 3:
        raise _invalid("Invalid content-length-range: " + _show(condition))
    try:
        low, high = int(condition[1]), int(condition[2])
    except (TypeError, ValueError) as e:
        raise _invalid("Invalid content-length-range: " + _show(condition)) from e
    if low < 0 or high < low:
        raise _invalid("Invalid content-length-range: " + _show(condition))
    return SizeRange(low, high)


def _show(condition: Any) -> str:
    return json.dumps(condition)[:500]


def _failed(condition: Any) -> S3Error:
    return _denied("Policy Condition failed: " + _show(condition))
