"""The bucket policy language: parsing, S3's validation errors, evaluation, public-ness."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skymesh.gateway.s3 import actions
from skymesh.gateway.s3.errors import S3Error
from skymesh.gateway.s3.policy import Decision, evaluate, glob_match, is_public, parse
from skymesh.gateway.s3.router import Endpoint, Op

B = "pol-bucket"
OBJ = f"arn:aws:s3:::{B}/*"
BKT = f"arn:aws:s3:::{B}"
ME = "proj-owner"
YOU = "proj-other"


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _stmt(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": OBJ,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def _eval(
    statement: dict[str, Any],
    *,
    caller: str | None = YOU,
    action: str = "s3:GetObject",
    resource: str = f"arn:aws:s3:::{B}/k",
    **context: str | list[str],
) -> Decision | None:
    ctx = {
        k.replace("__", ":").replace("_", "-"): v if isinstance(v, list) else [v]
        for k, v in context.items()
    }
    return evaluate(parse(_policy(statement), B), caller, action, resource, ctx)


def _malformed(text: str, message: str) -> None:
    with pytest.raises(S3Error) as e:
        parse(text, B)
    assert e.value.code == "MalformedPolicy"
    assert e.value.status == 400
    assert e.value.message == message


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "This policy contains invalid Json"),
        ("[]", "Policies must be valid JSON and the first byte must be '{'"),
        (json.dumps({"Version": "2012-10-17"}), "Missing required field Statement"),
        (
            _policy({"Principal": "*", "Action": "s3:GetObject", "Resource": OBJ}),
            "Missing required field Effect",
        ),
        (_policy(_stmt(Effect="Maybe")), "Invalid effect: Maybe"),
        (_policy(_stmt(Principal=None)), "Missing required field Principal"),
        (_policy(_stmt(Action="s3:FlyAway")), "Policy has invalid action"),
        (_policy(_stmt(Action="ec2:*")), "Policy has invalid action"),
        (_policy(_stmt(Resource="arn:aws:s3:::someone-else/*")), "Policy has invalid resource"),
        (_policy(_stmt(Resource="arn:aws:sqs:::x")), "Policy has invalid resource"),
        (_policy(_stmt(Resource=BKT)), "Action does not apply to any resource(s) in statement"),
        (
            _policy(_stmt(Condition={"StringEqualz": {"s3:prefix": "a"}})),
            "Invalid Condition type : StringEqualz",
        ),
        (
            _policy(_stmt(Condition={"StringEquals": {"s3:nonsense": "a"}})),
            "Policy has an invalid condition key",
        ),
        (
            _policy(_stmt(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.300/8"}})),
            "Invalid IP address or range: 10.0.0.300/8",
        ),
        (
            _policy(_stmt(Principal={"AWS": "arn:aws:iam::123:user/bob"})),
            "Invalid principal in policy",
        ),
        (
            json.dumps({"Version": "2020-01-01", "Statement": [_stmt()]}),
            "The policy must contain a valid version string",
        ),
        (
            _policy(_stmt(Sid="a"), _stmt(Sid="a")),
            "Statement IDs (SID) in a single policy must be unique",
        ),
    ],
)
def test_malformed_policies(text: str, message: str) -> None:
    _malformed(text, message)


def test_too_large() -> None:
    big = _policy(*[_stmt(Sid=f"s{i}", Resource=f"{BKT}/{'x' * 200}{i}") for i in range(100)])
    with pytest.raises(S3Error) as e:
        parse(big, B)
    assert e.value.code == "PolicyTooLarge"


def test_statement_may_be_one_object_and_version_may_be_omitted() -> None:
    policy = parse(json.dumps({"Id": "p", "Statement": _stmt()}), B)
    assert len(policy.statements) == 1 and policy.id == "p"


# ---------------------------------------------------------------- wildcards


def test_glob_is_linear_on_hostile_patterns() -> None:
    import time

    started = time.perf_counter()
    assert not glob_match("*a" * 30 + "*b", "a" * 1024)
    assert glob_match("*a*" * 30, "a" * 1024)
    assert time.perf_counter() - started < 0.5


def test_glob() -> None:
    assert glob_match("a*c", "abbbc") and glob_match("a?c", "abc") and not glob_match("a?c", "ac")
    assert glob_match("s3:get*", "s3:GetObject", ignore_case=True)
    assert not glob_match("A*", "abc") and glob_match("a.b", "a.b") and not glob_match("a.b", "axb")
    assert glob_match("*", "") and glob_match("a**", "a") and not glob_match("?", "")
    assert glob_match("*/x/*", "a/b/x/c") and not glob_match("*/x/*", "a/b/y/c")


def test_actions_and_resources() -> None:
    stmt = _stmt(Action=["s3:Get*"], Resource=f"{BKT}/public/*")
    assert _eval(stmt, resource=f"{BKT}/public/a/b") is Decision.ALLOW
    assert _eval(stmt, action="s3:GetObjectTagging", resource=f"{BKT}/public/x") is Decision.ALLOW
    assert _eval(stmt, resource=f"{BKT}/private/x") is None
    assert _eval(stmt, action="s3:PutObject", resource=f"{BKT}/public/x") is None
    star = _stmt(Action="s3:*", Resource=[BKT, OBJ])
    assert _eval(star, action="s3:ListBucket", resource=BKT) is Decision.ALLOW
    q = _stmt(Resource=f"{BKT}/log-?.txt")
    assert _eval(q, resource=f"{BKT}/log-1.txt") is Decision.ALLOW
    assert _eval(q, resource=f"{BKT}/log-10.txt") is None


def test_not_action_and_not_resource() -> None:
    stmt = _stmt(Effect="Deny", Action=None, NotAction="s3:GetObject")
    assert _eval(stmt, action="s3:PutObject") is Decision.DENY
    assert _eval(stmt) is None
    stmt = _stmt(Resource=None, NotResource=f"{BKT}/secret/*")
    assert _eval(stmt, resource=f"{BKT}/open") is Decision.ALLOW
    assert _eval(stmt, resource=f"{BKT}/secret/x") is None


def test_principals() -> None:
    named = _stmt(Principal={"AWS": [YOU, f"arn:aws:iam::{ME}:root"]})
    assert _eval(named, caller=YOU) is Decision.ALLOW
    assert _eval(named, caller=ME) is Decision.ALLOW
    assert _eval(named, caller="proj-third") is None
    assert _eval(named, caller=None) is None
    assert _eval(_stmt(Principal={"AWS": "*"}), caller=None) is Decision.ALLOW
    assert _eval(_stmt(Principal={"CanonicalUser": YOU}), caller=YOU) is Decision.ALLOW
    deny_others = _stmt(Effect="Deny", Principal=None, NotPrincipal={"AWS": ME})
    assert _eval(deny_others, caller=YOU) is Decision.DENY
    assert _eval(deny_others, caller=None) is Decision.DENY
    assert _eval(deny_others, caller=ME) is None


def test_deny_wins() -> None:
    text = _policy(_stmt(), _stmt(Effect="Deny", Resource=f"{BKT}/secret/*"))
    policy = parse(text, B)
    assert evaluate(policy, YOU, "s3:GetObject", f"{BKT}/a", {}) is Decision.ALLOW
    assert evaluate(policy, YOU, "s3:GetObject", f"{BKT}/secret/a", {}) is Decision.DENY


# ---------------------------------------------------------------- conditions


def _cond(condition: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return _stmt(Condition=condition, **fields)


def test_string_operators() -> None:
    eq = _cond({"StringEquals": {"s3:prefix": ["home/", "pub/"]}})
    assert _eval(eq, s3__prefix="pub/") is Decision.ALLOW
    assert _eval(eq, s3__prefix="other/") is None
    assert _eval(eq) is None  # absent key: no match
    ne = _cond({"StringNotEquals": {"s3:prefix": "secret/"}})
    assert _eval(ne, s3__prefix="pub/") is Decision.ALLOW
    assert _eval(ne, s3__prefix="secret/") is None
    assert _eval(ne) is Decision.ALLOW  # negated operators hold when the key is absent
    like = _cond({"StringLike": {"aws:Referer": "https://*.example.com/*"}})
    assert _eval(like, aws__referer="https://www.example.com/page") is Decision.ALLOW
    assert _eval(like, aws__referer="https://evil.com/") is None
    not_like = _cond({"StringNotLike": {"aws:UserAgent": "*curl*"}})
    assert _eval(not_like, aws__useragent="curl/8") is None
    assert _eval(not_like, aws__useragent="boto3") is Decision.ALLOW
    ic = _cond({"StringEqualsIgnoreCase": {"s3:x-amz-acl": "PRIVATE"}})
    assert _eval(ic, s3__x_amz_acl="private") is Decision.ALLOW


def test_keys_are_case_insensitive() -> None:
    stmt = _cond({"stringequals": {"S3:Prefix": "a"}})
    assert _eval(stmt, s3__prefix="a") is Decision.ALLOW


def test_ip_addresses() -> None:
    ip = _cond({"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]}})
    assert _eval(ip, aws__sourceip="192.0.2.7") is Decision.ALLOW
    assert _eval(ip, aws__sourceip="2001:db8::1") is Decision.ALLOW
    assert _eval(ip, aws__sourceip="198.51.100.1") is None
    not_ip = _cond({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, Effect="Deny")
    assert _eval(not_ip, aws__sourceip="127.0.0.1") is Decision.DENY
    assert _eval(not_ip, aws__sourceip="10.1.2.3") is None


def test_bool_numeric_date_null() -> None:
    tls = _cond({"Bool": {"aws:SecureTransport": "false"}}, Effect="Deny")
    assert _eval(tls, aws__securetransport="false") is Decision.DENY
    assert _eval(tls, aws__securetransport="true") is None
    boolean = _cond({"Bool": {"aws:SecureTransport": True}})
    assert _eval(boolean, aws__securetransport="true") is Decision.ALLOW
    for op, ok, bad in [
        ("NumericEquals", "10", "11"),
        ("NumericNotEquals", "11", "10"),
        ("NumericLessThan", "9", "10"),
        ("NumericLessThanEquals", "10", "11"),
        ("NumericGreaterThan", "11", "10"),
        ("NumericGreaterThanEquals", "10", "9"),
    ]:
        stmt = _cond({op: {"s3:max-keys": "10"}})
        assert _eval(stmt, s3__max_keys=ok) is Decision.ALLOW, op
        assert _eval(stmt, s3__max_keys=bad) is None, op
    assert _eval(_cond({"NumericLessThan": {"s3:max-keys": 10}}), s3__max_keys="x") is None
    before = _cond({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}})
    assert _eval(before, aws__currenttime="2026-12-07T00:00:00Z") is Decision.ALLOW
    assert _eval(before, aws__currenttime="2031-01-01T00:00:00Z") is None
    after = _cond({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}})
    assert _eval(after, aws__currenttime="2026-12-07T00:00:00Z") is Decision.ALLOW
    null = _cond({"Null": {"s3:x-amz-server-side-encryption": "true"}}, Effect="Deny")
    assert _eval(null) is Decision.DENY
    assert _eval(null, s3__x_amz_server_side_encryption="AES256") is None


def test_if_exists() -> None:
    stmt = _cond({"StringEqualsIfExists": {"s3:x-amz-server-side-encryption": "AES256"}})
    assert _eval(stmt) is Decision.ALLOW
    assert _eval(stmt, s3__x_amz_server_side_encryption="AES256") is Decision.ALLOW
    assert _eval(stmt, s3__x_amz_server_side_encryption="aws:kms") is None


def test_set_operators() -> None:
    any_value = _cond({"ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": ["team", "env"]}})
    assert _eval(any_value, s3__requestobjecttagkeys=["x", "env"]) is Decision.ALLOW
    assert _eval(any_value, s3__requestobjecttagkeys=["x"]) is None
    assert _eval(any_value) is None
    all_values = _cond({"ForAllValues:StringLike": {"s3:RequestObjectTagKeys": ["team", "env*"]}})
    assert _eval(all_values, s3__requestobjecttagkeys=["team", "env2"]) is Decision.ALLOW
    assert _eval(all_values, s3__requestobjecttagkeys=["team", "x"]) is None
    assert _eval(all_values) is Decision.ALLOW  # no values: vacuously all


def test_tags_keep_their_case() -> None:
    stmt = _cond({"StringEquals": {"s3:ExistingObjectTag/Class": "public"}})
    assert _eval(stmt, **{"s3:existingobjecttag/Class": "public"}) is Decision.ALLOW
    assert _eval(stmt, **{"s3:existingobjecttag/class": "public"}) is None


def test_conditions_are_anded() -> None:
    stmt = _cond(
        {
            "StringLike": {"s3:prefix": "pub/*"},
            "IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
        }
    )
    assert _eval(stmt, s3__prefix="pub/a", aws__sourceip="127.0.0.1") is Decision.ALLOW
    assert _eval(stmt, s3__prefix="pub/a", aws__sourceip="10.0.0.1") is None


# ---------------------------------------------------------------- public or not


@pytest.mark.parametrize(
    ("statement", "public"),
    [
        (_stmt(), True),
        (_stmt(Principal={"AWS": "*"}), True),
        (_stmt(Principal={"AWS": YOU}), False),
        (_stmt(Effect="Deny"), False),
        (_cond({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}), False),
        (_cond({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}), True),
        (_cond({"StringEquals": {"aws:PrincipalAccount": YOU}}), False),
        (_cond({"StringLike": {"aws:PrincipalAccount": "*"}}), True),
        (_cond({"StringLike": {"s3:prefix": "pub/*"}}), True),
        (_cond({"StringNotEquals": {"aws:SourceAccount": YOU}}), True),
        (_stmt(Principal=None, NotPrincipal={"AWS": YOU}), True),
    ],
)
def test_is_public(statement: dict[str, Any], public: bool) -> None:
    assert is_public(parse(_policy(statement), B)) is public


# ---------------------------------------------------------------- the action table


def test_every_action_in_the_table_is_known() -> None:
    from skymesh.gateway.s3.policy import ALL_ACTIONS

    for op, action in actions.ACTIONS.items():
        assert action.lower() in ALL_ACTIONS, op
    for action in actions.VERSIONED.values():
        assert action.lower() in ALL_ACTIONS


def test_action_and_resource_of_requests() -> None:
    assert actions.action_for(Op.ListObjectsV2, None) == "s3:ListBucket"
    assert actions.action_for(Op.GetObject, "v1") == "s3:GetObjectVersion"
    assert actions.action_for(Op.DeleteObject, "v1") == "s3:DeleteObjectVersion"
    assert actions.action_for(Op.ListBuckets, None) is None
    assert actions.resource_for(Endpoint(Op.GetObject, B, "a/b")) == f"{BKT}/a/b"
    assert actions.resource_for(Endpoint(Op.ListObjects, B)) == BKT


def test_any_json_raises_only_s3_errors() -> None:
    """Random documents built from policy parts: parse answers a Policy or an S3Error."""
    import random

    rng = random.Random(15)
    parts: list[Any] = [
        "*",
        "",
        None,
        1,
        True,
        [],
        {},
        ["s3:Get*", 3],
        {"AWS": ["*", None]},
        {"StringLike": {"s3:prefix": [[]]}},
        {"IpAddress": {"aws:SourceIp": "x"}},
        {"Null": {"aws:Referer": "maybe"}},
        OBJ,
        "arn:aws:s3:::*",
    ]
    fields = ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction"]
    fields += ["Resource", "NotResource", "Condition", "Bogus"]
    for _ in range(500):
        stmt = _stmt()
        for field in rng.sample(fields, rng.randint(1, 4)):
            stmt[field] = rng.choice(parts)
        doc: Any = {"Version": "2012-10-17", "Statement": rng.choice([stmt, [stmt], [stmt, 1]])}
        try:
            parse(json.dumps(doc), B)
        except S3Error as e:
            assert e.code == "MalformedPolicy", e


def test_source_ip_of_a_dual_stack_peer() -> None:
    from skymesh.gateway.s3.access import _source_ip

    assert _source_ip("::ffff:192.0.2.1") == "192.0.2.1"
    assert _source_ip("2001:db8::1") == "2001:db8::1"
    assert _source_ip("127.0.0.1") == "127.0.0.1"
