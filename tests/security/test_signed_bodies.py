"""A body swapped under a valid signature is refused, for every S3 operation with a body.

Each operation is signed by botocore's signer for one body (``signed``) and sent with
another (``swapped``): the attack of issue 13, where a DeleteObjects signed for
``tmp`` deleted ``keep-me`` and a PutBucketAcl signed private made a bucket public.
Every way a client can tie a body to its signature is tried (a signed SHA-256,
signed ``aws-chunked`` chunks, a signed Content-MD5 or ``x-amz-checksum-*`` with
``UNSIGNED-PAYLOAD``), and for control bodies the ways that tie nothing (an
unsigned payload with no digest, or with a digest the signature does not cover).
Each must answer S3's error and leave the state as it was; then boto3 does the
honest request, which must still work.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client
from tests.planet import s3raw

UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _error_code(call: Callable[[], object]) -> str:
    try:
        call()
    except ClientError as e:
        return str(e.response["Error"]["Code"])
    return ""


# ---- the ways to send a body that is not the one signed ------------------------------


@dataclass(frozen=True)
class Tamper:
    """One way of sending ``swapped`` under a signature made for ``signed``."""

    name: str
    code: str  # S3's answer
    status: int
    send: Callable[[PlanetThread, str, str, bytes, bytes], s3raw.Reply]
    control_only: bool = False  # a data PUT may come unvouched for, as in S3


def _sha256(p: PlanetThread, method: str, path: str, signed: bytes, swapped: bytes) -> s3raw.Reply:
    s = s3raw.sign(p, method, path, hashlib.sha256(signed).hexdigest())
    return s3raw.send(p, method, path, s.headers, swapped)


def _one_chunk(signed: s3raw.Signed, data: bytes, sig_data: bytes) -> bytes:
    """``data`` framed as one signed chunk whose signature was computed over ``sig_data``."""
    first = s3raw.chunk_signature(signed, signed.seed, sig_data)
    last = s3raw.chunk_signature(signed, first, b"")
    return (
        f"{len(data):x};chunk-signature={first}\r\n".encode()
        + data
        + f"\r\n0;chunk-signature={last}\r\n\r\n".encode()
    )


def _chunks(p: PlanetThread, method: str, path: str, signed: bytes, swapped: bytes) -> s3raw.Reply:
    headers = s3raw.chunked_headers(len(signed), s3raw.signed_chunks_length([signed]))
    s = s3raw.sign(p, method, path, STREAMING, headers)
    return s3raw.send(p, method, path, s.headers, _one_chunk(s, swapped, signed))


def _signed_md5(
    p: PlanetThread, method: str, path: str, signed: bytes, swapped: bytes
) -> s3raw.Reply:
    s = s3raw.sign(p, method, path, UNSIGNED, {"Content-MD5": _md5(signed)})
    return s3raw.send(p, method, path, s.headers, swapped)


def _signed_crc(
    p: PlanetThread, method: str, path: str, signed: bytes, swapped: bytes
) -> s3raw.Reply:
    s = s3raw.sign(p, method, path, UNSIGNED, {"x-amz-checksum-crc32": _crc32(signed)})
    return s3raw.send(p, method, path, s.headers, swapped)


def _bare(p: PlanetThread, method: str, path: str, signed: bytes, swapped: bytes) -> s3raw.Reply:
    s = s3raw.sign(p, method, path, UNSIGNED)
    return s3raw.send(p, method, path, s.headers, swapped)


def _unsigned_md5(
    p: PlanetThread, method: str, path: str, signed: bytes, swapped: bytes
) -> s3raw.Reply:
    """An attacker's Content-MD5, matching the swapped body, beside the signature."""
    s = s3raw.sign(p, method, path, UNSIGNED)
    return s3raw.send(p, method, path, {**s.headers, "Content-MD5": _md5(swapped)}, swapped)


def _unsigned_trailer(
    p: PlanetThread, method: str, path: str, signed: bytes, swapped: bytes
) -> s3raw.Reply:
    """An unsigned aws-chunked body whose checksum trailer the attacker computes."""
    body = s3raw.unsigned_chunks([swapped], {"x-amz-checksum-crc32": _crc32(swapped)})
    headers = s3raw.chunked_headers(len(swapped), len(body), x_amz_trailer="x-amz-checksum-crc32")
    s = s3raw.sign(p, method, path, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers)
    return s3raw.send(p, method, path, s.headers, body)


TAMPERS = (
    Tamper("signed-sha256", "XAmzContentSHA256Mismatch", 400, _sha256),
    Tamper("signed-chunks", "SignatureDoesNotMatch", 403, _chunks),
    Tamper("signed-content-md5", "BadDigest", 400, _signed_md5),
    Tamper("signed-checksum", "BadDigest", 400, _signed_crc),
    Tamper("unsigned-no-digest", "InvalidRequest", 400, _bare, control_only=True),
    Tamper("unsigned-content-md5", "AccessDenied", 403, _unsigned_md5, control_only=True),
    Tamper("unsigned-trailer", "InvalidRequest", 400, _unsigned_trailer, control_only=True),
)


# ---- the operations ------------------------------------------------------------------


@dataclass
class Operation:
    name: str
    method: str
    setup: Callable[[S3Client], str]  # prepares the state, answers the request path
    signed: Callable[[str], bytes]  # the owner's body (given the project id)
    swapped: Callable[[str], bytes]  # the attacker's
    state: Callable[[S3Client], Any]  # what the request would change
    honest: Callable[[S3Client], None]  # the owner's request, through boto3
    after: Any  # the state after the honest request
    control: bool = True  # a control body (XML), not object data


def _acl_policy(owner: str, public: bool) -> bytes:
    grants = (
        '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:type="CanonicalUser"><ID>{owner}</ID></Grantee>'
        "<Permission>FULL_CONTROL</Permission></Grant>"
    )
    if public:
        grants += (
            '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:type="Group"><URI>{ALL_USERS}</URI></Grantee><Permission>READ</Permission></Grant>'
        )
    return (
        f"<AccessControlPolicy {NS}><Owner><ID>{owner}</ID></Owner>"
        f"<AccessControlList>{grants}</AccessControlList></AccessControlPolicy>"
    ).encode()


def _public(grants: list[dict[str, Any]]) -> bool:
    return any(g["Grantee"].get("URI") == ALL_USERS for g in grants)


def _tagging(value: str) -> Callable[[str], bytes]:
    return lambda _owner: (
        f"<Tagging {NS}><TagSet><Tag><Key>team</Key><Value>{value}</Value></Tag></TagSet></Tagging>"
    ).encode()


def _cors(origin: str) -> Callable[[str], bytes]:
    return lambda _owner: (
        f"<CORSConfiguration {NS}><CORSRule><AllowedOrigin>{origin}</AllowedOrigin>"
        "<AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>"
    ).encode()


def _delete(key: str) -> Callable[[str], bytes]:
    return lambda _owner: (f"<Delete {NS}><Object><Key>{key}</Key></Object></Delete>").encode()


def _location(region: str) -> Callable[[str], bytes]:
    return lambda _owner: (
        f"<CreateBucketConfiguration {NS}><LocationConstraint>{region}</LocationConstraint>"
        "</CreateBucketConfiguration>"
    ).encode()


def _versioning(status: str) -> Callable[[str], bytes]:
    return lambda _owner: (
        f"<VersioningConfiguration {NS}><Status>{status}</Status></VersioningConfiguration>"
    ).encode()


def _keys(s3: S3Client, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _bucket(name: str, path: str = "") -> Callable[[S3Client], str]:
    def setup(s3: S3Client) -> str:
        s3.create_bucket(Bucket=name)
        return f"/{name}{path}"

    return setup


def _with_object(name: str, path: str) -> Callable[[S3Client], str]:
    def setup(s3: S3Client) -> str:
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="k", Body=b"x")
        return f"/{name}/k{path}"

    return setup


def _bucket_tags(s3: S3Client, bucket: str) -> Any:
    try:
        return s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    except ClientError as e:
        return e.response["Error"]["Code"]


def _bucket_cors(s3: S3Client) -> Any:
    try:
        return s3.get_bucket_cors(Bucket="sb-cors")["CORSRules"][0]["AllowedOrigins"]
    except ClientError as e:
        return e.response["Error"]["Code"]


def _location_of(s3: S3Client) -> Any:
    try:
        return s3.get_bucket_location(Bucket="sb-create").get("LocationConstraint")
    except ClientError as e:
        return e.response["Error"]["Code"]


def _delete_setup(s3: S3Client) -> str:
    s3.create_bucket(Bucket="sb-delete")
    for key in ("tmp", "keep-me"):
        s3.put_object(Bucket="sb-delete", Key=key, Body=b"x")
    return "/sb-delete?delete"


PART1 = b"1" * (5 * 1024 * 1024)  # all parts but the last must be at least 5 MiB
_uploads: dict[str, str] = {}


def _complete_setup(s3: S3Client) -> str:
    s3.create_bucket(Bucket="sb-complete")
    upload = s3.create_multipart_upload(Bucket="sb-complete", Key="big")["UploadId"]
    _uploads["complete"] = upload
    for n, data in ((1, PART1), (2, b"tail")):
        etag = s3.upload_part(
            Bucket="sb-complete", Key="big", UploadId=upload, PartNumber=n, Body=data
        )["ETag"]
        _uploads[f"etag{n}"] = etag
    return f"/sb-complete/big?uploadId={quote(upload, safe='')}"


def _complete_body(parts: tuple[int, ...]) -> Callable[[str], bytes]:
    def body(_owner: str) -> bytes:
        items = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{_uploads[f'etag{n}']}</ETag></Part>"
            for n in parts
        )
        return f"<CompleteMultipartUpload {NS}>{items}</CompleteMultipartUpload>".encode()

    return body


def _complete_state(s3: S3Client) -> Any:
    try:
        return s3.head_object(Bucket="sb-complete", Key="big")["ContentLength"]
    except ClientError as e:
        return e.response["Error"]["Code"]


def _complete_honest(s3: S3Client) -> None:
    s3.complete_multipart_upload(
        Bucket="sb-complete",
        Key="big",
        UploadId=_uploads["complete"],
        MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": _uploads[f"etag{n}"]} for n in (1, 2)]
        },
    )


def _part_setup(s3: S3Client) -> str:
    s3.create_bucket(Bucket="sb-part")
    upload = s3.create_multipart_upload(Bucket="sb-part", Key="p")["UploadId"]
    _uploads["part"] = upload
    return f"/sb-part/p?partNumber=1&uploadId={quote(upload, safe='')}"


def _parts(s3: S3Client) -> list[int]:
    listed = s3.list_parts(Bucket="sb-part", Key="p", UploadId=_uploads["part"])
    return [p["Size"] for p in listed.get("Parts", [])]


def _object_data(s3: S3Client) -> Any:
    try:
        return s3.get_object(Bucket="sb-put", Key="obj")["Body"].read()
    except ClientError as e:
        return e.response["Error"]["Code"]


OPERATIONS = (
    Operation(
        "CreateBucket",
        "PUT",
        lambda _s3: "/sb-create",
        _location("eu-west"),
        _location("ap-south"),
        _location_of,
        lambda s3: s3.create_bucket(
            Bucket="sb-create", CreateBucketConfiguration={"LocationConstraint": "eu-west"}
        ),
        "eu-west",
    ),
    Operation(
        "PutBucketVersioning",
        "PUT",
        _bucket("sb-versioning", "?versioning"),
        _versioning("Suspended"),
        _versioning("Enabled"),
        lambda s3: s3.get_bucket_versioning(Bucket="sb-versioning").get("Status"),
        lambda s3: s3.put_bucket_versioning(
            Bucket="sb-versioning", VersioningConfiguration={"Status": "Suspended"}
        ),
        "Suspended",
    ),
    Operation(
        "PutBucketAcl",
        "PUT",
        _bucket("sb-bucket-acl", "?acl"),
        lambda owner: _acl_policy(owner, public=False),
        lambda owner: _acl_policy(owner, public=True),
        lambda s3: _public(s3.get_bucket_acl(Bucket="sb-bucket-acl")["Grants"]),
        lambda s3: s3.put_bucket_acl(Bucket="sb-bucket-acl", ACL="public-read"),
        True,
    ),
    Operation(
        "PutObjectAcl",
        "PUT",
        _with_object("sb-object-acl", "?acl"),
        lambda owner: _acl_policy(owner, public=False),
        lambda owner: _acl_policy(owner, public=True),
        lambda s3: _public(s3.get_object_acl(Bucket="sb-object-acl", Key="k")["Grants"]),
        lambda s3: s3.put_object_acl(Bucket="sb-object-acl", Key="k", ACL="public-read"),
        True,
    ),
    Operation(
        "PutBucketTagging",
        "PUT",
        _bucket("sb-bucket-tags", "?tagging"),
        _tagging("blue"),
        _tagging("evil"),
        lambda s3: _bucket_tags(s3, "sb-bucket-tags"),
        lambda s3: s3.put_bucket_tagging(
            Bucket="sb-bucket-tags", Tagging={"TagSet": [{"Key": "team", "Value": "blue"}]}
        ),
        [{"Key": "team", "Value": "blue"}],
    ),
    Operation(
        "PutObjectTagging",
        "PUT",
        _with_object("sb-object-tags", "?tagging"),
        _tagging("blue"),
        _tagging("evil"),
        lambda s3: s3.get_object_tagging(Bucket="sb-object-tags", Key="k")["TagSet"],
        lambda s3: s3.put_object_tagging(
            Bucket="sb-object-tags",
            Key="k",
            Tagging={"TagSet": [{"Key": "team", "Value": "blue"}]},
        ),
        [{"Key": "team", "Value": "blue"}],
    ),
    Operation(
        "PutBucketCors",
        "PUT",
        _bucket("sb-cors", "?cors"),
        _cors("https://good.example"),
        _cors("*"),
        _bucket_cors,
        lambda s3: s3.put_bucket_cors(
            Bucket="sb-cors",
            CORSConfiguration={
                "CORSRules": [
                    {"AllowedOrigins": ["https://good.example"], "AllowedMethods": ["GET"]}
                ]
            },
        ),
        ["https://good.example"],
    ),
    Operation(
        "DeleteObjects",
        "POST",
        _delete_setup,
        _delete("tmp"),
        _delete("keep-me"),
        lambda s3: _keys(s3, "sb-delete"),
        lambda s3: s3.delete_objects(Bucket="sb-delete", Delete={"Objects": [{"Key": "tmp"}]}),
        ["keep-me"],
    ),
    Operation(
        "CompleteMultipartUpload",
        "POST",
        _complete_setup,
        _complete_body((1, 2)),
        _complete_body((2,)),
        _complete_state,
        _complete_honest,
        len(PART1) + 4,
    ),
    Operation(
        "PutObject",
        "PUT",
        _bucket("sb-put", "/obj"),
        lambda _owner: b"the owner's data",
        lambda _owner: b"an attacker's data",
        _object_data,
        lambda s3: s3.put_object(Bucket="sb-put", Key="obj", Body=b"the owner's data"),
        b"the owner's data",
        control=False,
    ),
    Operation(
        "UploadPart",
        "PUT",
        _part_setup,
        lambda _owner: b"the owner's part",
        lambda _owner: b"an attacker's part!",
        _parts,
        lambda s3: s3.upload_part(
            Bucket="sb-part",
            Key="p",
            UploadId=_uploads["part"],
            PartNumber=1,
            Body=b"the owner's part",
        ),
        [len(b"the owner's part")],
        control=False,
    ),
)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_swapped_body_is_refused_and_changes_nothing(
    planet: PlanetThread, s3: S3Client, op: Operation
) -> None:
    cred = planet.planet.credential
    assert cred is not None
    path = op.setup(s3)
    signed, swapped = op.signed(cred.project_id), op.swapped(cred.project_id)
    # one length for both, so that a signed Content-Length cannot give the swap away
    width = max(len(signed), len(swapped))
    signed, swapped = signed.ljust(width), swapped.ljust(width)
    before = op.state(s3)
    for tamper in TAMPERS:
        if tamper.control_only and not op.control:
            continue
        reply = tamper.send(planet, op.method, path, signed, swapped)
        assert (reply.status, reply.code) == (tamper.status, tamper.code), (
            tamper.name,
            reply.body[:300],
        )
        assert op.state(s3) == before, f"{tamper.name} changed {op.name}"
    op.honest(s3)
    assert op.state(s3) == op.after


# ---- the honest ways still work -----------------------------------------------------


@pytest.fixture(scope="module")
def honest_bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket="sb-honest")
    return "sb-honest"


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda p, m, path, body: _sha256(p, m, path, body, body), id="sha256"),
        pytest.param(lambda p, m, path, body: _chunks(p, m, path, body, body), id="chunks"),
        pytest.param(lambda p, m, path, body: _signed_md5(p, m, path, body, body), id="md5"),
        pytest.param(lambda p, m, path, body: _signed_crc(p, m, path, body, body), id="crc32"),
    ],
)
def test_control_body_vouched_for_is_accepted(
    planet: PlanetThread, s3: S3Client, honest_bucket: str, send: Callable[..., s3raw.Reply]
) -> None:
    """Each way a client binds a control body to its signature works unchanged."""
    value = hashlib.sha1(repr(send).encode()).hexdigest()[:12]
    reply = send(planet, "PUT", f"/{honest_bucket}?tagging", _tagging(value)(""))
    assert reply.status in (200, 204), reply.body
    assert _bucket_tags(s3, honest_bucket) == [{"Key": "team", "Value": value}]


def test_aws_cli_style_unsigned_payload_with_md5_works(planet: PlanetThread, s3: S3Client) -> None:
    """DeleteObjects as an SDK sends it over https: UNSIGNED-PAYLOAD and a signed Content-MD5."""
    s3.create_bucket(Bucket="sb-md5")
    s3.put_object(Bucket="sb-md5", Key="gone", Body=b"x")
    body = _delete("gone")("")
    reply = _signed_md5(planet, "POST", "/sb-md5?delete", body, body)
    assert reply.status == 200, reply.body
    assert _keys(s3, "sb-md5") == []
    assert _error_code(lambda: s3.head_object(Bucket="sb-md5", Key="gone")) == "404"
