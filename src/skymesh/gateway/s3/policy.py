"""S3 bucket policies: the IAM policy language, parsed, validated and evaluated (pure).

:func:`parse` turns the JSON a PutBucketPolicy carries into a :class:`Policy`,
raising ``MalformedPolicy`` with S3's messages; :func:`evaluate` answers one
request against it (an explicit Deny, an Allow, or nothing); :func:`is_public`
says whether AWS would call the policy public. Nothing here does I/O: the request
context (condition keys and their values) is built by ``gateway/s3/access.py``.

Principals are projects: ``{"AWS": "<project id>"}`` (the canonical id S3 shows
as Owner), ``arn:aws:iam::<project id>:root`` and ``{"CanonicalUser": id}`` all
name one; ``"*"`` / ``{"AWS": "*"}`` name everyone, anonymous callers included.

Matching follows IAM: actions are matched case-insensitively, resources and
``StringLike`` values case-sensitively, ``*`` and ``?`` are wildcards;
condition key names are case-insensitive; several values of one key are ORed,
several keys and several operators are ANDed. A key absent from the request makes
a condition false, except for the negated operators (``StringNotEquals``,
``NotIpAddress``...), which are then true, the ``...IfExists`` forms (true) and
``Null``. ``ForAnyValue:`` / ``ForAllValues:`` compare a multi-valued key
(``s3:RequestObjectTagKeys``) value by value. Policy variables (``${aws:username}``)
are not expanded.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from skymesh.gateway.s3.errors import S3Error, s3_error

MAX_POLICY_BYTES = 20 * 1024  # S3's cap on a bucket policy
VERSIONS = ("2012-10-17", "2008-10-17")
ARN_PREFIX = "arn:aws:s3:::"
_IAM_ROOT = re.compile(r"arn:aws:iam::([^:]+):root")

#: Every S3 action a bucket policy may name (AWS's list for S3, less what has no
#: meaning on a bucket's resources, such as ``s3:ListAllMyBuckets`` or access points).
#: The object actions apply to ``arn:aws:s3:::bucket/key`` resources, the rest to
#: the bucket's own ARN.
OBJECT_ACTIONS = frozenset(
    a.lower()
    for a in (
        "s3:AbortMultipartUpload",
        "s3:BypassGovernanceRetention",
        "s3:DeleteObject",
        "s3:DeleteObjectTagging",
        "s3:DeleteObjectVersion",
        "s3:DeleteObjectVersionTagging",
        "s3:GetObject",
        "s3:GetObjectAcl",
        "s3:GetObjectAttributes",
        "s3:GetObjectLegalHold",
        "s3:GetObjectRetention",
        "s3:GetObjectTagging",
        "s3:GetObjectTorrent",
        "s3:GetObjectVersion",
        "s3:GetObjectVersionAcl",
        "s3:GetObjectVersionAttributes",
        "s3:GetObjectVersionForReplication",
        "s3:GetObjectVersionTagging",
        "s3:GetObjectVersionTorrent",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
        "s3:PutObjectAcl",
        "s3:PutObjectLegalHold",
        "s3:PutObjectRetention",
        "s3:PutObjectTagging",
        "s3:PutObjectVersionAcl",
        "s3:PutObjectVersionTagging",
        "s3:ReplicateDelete",
        "s3:ReplicateObject",
        "s3:ReplicateTags",
        "s3:RestoreObject",
    )
)
BUCKET_ACTIONS = frozenset(
    a.lower()
    for a in (
        "s3:CreateBucket",
        "s3:DeleteBucket",
        "s3:DeleteBucketOwnershipControls",
        "s3:DeleteBucketPolicy",
        "s3:DeleteBucketWebsite",
        "s3:GetAccelerateConfiguration",
        "s3:GetAnalyticsConfiguration",
        "s3:GetBucketAcl",
        "s3:GetBucketCORS",
        "s3:GetBucketLocation",
        "s3:GetBucketLogging",
        "s3:GetBucketNotification",
        "s3:GetBucketObjectLockConfiguration",
        "s3:GetBucketOwnershipControls",
        "s3:GetBucketPolicy",
        "s3:GetBucketPolicyStatus",
        "s3:GetBucketPublicAccessBlock",
        "s3:GetBucketRequestPayment",
        "s3:GetBucketTagging",
        "s3:GetBucketVersioning",
        "s3:GetBucketWebsite",
        "s3:GetEncryptionConfiguration",
        "s3:GetIntelligentTieringConfiguration",
        "s3:GetInventoryConfiguration",
        "s3:GetLifecycleConfiguration",
        "s3:GetMetricsConfiguration",
        "s3:GetReplicationConfiguration",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:ListBucketVersions",
        "s3:PutAccelerateConfiguration",
        "s3:PutAnalyticsConfiguration",
        "s3:PutBucketAcl",
        "s3:PutBucketCORS",
        "s3:PutBucketLogging",
        "s3:PutBucketNotification",
        "s3:PutBucketObjectLockConfiguration",
        "s3:PutBucketOwnershipControls",
        "s3:PutBucketPolicy",
        "s3:PutBucketPublicAccessBlock",
        "s3:PutBucketRequestPayment",
        "s3:PutBucketTagging",
        "s3:PutBucketVersioning",
        "s3:PutBucketWebsite",
        "s3:PutEncryptionConfiguration",
        "s3:PutIntelligentTieringConfiguration",
        "s3:PutInventoryConfiguration",
        "s3:PutLifecycleConfiguration",
        "s3:PutMetricsConfiguration",
        "s3:PutReplicationConfiguration",
    )
)
ALL_ACTIONS = OBJECT_ACTIONS | BUCKET_ACTIONS

#: The S3 condition keys S3 accepts in a bucket policy (lower case); keys with a
#: ``/<name>`` part are matched on their prefix. Global ``aws:`` keys are all accepted.
S3_KEYS = frozenset(
    (
        "s3:authtype",
        "s3:delimiter",
        "s3:locationconstraint",
        "s3:max-keys",
        "s3:prefix",
        "s3:resourceaccount",
        "s3:signatureage",
        "s3:signatureversion",
        "s3:tlsversion",
        "s3:versionid",
        "s3:requestobjecttagkeys",
        "s3:x-amz-acl",
        "s3:x-amz-content-sha256",
        "s3:x-amz-copy-source",
        "s3:x-amz-grant-full-control",
        "s3:x-amz-grant-read",
        "s3:x-amz-grant-read-acp",
        "s3:x-amz-grant-write",
        "s3:x-amz-grant-write-acp",
        "s3:x-amz-metadata-directive",
        "s3:x-amz-server-side-encryption",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "s3:x-amz-storage-class",
        "s3:x-amz-website-redirect-location",
        "s3:object-lock-legal-hold",
        "s3:object-lock-mode",
        "s3:object-lock-remaining-retention-days",
        "s3:object-lock-retain-until-date",
        "s3:objectcreationoperation",
        "s3:if-match",
        "s3:if-none-match",
        "s3:dataaccesspointaccount",
        "s3:dataaccesspointarn",
        "s3:accesspointnetworkorigin",
    )
)
S3_KEY_PREFIXES = ("s3:existingobjecttag/", "s3:requestobjecttag/")
#: aws: keys whose fixed value makes an Allow to ``*`` non-public (AWS's list)
_PINNING_KEYS = frozenset(
    (
        "aws:sourcearn",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceaccount",
        "aws:sourceowner",
        "aws:sourceip",
        "aws:principalorgid",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:userid",
        "s3:dataaccesspointaccount",
        "s3:dataaccesspointarn",
        "s3:resourceaccount",
    )
)


class Decision(Enum):
    DENY = "Deny"
    ALLOW = "Allow"


def _malformed(message: str) -> S3Error:
    return s3_error("MalformedPolicy", message)


# ---------------------------------------------------------------- wildcards


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: ``*`` any run of characters, ``?`` any one, whole string.

    Two pointers, backing up only to the last ``*``: at worst len(pattern) *
    len(value) steps, never the exponential backtracking a regex of many ``.*``
    can take on a long key (the key is the caller's, the pattern the owner's)."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    if "*" not in pattern and "?" not in pattern:
        return pattern == value
    p = v = 0
    star = -1  # the pattern index after the last '*' seen
    resume = 0  # where in value that '*' would next stop
    while v < len(value):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == value[v]):
            p += 1
            v += 1
        elif p < len(pattern) and pattern[p] == "*":
            star = p + 1
            resume = v
            p += 1
        elif star >= 0:
            resume += 1
            v = resume
            p = star
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


# ---------------------------------------------------------------- conditions

Values = Sequence[str]
#: (policy value, request value) -> match
_Compare = Callable[[str, str], bool]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> datetime | None:
    text = text.strip()
    if text.isdigit():  # epoch seconds
        return datetime.fromtimestamp(int(text), UTC)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _numeric(test: Callable[[float, float], bool]) -> _Compare:
    def compare(want: str, got: str) -> bool:
        a, b = _number(got), _number(want)
        return a is not None and b is not None and test(a, b)

    return compare


def _dated(test: Callable[[datetime, datetime], bool]) -> _Compare:
    def compare(want: str, got: str) -> bool:
        a, b = _date(got), _date(want)
        return a is not None and b is not None and test(a, b)

    return compare


def _in_network(want: str, got: str) -> bool:
    try:
        return ipaddress.ip_address(got) in ipaddress.ip_network(want, strict=False)
    except ValueError:
        return False


@dataclass(frozen=True)
class _Operator:
    compare: _Compare
    negated: bool = False  # true when the key is absent; matches when no value does


_OPERATORS: dict[str, _Operator] = {
    "stringequals": _Operator(lambda w, g: w == g),
    "stringnotequals": _Operator(lambda w, g: w == g, negated=True),
    "stringequalsignorecase": _Operator(lambda w, g: w.lower() == g.lower()),
    "stringnotequalsignorecase": _Operator(lambda w, g: w.lower() == g.lower(), negated=True),
    "stringlike": _Operator(lambda w, g: glob_match(w, g)),
    "stringnotlike": _Operator(lambda w, g: glob_match(w, g), negated=True),
    "numericequals": _Operator(_numeric(lambda a, b: a == b)),
    "numericnotequals": _Operator(_numeric(lambda a, b: a == b), negated=True),
    "numericlessthan": _Operator(_numeric(lambda a, b: a < b)),
    "numericlessthanequals": _Operator(_numeric(lambda a, b: a <= b)),
    "numericgreaterthan": _Operator(_numeric(lambda a, b: a > b)),
    "numericgreaterthanequals": _Operator(_numeric(lambda a, b: a >= b)),
    "dateequals": _Operator(_dated(lambda a, b: a == b)),
    "datenotequals": _Operator(_dated(lambda a, b: a == b), negated=True),
    "datelessthan": _Operator(_dated(lambda a, b: a < b)),
    "datelessthanequals": _Operator(_dated(lambda a, b: a <= b)),
    "dategreaterthan": _Operator(_dated(lambda a, b: a > b)),
    "dategreaterthanequals": _Operator(_dated(lambda a, b: a >= b)),
    "bool": _Operator(lambda w, g: w.lower() == g.lower()),
    "ipaddress": _Operator(_in_network),
    "notipaddress": _Operator(_in_network, negated=True),
    "arnequals": _Operator(lambda w, g: glob_match(w, g)),
    "arnlike": _Operator(lambda w, g: glob_match(w, g)),
    "arnnotequals": _Operator(lambda w, g: glob_match(w, g), negated=True),
    "arnnotlike": _Operator(lambda w, g: glob_match(w, g), negated=True),
}
_NULL = "null"


@dataclass(frozen=True)
class Condition:
    """One ``"Operator": {"key": [values]}`` entry, for one key."""

    operator: str  # the name as written, for is_public
    base: str  # lower case, without qualifier and IfExists: "stringequals", "null"
    qualifier: str  # "", "forAnyValue", "forAllValues"
    if_exists: bool
    key: str  # lower case
    values: tuple[str, ...]

    def holds(self, context: Mapping[str, Values]) -> bool:
        got = context.get(self.key)
        if self.base == _NULL:
            absent = not got
            return any((v.lower() == "true") == absent for v in self.values)
        op = _OPERATORS[self.base]
        if not got:
            if self.qualifier == "forAllValues":
                return True
            if self.qualifier == "forAnyValue":
                return False
            return self.if_exists or op.negated

        def one(value: str) -> bool:
            matched = any(op.compare(want, value) for want in self.values)
            return not matched if op.negated else matched

        if self.qualifier == "forAllValues" or (not self.qualifier and op.negated):
            return all(one(v) for v in got)
        return any(one(v) for v in got)


def _parse_conditions(raw: object) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise _malformed("Condition must be an object")
    found: list[Condition] = []
    for name, block in raw.items():
        base = name
        qualifier = ""
        for prefix, qual in (("foranyvalue:", "forAnyValue"), ("forallvalues:", "forAllValues")):
            if base.lower().startswith(prefix):
                base, qualifier = base[len(prefix) :], qual
        lowered = base.lower()
        if_exists = lowered.endswith("ifexists") and lowered != _NULL
        if if_exists:
            lowered = lowered[: -len("ifexists")]
        if lowered not in _OPERATORS and lowered != _NULL:
            raise _malformed(f"Invalid Condition type : {name}")
        if not isinstance(block, dict) or not block:
            raise _malformed(f"Invalid Condition block for {name}")
        for key, values in block.items():
            _check_key(key)
            listed = values if isinstance(values, list) else [values]
            if not listed or not all(isinstance(v, str | int | float | bool) for v in listed):
                raise _malformed(f"Invalid value for condition key {key}")
            strings = tuple(_condition_text(v) for v in listed)
            if lowered in ("ipaddress", "notipaddress"):
                for cidr in strings:
                    try:
                        ipaddress.ip_network(cidr, strict=False)
                    except ValueError:
                        raise _malformed(f"Invalid IP address or range: {cidr[:64]}") from None
            found.append(Condition(name, lowered, qualifier, if_exists, _key_name(key), strings))
    return tuple(found)


def _condition_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _key_name(key: str) -> str:
    """Condition key names are case-insensitive, a tag name after ``/`` is not."""
    head, slash, tail = key.partition("/")
    return head.lower() + slash + tail


def _check_key(key: str) -> None:
    lowered = key.lower()
    if lowered.startswith("aws:") and len(lowered) > 4:
        return
    if lowered in S3_KEYS:
        return
    if any(lowered.startswith(p) and len(lowered) > len(p) for p in S3_KEY_PREFIXES):
        return
    raise _malformed("Policy has an invalid condition key")


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class Principals:
    """Who a statement names: everyone, or some projects."""

    everyone: bool
    projects: frozenset[str]

    def match(self, caller: str | None) -> bool:
        return self.everyone or (caller is not None and caller in self.projects)


@dataclass(frozen=True)
class Statement:
    sid: str
    effect: Decision
    principals: Principals
    not_principal: bool
    actions: tuple[str, ...]  # lower case patterns
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    conditions: tuple[Condition, ...]

    def applies(
        self, caller: str | None, action: str, resource: str, context: Mapping[str, Values]
    ) -> bool:
        if self.principals.match(caller) == self.not_principal:
            return False
        if any(glob_match(a, action, ignore_case=True) for a in self.actions) == self.not_action:
            return False
        if any(glob_match(r, resource) for r in self.resources) == self.not_resource:
            return False
        return all(c.holds(context) for c in self.conditions)


@dataclass(frozen=True)
class Policy:
    version: str
    id: str
    statements: tuple[Statement, ...]

    def condition_keys(self) -> frozenset[str]:
        """Every condition key the policy reads (lower case names)."""
        return frozenset(c.key for s in self.statements for c in s.conditions)


def _strings(raw: object, field: str) -> list[str]:
    listed = raw if isinstance(raw, list) else [raw]
    if not listed or not all(isinstance(v, str) for v in listed):
        raise _malformed(f"{field} must be a string or a list of strings")
    return [str(v) for v in listed]


def _principals(raw: object) -> Principals:
    if raw == "*":
        return Principals(True, frozenset())
    if not isinstance(raw, dict) or not raw:
        raise _malformed("Invalid principal in policy")
    projects: set[str] = set()
    everyone = False
    for kind, value in raw.items():
        if kind not in ("AWS", "CanonicalUser", "Service", "Federated"):
            raise _malformed("Invalid principal in policy")
        for name in _strings(value, "Principal"):
            if kind in ("Service", "Federated"):
                continue  # names no project here: matches nobody
            if name == "*" and kind == "AWS":
                everyone = True
                continue
            root = _IAM_ROOT.fullmatch(name)
            if root:
                name = root.group(1)
            elif not name or name.startswith("arn:") or "*" in name:
                raise _malformed("Invalid principal in policy")
            projects.add(name)
    return Principals(everyone, frozenset(projects))


def _actions(raw: object) -> tuple[str, ...]:
    found: list[str] = []
    for action in _strings(raw, "Action"):
        lowered = action.lower()
        if lowered == "*":
            lowered = "s3:*"
        if not lowered.startswith("s3:") or not any(
            glob_match(lowered, known) for known in ALL_ACTIONS
        ):
            raise _malformed("Policy has invalid action")
        found.append(lowered)
    return tuple(found)


def _resources(raw: object, bucket: str) -> tuple[str, ...]:
    found: list[str] = []
    for resource in _strings(raw, "Resource"):
        if resource == "*":
            resource = ARN_PREFIX + "*"
        if not resource.startswith(ARN_PREFIX):
            raise _malformed("Policy has invalid resource")
        name = resource[len(ARN_PREFIX) :].split("/", 1)[0]
        if not glob_match(name, bucket):
            raise _malformed("Policy has invalid resource")
        found.append(resource)
    return tuple(found)


def _applies_somewhere(actions: tuple[str, ...], resources: tuple[str, ...]) -> bool:
    """Whether some action of the statement can act on some resource of it."""
    object_arn = any("/" in r or r.endswith("*") or r.endswith("?") for r in resources)
    bucket_arn = any("/" not in r for r in resources)
    for action in actions:
        if object_arn and any(glob_match(action, a) for a in OBJECT_ACTIONS):
            return True
        if bucket_arn and any(glob_match(action, a) for a in BUCKET_ACTIONS):
            return True
    return False


_STATEMENT_FIELDS = frozenset(
    (
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    )
)


def _statement(raw: object, bucket: str) -> Statement:
    if not isinstance(raw, dict):
        raise _malformed("Statement must be an object or a list of objects")
    unknown = set(raw) - _STATEMENT_FIELDS
    if unknown:
        raise _malformed(f"Unknown field {sorted(unknown)[0][:64]}")
    sid = raw.get("Sid", "")
    if not isinstance(sid, str):
        raise _malformed("Sid must be a string")
    if "Effect" not in raw:
        raise _malformed("Missing required field Effect")
    effect = raw["Effect"]
    if effect not in ("Allow", "Deny"):
        raise _malformed(f"Invalid effect: {str(effect)[:64]}")
    not_principal = "NotPrincipal" in raw
    if ("Principal" in raw) == not_principal:
        raise _malformed("Missing required field Principal")
    not_action = "NotAction" in raw
    if ("Action" in raw) == not_action:
        raise _malformed("Missing required field Action")
    not_resource = "NotResource" in raw
    if ("Resource" in raw) == not_resource:
        raise _malformed("Missing required field Resource")
    actions = _actions(raw["NotAction" if not_action else "Action"])
    resources = _resources(raw["NotResource" if not_resource else "Resource"], bucket)
    if not (not_action or not_resource) and not _applies_somewhere(actions, resources):
        raise _malformed("Action does not apply to any resource(s) in statement")
    return Statement(
        sid=sid,
        effect=Decision(effect),
        principals=_principals(raw["NotPrincipal" if not_principal else "Principal"]),
        not_principal=not_principal,
        actions=actions,
        not_action=not_action,
        resources=resources,
        not_resource=not_resource,
        conditions=_parse_conditions(raw["Condition"]) if "Condition" in raw else (),
    )


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _malformed("This policy contains invalid Json")
    return dict(pairs)


def parse(text: str | bytes, bucket: str) -> Policy:
    """The policy in ``text`` for ``bucket``, or ``MalformedPolicy`` / ``PolicyTooLarge``."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_POLICY_BYTES:
        raise s3_error("PolicyTooLarge")
    try:
        doc = json.loads(raw, object_pairs_hook=_reject_duplicates)
    except (ValueError, RecursionError):
        raise _malformed("This policy contains invalid Json") from None
    if not isinstance(doc, dict):
        raise _malformed("Policies must be valid JSON and the first byte must be '{'")
    unknown = set(doc) - {"Version", "Id", "Statement"}
    if unknown:
        raise _malformed(f"Unknown field {sorted(unknown)[0][:64]}")
    version = doc.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise _malformed("The policy must contain a valid version string")
    ident = doc.get("Id", "")
    if not isinstance(ident, str):
        raise _malformed("Id must be a string")
    if "Statement" not in doc:
        raise _malformed("Missing required field Statement")
    raw_statements = doc["Statement"]
    listed = raw_statements if isinstance(raw_statements, list) else [raw_statements]
    if not listed:
        raise _malformed("Could not parse the policy: Statement is empty!")
    statements = tuple(_statement(s, bucket) for s in listed)
    sids = [s.sid for s in statements if s.sid]
    if len(set(sids)) != len(sids):
        raise _malformed("Statement IDs (SID) in a single policy must be unique")
    return Policy(str(version), ident, statements)


@functools.lru_cache(maxsize=1024)
def parse_cached(text: str, bucket: str) -> Policy:
    """:func:`parse`, remembered: a stored policy is read on every request to its bucket."""
    return parse(text, bucket)


# ---------------------------------------------------------------- evaluation


def evaluate(
    policy: Policy,
    caller: str | None,
    action: str,
    resource: str,
    context: Mapping[str, Values],
) -> Decision | None:
    """What ``policy`` says of ``caller`` (a project id, None anonymous) doing ``action``
    (``s3:GetObject``) on ``resource`` (an ARN): DENY wins over ALLOW; None says nothing.

    ``context`` maps lower-case condition key names to the request's values."""
    action = action.lower()
    allowed = False
    for statement in policy.statements:
        if statement.applies(caller, action, resource, context):
            if statement.effect is Decision.DENY:
                return Decision.DENY
            allowed = True
    return Decision.ALLOW if allowed else None


def _pins(condition: Condition) -> bool:
    """Whether a condition fixes the caller to known accounts, networks or sources."""
    if condition.key not in _PINNING_KEYS or condition.qualifier == "forAllValues":
        return False
    if condition.if_exists or _OPERATORS.get(condition.base, _OPERATORS["bool"]).negated:
        return False
    if condition.base in ("stringequals", "stringequalsignorecase", "arnequals"):
        return not any("*" in v or "?" in v for v in condition.values)
    if condition.base in ("stringlike", "arnlike"):
        return not any(v.strip("*?") == "" for v in condition.values)
    if condition.base == "ipaddress":
        for cidr in condition.values:
            net = ipaddress.ip_network(cidr, strict=False)
            if net.prefixlen < (8 if net.version == 4 else 32):
                return False
        return True
    return False


def is_public(policy: Policy) -> bool:
    """AWS's test: some Allow reaches everyone (``*``, or a NotPrincipal) without a
    condition that pins it to fixed accounts, networks or sources."""
    for statement in policy.statements:
        if statement.effect is not Decision.ALLOW:
            continue
        if not (statement.not_principal or statement.principals.everyone):
            continue
        if not any(_pins(c) for c in statement.conditions):
            return True
    return False
