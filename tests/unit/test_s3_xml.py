"""S3 XML: what we render must parse as AWS's in botocore; what we parse must be safe."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote_plus

import botocore.session
import pytest
from botocore.handlers import (
    decode_list_object,
    decode_list_object_v2,
    parse_get_bucket_location,
)
from botocore.parsers import create_parser
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.gateway.s3.errors import S3Error, s3_error
from skymesh.gateway.s3.xml import (
    MAX_DELETE_BODY,
    S3_NS,
    ObjectEntry,
    PartEntry,
    UploadEntry,
    complete_multipart_xml,
    copy_object_result_xml,
    copy_part_result_xml,
    delete_result_xml,
    error_xml,
    escape,
    http_date,
    initiate_multipart_xml,
    iso8601,
    list_buckets_xml,
    list_multipart_uploads_xml,
    list_objects_v1_xml,
    list_objects_v2_xml,
    list_parts_xml,
    location_xml,
    parse_complete_multipart,
    parse_create_bucket,
    parse_delete_objects,
    parse_http_date,
    versioning_xml,
)

MODEL = botocore.session.get_session().get_service_model("s3")
PARSER = create_parser("rest-xml")
T0 = 1255369830.123456  # 2009-10-12T17:50:30.123Z
NS = {"s3": S3_NS}


def boto_parse(operation: str, body: bytes, status: int = 200) -> dict[str, Any]:
    """Parse as botocore parses a real S3 response to ``operation``."""
    shape = MODEL.operation_model(operation).output_shape
    parsed: dict[str, Any] = PARSER.parse(
        {"body": body, "headers": {}, "status_code": status}, shape
    )
    return parsed


def root(body: bytes) -> ET.Element:
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(body)


# -- helpers --------------------------------------------------------------------------------


def test_times() -> None:
    assert iso8601(T0) == "2009-10-12T17:50:30.123Z"
    assert iso8601(0) == "1970-01-01T00:00:00.000Z"
    assert iso8601(1.9999) == "1970-01-01T00:00:01.999Z"
    assert http_date(T0) == "Mon, 12 Oct 2009 17:50:30 GMT"
    assert parse_http_date("Mon, 12 Oct 2009 17:50:30 GMT") == 1255369830
    assert parse_http_date("Monday, 12-Oct-09 17:50:30 GMT") in (1255369830, None)
    assert parse_http_date("not a date") is None
    assert parse_http_date("") is None


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", "plain"),
        ("a&b<c>d", "a&amp;b&lt;c&gt;d"),
        ('"etag"', "&quot;etag&quot;"),
        ("it's", "it&apos;s"),
        ("\x01\x1f", "&#x1;&#x1F;"),
        ("a\rb\nc\td", "a&#xD;b\nc\td"),
        ("日本 🙂", "日本 🙂"),
    ],
)
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", min_codepoint=0x20) | st.sampled_from("\t\n\r")))
def test_escape_round_trips_through_a_parser(text: str) -> None:
    # U+FFFE/U+FFFF are not XML characters at all; S3 keys cannot use them either.
    text = text.replace("\ufffe", "").replace("\uffff", "")
    assert (ET.fromstring(f"<a>{escape(text)}</a>".encode()).text or "") == text


# -- errors -----------------------------------------------------------------------------------


def test_error_xml() -> None:
    err = s3_error("NoSuchKey", Key="a&b")
    body = error_xml(err, "/bucket/a&b", "REQ123")
    el = root(body)
    assert el.tag == "Error"  # no namespace, as AWS
    assert [c.tag for c in el] == ["Code", "Message", "Key", "Resource", "RequestId"]
    assert el.findtext("Code") == "NoSuchKey"
    assert el.findtext("Key") == "a&b"
    assert el.findtext("Resource") == "/bucket/a&b"
    parsed = boto_parse("GetObject", body, 404)
    assert parsed["Error"]["Code"] == "NoSuchKey"
    assert parsed["Error"]["Message"] == "The specified key does not exist."


def test_error_xml_resource_override_and_none() -> None:
    err = S3Error("AccessDenied", "Request has expired", resource="/x", fields={"X-Amz-Expires": 5})
    el = root(error_xml(err, "/ignored", "R"))
    assert el.findtext("Resource") == "/x"
    assert el.findtext("X-Amz-Expires") == "5"
    el = root(error_xml(s3_error("InternalError"), None, "R"))
    assert el.find("Resource") is None


# -- listings ---------------------------------------------------------------------------------

WEIRD_KEYS = ["a b", "a+b", "ü/ñ", "x&y<z>", "tab\tkey", "per%cent", "q?h#", "sp ace/", "~tilde"]


def _entries(keys: list[str], owner: tuple[str, str] | None = None) -> list[ObjectEntry]:
    return [
        ObjectEntry(key=k, last_modified=T0 + i, etag=f"{i:032x}", size=i * 10, owner=owner)
        for i, k in enumerate(keys)
    ]


def test_list_objects_v2_parses_in_botocore() -> None:
    body = list_objects_v2_xml(
        bucket="bkt",
        prefix="p/",
        delimiter="/",
        max_keys=1000,
        is_truncated=True,
        entries=_entries(["p/a", "p/b&c"]),
        common_prefixes=["p/d/"],
        continuation_token="tok1",
        next_continuation_token="tok2",
        start_after="p/",
    )
    parsed = boto_parse("ListObjectsV2", body)
    assert parsed["Name"] == "bkt"
    assert parsed["Prefix"] == "p/" and parsed["Delimiter"] == "/"
    assert parsed["KeyCount"] == 3 and parsed["MaxKeys"] == 1000
    assert parsed["IsTruncated"] is True
    assert parsed["ContinuationToken"] == "tok1" and parsed["NextContinuationToken"] == "tok2"
    assert parsed["StartAfter"] == "p/"
    assert [c["Key"] for c in parsed["Contents"]] == ["p/a", "p/b&c"]
    first = parsed["Contents"][0]
    assert first["ETag"] == '"' + "0" * 32 + '"'
    assert first["Size"] == 0 and first["StorageClass"] == "STANDARD"
    assert first["LastModified"].timestamp() == pytest.approx(1255369830.123)
    assert "Owner" not in first
    assert parsed["CommonPrefixes"] == [{"Prefix": "p/d/"}]


def test_list_objects_v2_url_encoding_round_trips_in_botocore() -> None:
    body = list_objects_v2_xml(
        bucket="bkt",
        prefix="a b+",
        delimiter="&",
        max_keys=5,
        is_truncated=False,
        entries=_entries(WEIRD_KEYS, owner=("id1", "name1")),
        common_prefixes=["a b+c&"],
        start_after="ü x",
        encoding_type="url",
    )
    key = root(body).findtext("s3:Contents/s3:Key", namespaces=NS)
    assert key is not None and b" " not in key.encode()
    parsed = boto_parse("ListObjectsV2", body)
    assert parsed["EncodingType"] == "url"
    decode_list_object_v2(parsed, {"encoding_type_auto_set": True})
    assert [c["Key"] for c in parsed["Contents"]] == WEIRD_KEYS
    assert parsed["Prefix"] == "a b+" and parsed["Delimiter"] == "&"
    assert parsed["StartAfter"] == "ü x"
    assert parsed["CommonPrefixes"] == [{"Prefix": "a b+c&"}]
    assert parsed["Contents"][0]["Owner"] == {"ID": "id1", "DisplayName": "name1"}


def test_list_objects_v1_parses_in_botocore() -> None:
    body = list_objects_v1_xml(
        bucket="bkt",
        prefix="",
        delimiter="/",
        max_keys=2,
        is_truncated=True,
        entries=_entries(WEIRD_KEYS[:2], owner=("o", "n")),
        common_prefixes=["c/"],
        marker="m a",
        next_marker="a+b",
        encoding_type="url",
    )
    parsed = boto_parse("ListObjects", body)
    decode_list_object(parsed, {"encoding_type_auto_set": True})
    assert parsed["Marker"] == "m a" and parsed["NextMarker"] == "a+b"
    assert [c["Key"] for c in parsed["Contents"]] == WEIRD_KEYS[:2]
    assert parsed["IsTruncated"] is True and parsed["MaxKeys"] == 2
    assert unquote_plus(parsed["Prefix"]) == ""


def test_list_objects_empty() -> None:
    body = list_objects_v2_xml(
        bucket="b", prefix="", delimiter=None, max_keys=1000, is_truncated=False, entries=[]
    )
    parsed = boto_parse("ListObjectsV2", body)
    assert parsed["KeyCount"] == 0 and "Contents" not in parsed and "Delimiter" not in parsed


def test_control_characters_in_keys_need_url_encoding() -> None:
    """Keys with control characters render as AWS does (character references); with
    encoding-type=url they survive any XML parser."""
    keys = ["a\x01b", "c\rd"]
    body = list_objects_v2_xml(
        bucket="b",
        prefix="",
        delimiter=None,
        max_keys=10,
        is_truncated=False,
        entries=_entries(keys),
        encoding_type="url",
    )
    parsed = boto_parse("ListObjectsV2", body)
    decode_list_object_v2(parsed, {"encoding_type_auto_set": True})
    assert [c["Key"] for c in parsed["Contents"]] == keys
    raw = list_objects_v2_xml(
        bucket="b",
        prefix="",
        delimiter=None,
        max_keys=10,
        is_truncated=False,
        entries=_entries(keys),
    )
    assert b"<Key>a&#x1;b</Key>" in raw and b"<Key>c&#xD;d</Key>" in raw


def test_big_listing_is_fast() -> None:
    entries = _entries([f"photos/2024/{i:06d}-é&.jpg" for i in range(1000)], owner=("o", "n"))
    prefixes = [f"p{i}/" for i in range(100)]

    def render() -> bytes:
        return list_objects_v2_xml(
            bucket="b",
            prefix="photos/",
            delimiter="/",
            max_keys=1000,
            is_truncated=True,
            entries=entries,
            common_prefixes=prefixes,
            next_continuation_token="t",
            encoding_type="url",
        )

    best = min(_timed(render) for _ in range(5))
    # A few ms here; the bound is loose for slow shared CI machines.
    assert best < 0.05, best
    assert len(boto_parse("ListObjectsV2", render())["Contents"]) == 1000


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_list_buckets() -> None:
    body = list_buckets_xml("owner-id", "owner & co", [("a", T0), ("b-2", 0.0)])
    parsed = boto_parse("ListBuckets", body)
    assert parsed["Owner"] == {"ID": "owner-id", "DisplayName": "owner & co"}
    assert [b["Name"] for b in parsed["Buckets"]] == ["a", "b-2"]
    assert parsed["Buckets"][0]["CreationDate"].timestamp() == pytest.approx(1255369830.123)
    assert boto_parse("ListBuckets", list_buckets_xml("o", "o", []))["Buckets"] == []


@pytest.mark.parametrize(
    ("region", "expected"),
    [("", None), (None, None), ("us-east-1", None), ("eu-west-3", "eu-west-3")],
)
def test_location(region: str | None, expected: str | None) -> None:
    body = location_xml(region)
    el = root(body)
    assert el.tag == f"{{{S3_NS}}}LocationConstraint"
    assert (el.text or None) == expected
    parsed = boto_parse("GetBucketLocation", body)
    parse_get_bucket_location(parsed, SimpleNamespace(raw=object(), content=body))
    assert parsed["LocationConstraint"] == expected


@pytest.mark.parametrize("status", [None, "Enabled", "Suspended"])
def test_versioning(status: str | None) -> None:
    parsed = boto_parse("GetBucketVersioning", versioning_xml(status))
    assert parsed.get("Status") == status


def test_multipart_documents() -> None:
    parsed = boto_parse("CreateMultipartUpload", initiate_multipart_xml("b", "k&", "up/1"))
    assert (parsed["Bucket"], parsed["Key"], parsed["UploadId"]) == ("b", "k&", "up/1")
    parsed = boto_parse(
        "CompleteMultipartUpload", complete_multipart_xml("http://h/b/k", "b", "k", "abc-2")
    )
    assert parsed["ETag"] == '"abc-2"' and parsed["Location"] == "http://h/b/k"
    parsed = boto_parse(
        "CompleteMultipartUpload", complete_multipart_xml("http://h/b/k", "b", "k", '"q-2"')
    )
    assert parsed["ETag"] == '"q-2"'


def test_list_parts() -> None:
    body = list_parts_xml(
        bucket="b",
        key="k",
        upload_id="u",
        parts=[PartEntry(1, T0, "e1", 5 << 20), PartEntry(2, T0, '"e2"', 7)],
        part_number_marker=0,
        next_part_number_marker=2,
        max_parts=2,
        is_truncated=True,
        owner=("id", "name"),
    )
    parsed = boto_parse("ListParts", body)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parsed["Parts"]] == [
        (1, '"e1"', 5 << 20),
        (2, '"e2"', 7),
    ]
    assert parsed["NextPartNumberMarker"] == 2 and parsed["IsTruncated"] is True
    assert parsed["Initiator"]["ID"] == "id" and parsed["Owner"]["DisplayName"] == "name"
    assert parsed["MaxParts"] == 2 and parsed["UploadId"] == "u"


def test_list_multipart_uploads() -> None:
    body = list_multipart_uploads_xml(
        bucket="b",
        uploads=[UploadEntry("a b", "u1", T0, owner=("i", "n")), UploadEntry("c", "u2", T0)],
        prefix="",
        delimiter="/",
        next_key_marker="c",
        next_upload_id_marker="u2",
        max_uploads=2,
        is_truncated=True,
        common_prefixes=["d/"],
        encoding_type="url",
    )
    parsed = boto_parse("ListMultipartUploads", body)
    assert [u["UploadId"] for u in parsed["Uploads"]] == ["u1", "u2"]
    assert unquote_plus(parsed["Uploads"][0]["Key"]) == "a b"
    assert parsed["NextKeyMarker"] == "c" and parsed["NextUploadIdMarker"] == "u2"
    assert parsed["CommonPrefixes"] == [{"Prefix": "d/"}]
    assert parsed["Uploads"][0]["Initiated"].timestamp() == pytest.approx(1255369830.123)


def test_copy_results() -> None:
    parsed = boto_parse("CopyObject", copy_object_result_xml("abc", T0))
    assert parsed["CopyObjectResult"]["ETag"] == '"abc"'
    parsed = boto_parse("UploadPartCopy", copy_part_result_xml("def", T0))
    assert parsed["CopyPartResult"]["ETag"] == '"def"'
    assert parsed["CopyPartResult"]["LastModified"].timestamp() == pytest.approx(1255369830.123)


def test_delete_result() -> None:
    body = delete_result_xml(
        ["a", ("b", "v1"), ("c", ""), ("d", None)], [("e&", "AccessDenied", "Access Denied")]
    )
    parsed = boto_parse("DeleteObjects", body)
    assert parsed["Deleted"] == [
        {"Key": "a"},
        {"Key": "b", "VersionId": "v1"},
        {"Key": "c"},
        {"Key": "d"},
    ]
    assert parsed["Errors"] == [{"Key": "e&", "Code": "AccessDenied", "Message": "Access Denied"}]
    quiet = boto_parse("DeleteObjects", delete_result_xml(["a"], [], quiet=True))
    assert "Deleted" not in quiet and "Errors" not in quiet


# -- parsing request bodies -------------------------------------------------------------------


def _serialize(operation: str, params: dict[str, Any]) -> bytes:
    """The body botocore sends for ``operation``."""
    from botocore.serialize import create_serializer

    op = MODEL.operation_model(operation)
    body: bytes = create_serializer("rest-xml").serialize_to_request(params, op)["body"]
    return body


def test_parse_complete_from_botocore() -> None:
    body = _serialize(
        "CompleteMultipartUpload",
        {
            "Bucket": "b",
            "Key": "k",
            "UploadId": "u",
            "MultipartUpload": {
                "Parts": [
                    {"PartNumber": 1, "ETag": '"aaa"'},
                    {"PartNumber": 2, "ETag": "bbb", "ChecksumCRC32": "AAAAAA=="},
                ]
            },
        },
    )
    assert parse_complete_multipart(body) == [(1, "aaa"), (2, "bbb")]


def test_parse_complete_keeps_order_and_duplicates() -> None:
    body = (
        b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\n'
        b"  <Part><ETag>&quot;x&quot;</ETag><PartNumber> 3 </PartNumber></Part>\n"
        b"  <Part><PartNumber>1</PartNumber><ETag>y</ETag></Part>\n"
        b"  <Part><PartNumber>1</PartNumber><ETag>y</ETag></Part>\n"
        b"</CompleteMultipartUpload>"
    )
    assert parse_complete_multipart(body) == [(3, "x"), (1, "y"), (1, "y")]


def test_parse_delete_from_botocore() -> None:
    keys = [" spaced ", "a&b", "日本", "x/y/", "tab\t"]
    body = _serialize(
        "DeleteObjects",
        {
            "Bucket": "b",
            "Delete": {
                "Objects": [{"Key": k} for k in keys] + [{"Key": "v", "VersionId": "3"}],
                "Quiet": True,
            },
        },
    )
    quiet, objects = parse_delete_objects(body)
    assert quiet is True
    assert objects == [(k, None) for k in keys] + [("v", "3")]


def test_parse_delete_default_not_quiet_and_no_namespace() -> None:
    assert parse_delete_objects(b"<Delete><Object><Key>k</Key></Object></Delete>") == (
        False,
        [("k", None)],
    )


def test_parse_create_bucket() -> None:
    body = _serialize(
        "CreateBucket",
        {"Bucket": "b", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-3"}},
    )
    assert parse_create_bucket(body) == "eu-west-3"
    assert parse_create_bucket(b"") is None
    assert parse_create_bucket(b"  \n") is None
    assert parse_create_bucket(b"<CreateBucketConfiguration/>") is None
    assert (
        parse_create_bucket(
            b"<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>"
        )
        is None
    )


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Delete><Object><Key>&lol3;</Key></Object></Delete>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Delete><Object><Key>&xxe;</Key></Object></Delete>"""

UTF16_DOCTYPE = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x><Delete/>'.encode("utf-16")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<Delete>",
        b"<Delete><Object><Key>k</Key></Object></Delete>trailing",
        b"<Wrong><Object><Key>k</Key></Object></Wrong>",
        b"<Delete></Delete>",
        b"<Delete><Object><VersionId>1</VersionId></Object></Delete>",
        b"<Delete><Quiet>maybe</Quiet><Object><Key>k</Key></Object></Delete>",
        b"<Delete><Object><Key>&undefined;</Key></Object></Delete>",
        BILLION_LAUGHS,
        EXTERNAL,
        UTF16_DOCTYPE,
        b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
    ],
)
def test_parse_delete_rejects(body: bytes) -> None:
    with pytest.raises(S3Error) as info:
        parse_delete_objects(body)
    assert (info.value.code, info.value.status) == ("MalformedXML", 400)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<CompleteMultipartUpload/>", "MalformedXML"),
        (
            b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
            "MalformedXML",
        ),
        (
            b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
            "MalformedXML",
        ),
        (
            b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
            "MalformedXML",
        ),
        (
            b"<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
            "InvalidArgument",
        ),
        (
            b"<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
            "InvalidArgument",
        ),
        (b"<Delete/>", "MalformedXML"),
        (BILLION_LAUGHS.replace(b"Delete", b"CompleteMultipartUpload"), "MalformedXML"),
        (
            b"<CompleteMultipartUpload>" + b" " * (1024 * 1024) + b"</CompleteMultipartUpload>",
            "MaxMessageLengthExceeded",
        ),
    ],
)
def test_parse_complete_rejects(body: bytes, code: str) -> None:
    with pytest.raises(S3Error) as info:
        parse_complete_multipart(body)
    assert info.value.code == code


def test_size_caps() -> None:
    with pytest.raises(S3Error) as info:
        parse_delete_objects(b"<Delete>" + b" " * MAX_DELETE_BODY + b"</Delete>")
    assert info.value.code == "MaxMessageLengthExceeded"
    with pytest.raises(S3Error):
        parse_create_bucket(
            b"<CreateBucketConfiguration>" + b" " * 70000 + b"</CreateBucketConfiguration>"
        )
    with pytest.raises(S3Error) as info:
        parse_create_bucket(b"<CreateBucketConfiguration><LocationConstraint>")
    assert info.value.code == "MalformedXML"


def test_a_thousand_keys_parse_quickly() -> None:
    body = (
        b"<Delete>"
        + b"".join(b"<Object><Key>key-%d</Key></Object>" % i for i in range(1000))
        + b"</Delete>"
    )
    start = time.perf_counter()
    _, objects = parse_delete_objects(body)
    assert len(objects) == 1000
    assert time.perf_counter() - start < 0.5


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_parsers_never_crash(body: bytes) -> None:
    for parse in (parse_delete_objects, parse_complete_multipart, parse_create_bucket):
        try:
            parse(body)
        except S3Error as err:
            assert err.status == 400


def test_tuple_entries_and_default_owner() -> None:
    """Handlers may pass plain tuples; ``owner`` fills in for entries without one."""
    body = list_objects_v2_xml(
        bucket="b",
        prefix="",
        delimiter=None,
        max_keys=10,
        is_truncated=False,
        entries=[("k1", T0, "e1", 1), ObjectEntry("k2", T0, '"e2"', 2, owner=("x", "y"))],
        owner=("o", "n"),
    )
    parsed = boto_parse("ListObjectsV2", body)
    assert [(c["Key"], c["ETag"], c["Size"]) for c in parsed["Contents"]] == [
        ("k1", '"e1"', 1),
        ("k2", '"e2"', 2),
    ]
    assert [c["Owner"]["ID"] for c in parsed["Contents"]] == ["o", "x"]
    v1 = list_objects_v1_xml(
        bucket="b",
        prefix="",
        delimiter=None,
        max_keys=10,
        is_truncated=False,
        entries=[("k1", T0, "e1", 1)],
    )
    assert "Owner" not in boto_parse("ListObjects", v1)["Contents"][0]
    parts = boto_parse(
        "ListParts",
        list_parts_xml(bucket="b", key="k", upload_id="u", parts=[(1, T0, '"p1"', 5)]),
    )
    assert parts["Parts"][0]["ETag"] == '"p1"'
    uploads = boto_parse(
        "ListMultipartUploads",
        list_multipart_uploads_xml(bucket="b", uploads=[("k", "u1", T0)]),
    )
    assert uploads["Uploads"][0]["UploadId"] == "u1"
    assert uploads["Uploads"][0]["StorageClass"] == "STANDARD"


# -- S3 versioning and composite checksums ------------------------------------------------


def test_list_versions_xml() -> None:
    from skymesh.gateway.s3.xml import VersionItem, list_versions_xml

    body = list_versions_xml(
        bucket="b",
        prefix="p",
        delimiter="/",
        max_keys=3,
        is_truncated=True,
        items=[
            VersionItem("p1 & x", "v2", True, T0, delete_marker=True),
            VersionItem("p1 & x", "null", False, T0, etag="abc", size=7),
        ],
        common_prefixes=["p/"],
        key_marker="p0",
        version_id_marker="v0",
        next_key_marker="p1 & x",
        next_version_id_marker="null",
        owner=("id", "name"),
    )
    parsed = boto_parse("ListObjectVersions", body)
    assert parsed["DeleteMarkers"][0]["Key"] == "p1 & x"
    assert parsed["DeleteMarkers"][0]["IsLatest"] is True
    version = parsed["Versions"][0]
    assert (version["VersionId"], version["ETag"], version["Size"]) == ("null", '"abc"', 7)
    assert parsed["CommonPrefixes"] == [{"Prefix": "p/"}]
    assert (parsed["NextKeyMarker"], parsed["NextVersionIdMarker"]) == ("p1 & x", "null")
    assert (parsed["KeyMarker"], parsed["VersionIdMarker"], parsed["IsTruncated"]) == (
        "p0",
        "v0",
        True,
    )


def test_delete_result_with_markers_and_complete_with_checksum() -> None:
    parsed = boto_parse(
        "DeleteObjects", delete_result_xml([("k", None, "m1"), ("j", "v", None)], [])
    )
    assert parsed["Deleted"] == [
        {"Key": "k", "DeleteMarker": True, "DeleteMarkerVersionId": "m1"},
        {"Key": "j", "VersionId": "v"},
    ]
    body = complete_multipart_xml("http://h/b/k", "b", "k", "e-2", ("crc32c", "AAAAAA==-2"))
    parsed = boto_parse("CompleteMultipartUpload", body)
    assert parsed["ChecksumCRC32C"] == "AAAAAA==-2"


def test_parse_versioning_and_part_checksums() -> None:
    from skymesh.gateway.s3.xml import parse_complete_parts, parse_versioning

    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    assert parse_versioning(
        f"<VersioningConfiguration {ns}><Status>Suspended</Status></VersioningConfiguration>".encode()
    ) == ("Suspended")
    for bad, code in (
        (b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>", "MalformedXML"),
        (b"<VersioningConfiguration/>", "MalformedXML"),
        (
            b"<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Enabled</MfaDelete>"
            b"</VersioningConfiguration>",
            "NotImplemented",
        ),
    ):
        with pytest.raises(S3Error) as e:
            parse_versioning(bad)
        assert e.value.code == code
    body = (
        b'<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"a"</ETag>'
        b"<ChecksumSHA256>c2hh</ChecksumSHA256></Part>"
        b"<Part><PartNumber>2</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>"
    )
    assert parse_complete_parts(body) == [(1, "a", ("sha256", "c2hh")), (2, "b", None)]
