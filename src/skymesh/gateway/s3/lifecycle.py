"""S3 lifecycle configurations: the XML body parsed and checked as S3 checks it, and rendered.

Pure (no I/O), like ``cors.py``. A ``LifecycleConfiguration`` becomes a list of
:class:`~skymesh.wire.metainfo.LifecycleRule`; the first fault found is the
answer, with S3's code and message: the rules' count and IDs first, then each
rule in order, transitions last. A configuration is "Lifecycle V2" when its first
rule has a ``Filter``; S3 then refuses a rule-level ``Prefix`` (and, in V1, a
``Filter`` or ``NewerNoncurrentVersions``).

skymesh stores every object in one storage class, so ``Transition`` and
``NoncurrentVersionTransition`` are refused (``InvalidStorageClass``) rather than
accepted and never done.
"""

from __future__ import annotations

import base64
import itertools
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NoReturn

import msgspec

from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.xml import _doc, _el, _malformed, _parse, iso8601
from skymesh.wire.metainfo import LifecycleRule, Tag

MAX_LIFECYCLE_BODY = 512 * 1024
MAX_RULES = 1000
MAX_ID_UNITS = 255  # UTF-16 code units
MAX_PREFIX_BYTES = 1024  # no key is longer
MAX_FILTER_TAGS = 10  # an object holds at most 10 tags
MAX_SIZE = 1099511627776000  # S3's bound on ObjectSize* (1000 TiB)
DAY = 86400


def _invalid_request(message: str) -> NoReturn:
    raise s3_error("InvalidRequest", message)


def _invalid_argument(message: str) -> NoReturn:
    raise s3_error("InvalidArgument", message)


def _children(el: ET.Element) -> dict[str, list[ET.Element]]:
    out: dict[str, list[ET.Element]] = {}
    for child in el:
        out.setdefault(child.tag, []).append(child)
    return out


def _one(found: dict[str, list[ET.Element]], tag: str) -> ET.Element | None:
    els = found.get(tag)
    if not els:
        return None
    if len(els) > 1:
        _malformed(f"more than one {tag}")
    return els[0]


def _text(el: ET.Element | None) -> str | None:
    return None if el is None else (el.text or "").strip()


def _int(el: ET.Element | None, what: str) -> int | None:
    raw = _text(el)
    if raw is None:
        return None
    sign, digits = (raw[0], raw[1:]) if raw[:1] in "+-" else ("", raw)
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        _malformed(f"{what} {raw[:20]!r} is not an integer")
    return int(sign + digits)


def _positive(value: int | None, message: str) -> int | None:
    if value is not None and value <= 0:
        _invalid_argument(message)
    return value


def _date(el: ET.Element) -> float:
    """An ISO 8601 ``Date``, which S3 requires at midnight UTC."""
    raw = (el.text or "").strip()
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        _malformed(f"Date {raw[:40]!r} is not an ISO 8601 date")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ts = when.timestamp()
    if ts % DAY != 0:
        _invalid_argument("'Date' must be at midnight GMT")
    return ts


def _tag(el: ET.Element) -> Tag:
    found = _children(el)
    key, value = _text(_one(found, "Key")), _text(_one(found, "Value"))
    if not key or value is None:
        _malformed("a Tag needs a Key and a Value")
    return Tag(key=key, value=value)


class _Filter:
    """A rule's scope: prefix, tags and sizes, and how it was written."""

    def __init__(self) -> None:
        self.prefix = ""
        self.tags: list[Tag] = []
        self.gt: int | None = None
        self.lt: int | None = None
        self.and_ = False

    def add(self, found: dict[str, list[ET.Element]]) -> None:
        self.prefix = _text(_one(found, "Prefix")) or ""
        self.tags = [_tag(t) for t in found.get("Tag", [])]
        self.gt = _int(_one(found, "ObjectSizeGreaterThan"), "ObjectSizeGreaterThan")
        self.lt = _int(_one(found, "ObjectSizeLessThan"), "ObjectSizeLessThan")

    def check(self) -> None:
        if len(self.prefix.encode()) > MAX_PREFIX_BYTES:
            _invalid_argument(
                f"The prefix is longer than the longest key ({MAX_PREFIX_BYTES} bytes)"
            )
        if len(self.tags) > MAX_FILTER_TAGS:
            _invalid_argument(f"A filter may name at most {MAX_FILTER_TAGS} tags")
        if len({t.key for t in self.tags}) != len(self.tags):
            _invalid_request("Duplicate Tag Keys are not allowed.")
        if self.gt is not None and not 0 <= self.gt <= MAX_SIZE:
            _invalid_request(f"'ObjectSizeGreaterThan' should be between 0 and {MAX_SIZE}.")
        if self.lt is not None and not 1 <= self.lt <= MAX_SIZE:
            _invalid_request(f"'ObjectSizeLessThan' should be between 1 and {MAX_SIZE}.")
        if self.gt is not None and self.lt is not None and self.lt <= self.gt:
            _invalid_request(
                "'ObjectSizeLessThan' has to be a value greater than 'ObjectSizeGreaterThan'."
            )


def _parse_filter(el: ET.Element) -> _Filter:
    """A ``<Filter>``: empty, exactly one predicate, or an ``<And>`` of several."""
    out = _Filter()
    found = _children(el)
    predicates = [
        t
        for t in found
        if t in ("Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan")
    ]
    if sum(len(found[t]) for t in predicates) > 1:
        _malformed("a Filter holds one predicate; several go inside And")
    if "And" in found:
        out.and_ = True
        out.add(_children(found["And"][0]))
    else:
        out.add(found)
    return out


def _rule(el: ET.Element, v2: bool) -> tuple[LifecycleRule, bool]:
    """One ``<Rule>`` checked (its ID left as given); whether it has transitions."""
    found = _children(el)
    status = _text(_one(found, "Status"))
    if status not in ("Enabled", "Disabled"):
        _malformed("Status must be Enabled or Disabled")
    prefix_el, filter_el = _one(found, "Prefix"), _one(found, "Filter")
    if prefix_el is None and filter_el is None:
        _malformed("a Rule needs a Filter or a Prefix")
    if prefix_el is not None and v2:
        _invalid_request(
            "Base level prefix cannot be used in Lifecycle V2, prefixes are only supported in"
            " the Filter."
        )
    if filter_el is not None and not v2:
        _invalid_request("Filter element can only be used in Lifecycle V2.")
    if filter_el is not None:
        scope = _parse_filter(filter_el)
    else:
        scope = _Filter()
        scope.prefix = _text(prefix_el) or ""
    scope.check()
    expiration_el = _one(found, "Expiration")
    noncurrent_el = _one(found, "NoncurrentVersionExpiration")
    abort_el = _one(found, "AbortIncompleteMultipartUpload")
    transitions = bool(found.get("Transition") or found.get("NoncurrentVersionTransition"))
    if expiration_el is None and noncurrent_el is None and abort_el is None and not transitions:
        _invalid_request("At least one action needs to be specified in a rule")

    days: int | None = None
    date: float | None = None
    marker = False
    if expiration_el is not None:
        exp = _children(expiration_el)
        days_el, date_el = _one(exp, "Days"), _one(exp, "Date")
        marker_el = _one(exp, "ExpiredObjectDeleteMarker")
        if sum(x is not None for x in (days_el, date_el, marker_el)) != 1:
            _malformed(
                "an Expiration names exactly one of Date, Days and ExpiredObjectDeleteMarker"
            )
        days = _positive(
            _int(days_el, "Days"), "'Days' for Expiration action must be a positive integer"
        )
        if date_el is not None:
            date = _date(date_el)
        if marker_el is not None:
            flag = _text(marker_el)
            if flag not in ("true", "false"):
                _malformed("ExpiredObjectDeleteMarker must be true or false")
            marker = flag == "true"

    noncurrent_days: int | None = None
    newer: int | None = None
    if noncurrent_el is not None:
        nc = _children(noncurrent_el)
        noncurrent_days = _int(_one(nc, "NoncurrentDays"), "NoncurrentDays")
        if noncurrent_days is None:
            _malformed("a NoncurrentVersionExpiration needs NoncurrentDays")
        _positive(
            noncurrent_days,
            "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
        )
        newer = _int(_one(nc, "NewerNoncurrentVersions"), "NewerNoncurrentVersions")
        if newer is not None and not v2:
            _invalid_request("NewerNoncurrentVersions element can only be used in Lifecycle V2.")
        _positive(newer, "'NewerNoncurrentVersions' must be a positive integer")

    abort_days: int | None = None
    if abort_el is not None:
        abort_days = _int(_one(_children(abort_el), "DaysAfterInitiation"), "DaysAfterInitiation")
        if abort_days is None:
            _malformed("an AbortIncompleteMultipartUpload needs DaysAfterInitiation")
        _positive(
            abort_days,
            "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive"
            " integer",
        )

    sizes = scope.gt is not None or scope.lt is not None
    for action, present in (
        ("ExpiredObjectDeleteMarker", marker_el_given(expiration_el)),
        ("AbortIncompleteMultipartUpload", abort_el is not None),
    ):
        if present and scope.tags:
            _invalid_request(f"{action} cannot be specified with Tags.")
        if present and sizes:
            _invalid_request(f"{action} cannot be specified with Object Size.")

    rule = LifecycleRule(
        id=_text(_one(found, "ID")) or "",
        enabled=status == "Enabled",
        prefix=scope.prefix,
        legacy_prefix=prefix_el is not None,
        filter_and=scope.and_,
        tags=scope.tags,
        size_greater_than=scope.gt,
        size_less_than=scope.lt,
        expiration_days=days,
        expiration_date=date,
        expired_object_delete_marker=marker,
        noncurrent_days=noncurrent_days,
        newer_noncurrent_versions=newer,
        abort_days=abort_days,
    )
    return rule, transitions


def _expires(r: LifecycleRule) -> bool:
    return r.expiration_days is not None or r.expiration_date is not None


def _expires_noncurrent(r: LifecycleRule) -> bool:
    return r.noncurrent_days is not None


def _aborts(r: LifecycleRule) -> bool:
    return r.abort_days is not None


_ACTIONS: tuple[tuple[str, Callable[[LifecycleRule], bool]], ...] = (
    ("Expiration", _expires),
    ("NoncurrentVersionExpiration", _expires_noncurrent),
    ("AbortIncompleteMultipartUpload", _aborts),
)


def _check_overlaps(rules: list[LifecycleRule]) -> None:
    """Lifecycle V1 (rule-level prefixes): no two rules whose prefixes overlap (one starts
    the other) may take the same kind of action, as S3 refuses."""
    for action, takes in _ACTIONS:
        prefixes = sorted(r.prefix for r in rules if takes(r))
        for a, b in itertools.pairwise(prefixes):
            if b.startswith(a):
                _invalid_request(
                    f"Found overlapping prefixes '{a}' and '{b}' for same action type '{action}'"
                )


def marker_el_given(expiration_el: ET.Element | None) -> bool:
    """Whether an Expiration names ExpiredObjectDeleteMarker (true or false: S3 refuses
    either with a tag or size filter)."""
    return expiration_el is not None and any(
        c.tag == "ExpiredObjectDeleteMarker" for c in expiration_el
    )


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def new_rule_id() -> str:
    """An ID for a rule given none, as S3 makes one: base64 of a random UUID's text."""
    return base64.b64encode(str(uuid.uuid4()).encode()).decode().rstrip("=")


def parse_lifecycle(body: bytes) -> list[LifecycleRule]:
    """A ``LifecycleConfiguration`` body as checked rules, each with an ID."""
    root = _parse(body, MAX_LIFECYCLE_BODY, "LifecycleConfiguration")
    rule_els = [el for el in root if el.tag == "Rule"]
    if not rule_els:
        _malformed("a LifecycleConfiguration needs at least one Rule")
    if len(rule_els) > MAX_RULES:
        _invalid_request(
            f"The number of lifecycle rules must not exceed the allowed limit of {MAX_RULES} rules."
        )
    ids: set[str] = set()
    for el in rule_els:
        rule_id = _text(_one(_children(el), "ID")) or ""
        if not rule_id:
            continue
        if _utf16_units(rule_id) > MAX_ID_UNITS:
            _invalid_argument(f"ID length should not exceed allowed limit of {MAX_ID_UNITS}")
        if rule_id in ids:
            _invalid_argument("Rule ID must be unique. Found same ID for more than one rule")
        ids.add(rule_id)
    v2 = any(c.tag == "Filter" for c in rule_els[0])
    rules: list[LifecycleRule] = []
    transitions = False
    for el in rule_els:
        rule, has_transitions = _rule(el, v2)
        transitions = transitions or has_transitions
        rules.append(rule)
    if not v2:
        _check_overlaps(rules)
    if transitions:
        raise s3_error(
            "InvalidStorageClass",
            "skymesh keeps every object in one storage class (STANDARD) and has no other to"
            " move objects to: lifecycle Transition and NoncurrentVersionTransition actions"
            " are not supported",
        )
    out = []
    for rule in rules:
        if not rule.id:
            rule_id = new_rule_id()
            while rule_id in ids:
                rule_id = new_rule_id()
            ids.add(rule_id)
            rule = msgspec.structs.replace(rule, id=rule_id)
        out.append(rule)
    return out


# -- rendering ---------------------------------------------------------------------------


def _tag_xml(tag: Tag) -> str:
    return f"<Tag>{_el('Key', tag.key)}{_el('Value', tag.value)}</Tag>"


def _filter_xml(r: LifecycleRule) -> str:
    if r.legacy_prefix:
        return _el("Prefix", r.prefix)
    parts = []
    if r.prefix or r.filter_and:
        parts.append(_el("Prefix", r.prefix))
    parts.extend(_tag_xml(t) for t in r.tags)
    if r.size_greater_than is not None:
        parts.append(f"<ObjectSizeGreaterThan>{r.size_greater_than}</ObjectSizeGreaterThan>")
    if r.size_less_than is not None:
        parts.append(f"<ObjectSizeLessThan>{r.size_less_than}</ObjectSizeLessThan>")
    inner = "".join(parts)
    return f"<Filter><And>{inner}</And></Filter>" if r.filter_and else f"<Filter>{inner}</Filter>"


def lifecycle_xml(rules: list[LifecycleRule]) -> bytes:
    """GetBucketLifecycleConfiguration's answer: the rules as they were put."""
    body = []
    for r in rules:
        parts = ["<Rule>", _el("ID", r.id), _filter_xml(r)]
        parts.append(_el("Status", "Enabled" if r.enabled else "Disabled"))
        if r.expiration_days is not None:
            parts.append(f"<Expiration><Days>{r.expiration_days}</Days></Expiration>")
        elif r.expiration_date is not None:
            parts.append(f"<Expiration>{_el('Date', iso8601(r.expiration_date))}</Expiration>")
        elif r.expired_object_delete_marker:
            parts.append(
                "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
                "</Expiration>"
            )
        if r.noncurrent_days is not None:
            newer = (
                ""
                if r.newer_noncurrent_versions is None
                else f"<NewerNoncurrentVersions>{r.newer_noncurrent_versions}"
                "</NewerNoncurrentVersions>"
            )
            parts.append(
                f"<NoncurrentVersionExpiration><NoncurrentDays>{r.noncurrent_days}"
                f"</NoncurrentDays>{newer}</NoncurrentVersionExpiration>"
            )
        if r.abort_days is not None:
            parts.append(
                "<AbortIncompleteMultipartUpload><DaysAfterInitiation>"
                f"{r.abort_days}</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
            )
        parts.append("</Rule>")
        body.append("".join(parts))
    return _doc("LifecycleConfiguration", body)
