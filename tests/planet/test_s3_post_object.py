"""PostObject: browser form uploads signed by boto3's ``generate_presigned_post``,
posted as a browser would (``multipart/form-data``, the file last)."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
import urllib3
from botocore.exceptions import ClientError

from skymesh.config import GatewayConfig
from skymesh.gateway.service import GatewayService
from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client, random_bytes

BUCKET = "forms"
ORIGIN = "https://app.example.com"
_http = urllib3.PoolManager(retries=False)

TAGGING = "<Tagging><TagSet><Tag><Key>team</Key><Value>web</Value></Tag></TagSet></Tagging>"


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    def text(self, name: str) -> str:
        """The text of the answer's ``name`` element (any namespace), "" when absent."""
        if not self.body:
            return ""
        for el in ElementTree.fromstring(self.body).iter():
            if el.tag.rpartition("}")[2] == name:
                return el.text or ""
        return ""

    @property
    def code(self) -> str:
        return self.text("Code")

    @property
    def message(self) -> str:
        return self.text("Message")


def post(
    url: str,
    fields: dict[str, str],
    data: bytes | None = b"hello",
    filename: str = "hello.txt",
    headers: dict[str, str] | None = None,
) -> Reply:
    """The form as a browser sends it: the fields in order, then the file."""
    parts: list[tuple[str, Any]] = list(fields.items())
    if data is not None:
        parts.append(("file", (filename, data, "application/octet-stream")))
    body, content_type = urllib3.encode_multipart_formdata(parts)
    resp = _http.request(
        "POST",
        url,
        body=body,
        headers={"Content-Type": content_type, **(headers or {})},
        redirect=False,
        preload_content=True,
    )
    return Reply(resp.status, resp.headers, resp.data)


@pytest.fixture(scope="module")
def v4(planet: PlanetThread) -> S3Client:
    return planet.boto3(signature_version="s3v4")


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket=BUCKET)
    rules = [{"AllowedOrigins": [ORIGIN], "AllowedMethods": ["POST"], "ExposeHeaders": ["ETag"]}]
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": rules})
    return BUCKET


def _missing(s3: S3Client, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError as e:
        return e.response["Error"]["Code"] in ("404", "NoSuchKey")
    return False


def test_form_upload_round_trip(
    planet: PlanetThread, s3: S3Client, v4: S3Client, bucket: str
) -> None:
    fields = {
        "acl": "public-read",
        "Content-Type": "text/plain",
        "Cache-Control": "no-cache",
        "x-amz-meta-owner": "eric",
        "tagging": TAGGING,
        "x-ignore-note": "not in the policy, and need not be",
    }
    conditions: list[Any] = [
        {"acl": "public-read"},
        ["starts-with", "$Content-Type", "text/"],
        {"Cache-Control": "no-cache"},
        ["eq", "$x-amz-meta-owner", "eric"],
        {"tagging": TAGGING},
        ["content-length-range", 1, 1_000_000],
    ]
    form = v4.generate_presigned_post(
        bucket, "user/eric/${filename}", Fields=fields, Conditions=conditions, ExpiresIn=600
    )
    assert form["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    data = random_bytes(300_000, seed=5)
    r = post(form["url"], form["fields"], data, "photo one.jpg", {"Origin": ORIGIN})
    assert r.status == 204 and r.body == b"", r.body
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    assert r.headers["ETag"] == etag
    assert r.headers["Location"] == f"{planet.planet.endpoint}/{bucket}/user/eric/photo%20one.jpg"
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN  # a browser may read the answer
    key = "user/eric/photo one.jpg"
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data
    assert got["ETag"] == etag
    assert got["ContentType"] == "text/plain" and got["CacheControl"] == "no-cache"
    assert got["Metadata"] == {"owner": "eric"}
    assert s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == [
        {"Key": "team", "Value": "web"}
    ]
    public = f"{planet.planet.endpoint}/{bucket}/user/eric/photo%20one.jpg"
    with urllib.request.urlopen(public) as anonymous:  # acl=public-read
        assert anonymous.read() == data


def test_201_and_redirect_answers(
    planet: PlanetThread, s3: S3Client, v4: S3Client, bucket: str
) -> None:
    form = v4.generate_presigned_post(
        bucket, "created", Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}],
    )  # fmt: skip
    r = post(form["url"], form["fields"], b"made")
    assert r.status == 201, r.body
    etag = f'"{hashlib.md5(b"made").hexdigest()}"'
    assert ElementTree.fromstring(r.body).tag.endswith("}PostResponse")
    assert r.text("Location") == f"{planet.planet.endpoint}/{bucket}/created"
    assert (r.text("Bucket"), r.text("Key"), r.text("ETag")) == (bucket, "created", etag)
    assert r.headers["ETag"] == etag
    back = "https://app.example.com/done?x=1"
    form = v4.generate_presigned_post(
        bucket, "redirected", Fields={"success_action_redirect": back},
        Conditions=[["starts-with", "$success_action_redirect", "https://app.example.com/"]],
    )  # fmt: skip
    r = post(form["url"], form["fields"], b"moved")
    assert r.status == 303, r.body
    location = urlsplit(r.headers["Location"])
    assert location.netloc == "app.example.com" and location.path == "/done"
    query = parse_qs(location.query)
    assert query == {
        "x": ["1"],
        "bucket": [bucket],
        "key": ["redirected"],
        "etag": [f'"{hashlib.md5(b"moved").hexdigest()}"'],
    }
    assert s3.get_object(Bucket=bucket, Key="redirected")["Body"].read() == b"moved"
    form = v4.generate_presigned_post(
        bucket, "ok200", Fields={"success_action_status": "200"},
        Conditions=[{"success_action_status": "200"}],
    )  # fmt: skip
    r = post(form["url"], form["fields"])
    assert r.status == 200 and r.body == b""


def test_sigv2_form(planet: PlanetThread, s3: S3Client, bucket: str) -> None:
    form = planet.boto3().generate_presigned_post(bucket, "v2-form")  # botocore's "s3" signer
    assert "AWSAccessKeyId" in form["fields"] and "signature" in form["fields"]
    r = post(form["url"], form["fields"], b"signed v2")
    assert r.status == 204, r.body
    assert s3.get_object(Bucket=bucket, Key="v2-form")["Body"].read() == b"signed v2"
    bad = dict(form["fields"], signature=base64.b64encode(b"\0" * 20).decode())
    r = post(form["url"], bad, b"x")
    assert r.status == 403 and r.code == "SignatureDoesNotMatch", r.body


def _expect(r: Reply, status: int, code: str, message: str = "") -> None:
    assert (r.status, r.code) == (status, code), r.body
    assert message in r.message, r.message


def test_policy_errors(s3: S3Client, v4: S3Client, bucket: str) -> None:
    def form(key: str = "denied", **kw: Any) -> dict[str, Any]:
        return dict(v4.generate_presigned_post(bucket, key, **kw))

    f = form(ExpiresIn=-60)
    _expect(post(f["url"], f["fields"]), 403, "AccessDenied", "Policy expired.")
    f = form("user/${filename}")
    _expect(
        post(f["url"], dict(f["fields"], key="other/x")),
        403,
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "user/"]',
    )
    _expect(
        post(f["url"], dict(f["fields"], **{"x-amz-meta-extra": "1"})),
        403,
        "AccessDenied",
        "Invalid according to Policy: Extra input fields: x-amz-meta-extra",
    )
    f = form("sized", Conditions=[["content-length-range", 10, 20]])
    _expect(post(f["url"], f["fields"], b"x" * 21), 400, "EntityTooLarge")
    _expect(post(f["url"], f["fields"], b"x" * 9), 400, "EntityTooSmall")
    assert post(f["url"], f["fields"], b"x" * 20).status == 204
    f = form("never")
    sig = f["fields"]["x-amz-signature"]
    wrong = dict(f["fields"], **{"x-amz-signature": ("0" if sig[0] != "0" else "1") + sig[1:]})
    _expect(post(f["url"], wrong), 403, "SignatureDoesNotMatch")
    _expect(post(f["url"], f["fields"], data=None), 400, "InvalidArgument", "one file upload")
    no_key = {k: v for k, v in f["fields"].items() if k != "key"}
    _expect(post(f["url"], no_key), 400, "InvalidArgument", "a field named 'key'")
    # anonymous: no policy, no signature (skymesh has no public-write ACL)
    _expect(post(f["url"], {"key": "never"}), 403, "AccessDenied", "anonymous")
    big = dict(f["fields"], **{"x-ignore-padding": "p" * 30_000})
    _expect(post(f["url"], big), 400, "MaxPostPreDataLengthExceeded")
    r = Reply(0, {}, b"")
    resp = _http.request("POST", f["url"], body=b"key=never", redirect=False,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    r = Reply(resp.status, resp.headers, resp.data)
    _expect(r, 412, "PreconditionFailed")
    junk = base64.b64encode(b"not json").decode()
    _expect(post(f["url"], dict(f["fields"], policy=junk)), 400, "InvalidPolicyDocument")
    assert all(_missing(s3, k) for k in ("denied", "never", "other/x", "user/hello.txt"))


def test_checksum_field(s3: S3Client, v4: S3Client, bucket: str) -> None:
    data = b"checked"
    good = base64.b64encode(hashlib.sha256(data).digest()).decode()
    for value, status in ((good, 204), (base64.b64encode(b"\1" * 32).decode(), 400)):
        f = v4.generate_presigned_post(
            bucket, f"sum-{status}", Fields={"x-amz-checksum-sha256": value},
            Conditions=[{"x-amz-checksum-sha256": value}],
        )  # fmt: skip
        r = post(f["url"], f["fields"], data)
        assert r.status == status, r.body
    assert r.code == "BadDigest"
    assert _missing(s3, "sum-400")
    got = s3.head_object(Bucket=bucket, Key="sum-204", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == good


def test_customer_key_and_lock_fields_are_refused_not_ignored(
    s3: S3Client, v4: S3Client, bucket: str
) -> None:
    key = base64.b64encode(b"k" * 32).decode()
    md5 = base64.b64encode(hashlib.md5(b"k" * 32).digest()).decode()
    sse_c = {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": key,
        "x-amz-server-side-encryption-customer-key-MD5": md5,
    }
    f = v4.generate_presigned_post(
        bucket, "sse-c", Fields=sse_c, Conditions=[{k: v} for k, v in sse_c.items()]
    )
    r = post(f["url"], f["fields"], b"secret")
    assert (r.status, r.code) == (501, "NotImplemented")
    assert _missing(s3, "sse-c")  # never stored without the key it asked for
    lock = {"x-amz-object-lock-legal-hold": "ON"}
    f = v4.generate_presigned_post(bucket, "held", Fields=lock, Conditions=[lock])
    r = post(f["url"], f["fields"], b"held")
    assert (r.status, r.code) == (501, "NotImplemented")
    assert _missing(s3, "held")


@pytest.fixture(scope="module")
def virtual_gateway(planet: PlanetThread) -> Iterator[str]:
    """A second gateway of the same project that knows the ``s3.localhost`` suffix."""
    p = planet.planet
    assert p.coordinator is not None and p.credential is not None
    service = GatewayService(
        GatewayConfig(
            data_dir=str(p.root / "gateway-vhost-post"),
            port=0,
            coordinator_url=p.coordinator.url,
            virtual_host_suffixes=["s3.localhost"],
        ),
        credentials=[p.credential],
    )
    planet.run(service.start())
    try:
        yield service.url
    finally:
        planet.run(service.stop())


def test_virtual_hosted_form(s3: S3Client, v4: S3Client, bucket: str, virtual_gateway: str) -> None:
    port = virtual_gateway.rsplit(":", 1)[1]
    f = v4.generate_presigned_post(bucket, "vhost/${filename}")
    r = post(f"{virtual_gateway}/", f["fields"], b"by host", "a.txt",
             {"Host": f"{bucket}.s3.localhost:{port}"})  # fmt: skip
    assert r.status == 204, r.body
    assert r.headers["Location"] == f"http://{bucket}.s3.localhost:{port}/vhost/a.txt"
    assert s3.get_object(Bucket=bucket, Key="vhost/a.txt")["Body"].read() == b"by host"
    assert json.loads(base64.b64decode(f["fields"]["policy"]))["conditions"]


def test_bucket_policy_and_public_access_block_decide_forms(s3: S3Client, v4: S3Client) -> None:
    # a form is a PutObject by its signer: the bucket's policy and Public Access Block
    # apply to it as to any other write, the owner's included
    name = "forms-guarded"
    s3.create_bucket(Bucket=name)
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{name}/locked/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps(deny))
    s3.put_public_access_block(
        Bucket=name, PublicAccessBlockConfiguration={"BlockPublicAcls": True}
    )
    try:
        f = v4.generate_presigned_post(name, "locked/x")
        r = post(f["url"], f["fields"], b"no")
        assert (r.status, r.code) == (403, "AccessDenied")
        acl = {"acl": "public-read"}
        f = v4.generate_presigned_post(name, "open/x", Fields=acl, Conditions=[acl])
        r = post(f["url"], f["fields"], b"no")
        assert (r.status, r.code) == (403, "AccessDenied")
        f = v4.generate_presigned_post(name, "open/y")
        assert post(f["url"], f["fields"], b"yes").status == 204
        assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 1
    finally:
        s3.delete_bucket_policy(Bucket=name)
