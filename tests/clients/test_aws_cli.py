"""The AWS CLI against a real `skymesh up`: `aws s3` and `aws s3api`.

Debian's v2 binary by default; ``SKYMESH_TEST_AWS=/path/to/aws`` drives another (the
v1 CLI from pip, say). Every test prints which one it drove (``aws --version``) and the
JUnit report records it as the test suite's property ``aws``, since the two differ: the v1 CLI
presigns with Signature Version 2, the v2 CLI with Signature Version 4.
"""

from __future__ import annotations

import filecmp
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.clients.conftest import TREE, md5_hex, read_tree, write_tree
from tests.conftest import random_bytes, write_random_file
from tests.process.netutil import Up, aws, aws_env, aws_exe, aws_run, aws_version

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def cli_version(record_testsuite_property: Any) -> str:
    """Which `aws` this module drives, e.g. ``aws-cli/1.45.11 Python/3.11.7 ...``,
    recorded as the JUnit test suite's property ``aws``."""
    exe = aws_exe()
    version = aws_version(exe)
    record_testsuite_property("aws", f"{exe}: {version}")
    return version


@pytest.fixture(autouse=True)
def _print_cli(cli_version: str) -> None:
    """Every test's captured output (shown when it fails, or with -s) names the CLI."""
    print(f"aws: {aws_exe()}: {cli_version}")


def api(net: Up, *args: str) -> Any:
    """One `aws s3api` call, its JSON answer parsed (None for calls that print nothing)."""
    out = aws(net, "--output", "json", "s3api", *args)
    return json.loads(out) if out.strip() else None


def listed(net: Up, url: str) -> tuple[list[str], str]:
    """Keys under `url` as `aws s3 ls --recursive --summarize` prints them, and its summary."""
    out = aws(net, "s3", "ls", "--recursive", "--summarize", url)
    body, _, summary = out.partition("Total Objects:")
    # "2026-01-01 12:00:00       1234 some key with spaces": the key is the fourth field on
    keys = sorted(line.split(None, 3)[3] for line in body.splitlines() if line.strip())
    return keys, "Total Objects:" + summary


def test_cp_200_mib_multipart_both_ways(net: Up, tmp_path: Path) -> None:
    big = write_random_file(tmp_path / "big.bin", 200 * MiB, seed=200)
    aws(net, "s3", "mb", "s3://aws-big")
    aws(net, "s3", "cp", "--only-show-errors", str(big), "s3://aws-big/dir/big.bin")
    head = api(net, "head-object", "--bucket", "aws-big", "--key", "dir/big.bin")
    assert head["ContentLength"] == 200 * MiB
    # the CLI cuts 8 MiB parts: 25 of them, and S3's multipart ETag says so
    assert head["ETag"].strip('"').endswith("-25"), head["ETag"]
    back = tmp_path / "back.bin"
    aws(net, "s3", "cp", "--only-show-errors", "s3://aws-big/dir/big.bin", str(back))
    assert filecmp.cmp(big, back, shallow=False)


def test_cp_with_a_customer_key_sse_c(net: Up, tmp_path: Path) -> None:
    key = tmp_path / "key.bin"
    key.write_bytes(random_bytes(32, seed=32))
    sse_c = ["--sse-c", "AES256", "--sse-c-key", f"fileb://{key}"]
    data = write_random_file(tmp_path / "secret.bin", 300_000, seed=33)
    aws(net, "s3", "mb", "s3://aws-ssec")
    aws(net, "s3", "cp", "--only-show-errors", *sse_c, str(data), "s3://aws-ssec/secret.bin")
    back = tmp_path / "back.bin"
    aws(net, "s3", "cp", "--only-show-errors", *sse_c, "s3://aws-ssec/secret.bin", str(back))
    assert filecmp.cmp(data, back, shallow=False)
    # without the key the object does not open
    out = aws_run(
        net, "s3", "cp", "s3://aws-ssec/secret.bin", str(tmp_path / "no.bin"), check=False
    )
    assert out.returncode != 0 and "400" in out.stderr, out.stderr
    assert not (tmp_path / "no.bin").exists()


def test_sync_tree_up_and_down_with_updates_delete_and_rm(net: Up, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    aws(net, "s3", "mb", "s3://aws-sync")
    aws(net, "s3", "sync", "--only-show-errors", str(src), "s3://aws-sync/tree")
    keys, summary = listed(net, "s3://aws-sync/tree/")
    assert keys == sorted(f"tree/{k}" for k in TREE)
    assert f"Total Objects: {len(TREE)}" in summary
    assert f"Total Size: {sum(len(v) for v in TREE.values())}" in summary

    down = tmp_path / "down"
    aws(net, "s3", "sync", "--only-show-errors", "s3://aws-sync/tree", str(down))
    assert read_tree(down) == TREE
    # nothing changed: sizes and LastModified agree, so a second sync copies nothing
    assert aws(net, "s3", "sync", str(src), "s3://aws-sync/tree") == ""
    assert aws(net, "s3", "sync", "s3://aws-sync/tree", str(down)) == ""

    # change one file, remove one, add one; `--delete` mirrors the removal
    changed = dict(TREE)
    changed["a/b/sibling.txt"] = b"sibling, now longer than before\n"
    (src / "a/b/sibling.txt").write_bytes(changed["a/b/sibling.txt"])
    del changed["top.txt"]
    (src / "top.txt").unlink()
    changed["new dir/new.txt"] = b"new\n"
    write_tree(src, {"new dir/new.txt": b"new\n"})
    out = aws(net, "s3", "sync", "--delete", str(src), "s3://aws-sync/tree")
    assert "delete: s3://aws-sync/tree/top.txt" in out, out
    aws(net, "s3", "cp", "--only-show-errors", str(src / "empty.txt"), "s3://aws-sync/kept")
    assert listed(net, "s3://aws-sync/")[0] == sorted(["kept", *(f"tree/{k}" for k in changed)])
    aws(net, "s3", "sync", "--only-show-errors", "--delete", "s3://aws-sync/tree", str(down))
    assert read_tree(down) == changed

    # `rm --recursive` removes exactly the prefix; `rb --force` empties and drops the bucket
    out = aws(net, "s3", "rm", "--recursive", "s3://aws-sync/tree/")
    assert out.count("delete: s3://aws-sync/tree/") == len(changed), out
    assert listed(net, "s3://aws-sync/")[0] == ["kept"]
    aws(net, "s3", "rb", "--force", "s3://aws-sync")
    assert "aws-sync" not in aws(net, "s3", "ls")


def test_s3api_objects_listing_and_location(net: Up, tmp_path: Path) -> None:
    api(net, "create-bucket", "--bucket", "aws-api")
    data = random_bytes(100_000, seed=3)
    body = tmp_path / "body.bin"
    body.write_bytes(data)
    put = api(net, "put-object", "--bucket", "aws-api", "--key", "docs/a.bin", "--body", str(body))
    assert put["ETag"] == f'"{md5_hex(data)}"'
    head = api(net, "head-object", "--bucket", "aws-api", "--key", "docs/a.bin")
    assert head["ContentLength"] == len(data) and head["ETag"] == put["ETag"]

    part = tmp_path / "range.bin"
    got = api(
        net, "get-object", "--bucket", "aws-api", "--key", "docs/a.bin",
        "--range", "bytes=1000-1999", str(part),
    )  # fmt: skip
    assert got["ContentRange"] == f"bytes 1000-1999/{len(data)}"
    assert part.read_bytes() == data[1000:2000]

    names = ("docs/b.txt", "docs/sub/c.txt", "docs/sub/d.txt", "docs/other/e.txt", "top.txt")
    small = write_tree(tmp_path / "small", dict.fromkeys(names, b"x"))
    aws(net, "s3", "cp", "--only-show-errors", "--recursive", str(small), "s3://aws-api/")
    listing = api(
        net, "list-objects-v2", "--bucket", "aws-api", "--prefix", "docs/", "--delimiter", "/"
    )
    assert [o["Key"] for o in listing["Contents"]] == ["docs/a.bin", "docs/b.txt"]
    assert [p["Prefix"] for p in listing["CommonPrefixes"]] == ["docs/other/", "docs/sub/"]

    # --max-items pages on the client side with a resume token
    first = api(
        net, "list-objects-v2", "--bucket", "aws-api", "--prefix", "docs/", "--max-items", "2"
    )
    assert [o["Key"] for o in first["Contents"]] == ["docs/a.bin", "docs/b.txt"]
    rest = api(
        net, "list-objects-v2", "--bucket", "aws-api", "--prefix", "docs/",
        "--max-items", "10", "--starting-token", first["NextToken"],
    )  # fmt: skip
    assert [o["Key"] for o in rest["Contents"]] == [
        "docs/other/e.txt",
        "docs/sub/c.txt",
        "docs/sub/d.txt",
    ]
    assert "NextToken" not in rest

    deleted = api(
        net, "delete-objects", "--bucket", "aws-api", "--delete",
        json.dumps({"Objects": [{"Key": "docs/b.txt"}, {"Key": "top.txt"}, {"Key": "never"}]}),
    )  # fmt: skip
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["docs/b.txt", "never", "top.txt"]
    assert not deleted.get("Errors")
    left = api(net, "list-objects-v2", "--bucket", "aws-api")
    assert [o["Key"] for o in left["Contents"]] == [
        "docs/a.bin",
        "docs/other/e.txt",
        "docs/sub/c.txt",
        "docs/sub/d.txt",
    ]

    # us-east-1 buckets have the empty location constraint, as on AWS
    assert api(net, "get-bucket-location", "--bucket", "aws-api")["LocationConstraint"] is None


def test_s3api_multipart_upload(net: Up, tmp_path: Path) -> None:
    api(net, "create-bucket", "--bucket", "aws-mpu")
    parts = [random_bytes(5 * MiB, seed=10), random_bytes(5 * MiB, seed=11), b"tail" * 100]
    files = []
    for i, data in enumerate(parts, 1):
        files.append(tmp_path / f"part{i}")
        files[-1].write_bytes(data)

    upload = api(net, "create-multipart-upload", "--bucket", "aws-mpu", "--key", "mp/obj")
    uid = upload["UploadId"]
    etags = []
    for i, path in enumerate(files, 1):
        r = api(
            net, "upload-part", "--bucket", "aws-mpu", "--key", "mp/obj",
            "--upload-id", uid, "--part-number", str(i), "--body", str(path),
        )  # fmt: skip
        assert r["ETag"] == f'"{md5_hex(parts[i - 1])}"'
        etags.append(r["ETag"])
    listed = api(net, "list-parts", "--bucket", "aws-mpu", "--key", "mp/obj", "--upload-id", uid)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == [
        (i, e, len(d)) for i, (e, d) in enumerate(zip(etags, parts, strict=True), 1)
    ]
    done = api(
        net, "complete-multipart-upload", "--bucket", "aws-mpu", "--key", "mp/obj",
        "--upload-id", uid, "--multipart-upload",
        json.dumps({"Parts": [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, 1)]}),
    )  # fmt: skip
    assert done["ETag"].strip('"').endswith("-3")
    back = tmp_path / "back.bin"
    api(net, "get-object", "--bucket", "aws-mpu", "--key", "mp/obj", str(back))
    assert back.read_bytes() == b"".join(parts)

    # an aborted upload is gone: its parts can no longer be listed and nothing was stored
    other = api(net, "create-multipart-upload", "--bucket", "aws-mpu", "--key", "mp/aborted")
    api(
        net, "upload-part", "--bucket", "aws-mpu", "--key", "mp/aborted",
        "--upload-id", other["UploadId"], "--part-number", "1", "--body", str(files[2]),
    )  # fmt: skip
    uploads = api(net, "list-multipart-uploads", "--bucket", "aws-mpu")
    assert [u["Key"] for u in uploads["Uploads"]] == ["mp/aborted"]
    grouped = api(net, "list-multipart-uploads", "--bucket", "aws-mpu", "--delimiter", "/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["mp/"]
    assert "Uploads" not in grouped
    api(
        net, "abort-multipart-upload", "--bucket", "aws-mpu", "--key", "mp/aborted",
        "--upload-id", other["UploadId"],
    )  # fmt: skip
    gone = aws_run(
        net, "s3api", "list-parts", "--bucket", "aws-mpu", "--key", "mp/aborted",
        "--upload-id", other["UploadId"], check=False,
    )  # fmt: skip
    assert gone.returncode != 0 and "NoSuchUpload" in gone.stderr, gone.stderr
    keys = [o["Key"] for o in api(net, "list-objects-v2", "--bucket", "aws-mpu")["Contents"]]
    assert keys == ["mp/obj"]


def test_stream_stdin_stdout_and_presigned_get(net: Up, cli_version: str, tmp_path: Path) -> None:
    """`cp -` uploads a stream of unknown length (multipart); `cp ... -` and presigned
    URLs of both signature versions read it."""
    data = random_bytes(20 * MiB + 5, seed=20)
    aws(net, "s3", "mb", "s3://aws-stream")
    argv = [aws_exe(), "--endpoint-url", net.endpoint, "s3", "cp"]
    up = subprocess.run(
        [*argv, "-", "s3://aws-stream/piped.bin"],
        input=data, capture_output=True, env=aws_env(net), timeout=120,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    down = subprocess.run(
        [*argv, "s3://aws-stream/piped.bin", "-"],
        capture_output=True, env=aws_env(net), timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert down.stdout == data

    # the CLI's own presigned URL: SigV2 from the v1 CLI, SigV4 from the v2 CLI
    url = aws(net, "s3", "presign", "--expires-in", "300", "s3://aws-stream/piped.bin").strip()
    v1 = cli_version.startswith("aws-cli/1.")
    assert ("AWSAccessKeyId=" in url) == v1, (cli_version, url)
    assert ("X-Amz-Signature=" in url) != v1, (cli_version, url)
    urls = {"cli default": url}
    # SigV4 from either CLI, asked for in its config file
    config = tmp_path / "aws-config"
    config.write_text("[default]\ns3 =\n    signature_version = s3v4\n")
    v4 = subprocess.run(
        [aws_exe(), "--endpoint-url", net.endpoint, "s3", "presign", "--expires-in", "300",
         "s3://aws-stream/piped.bin"],
        capture_output=True, text=True, timeout=120,
        env={**aws_env(net), "AWS_CONFIG_FILE": str(config)},
    )  # fmt: skip
    assert v4.returncode == 0, v4.stderr
    assert "X-Amz-Signature=" in v4.stdout, v4.stdout
    urls["sigv4"] = v4.stdout.strip()
    # SigV2 as the v1 CLI makes it (botocore's HmacV1QueryAuth), whichever CLI is here
    s3v2 = boto3.client(
        "s3", endpoint_url=net.endpoint, aws_access_key_id=net.access_key,
        aws_secret_access_key=net.secret, region_name="us-east-1",
        config=Config(signature_version="s3", s3={"addressing_style": "path"}),
    )  # fmt: skip
    urls["sigv2"] = s3v2.generate_presigned_url(
        "get_object", Params={"Bucket": "aws-stream", "Key": "piped.bin"}, ExpiresIn=300
    )
    assert "AWSAccessKeyId=" in urls["sigv2"], urls["sigv2"]
    for kind, presigned in urls.items():
        with urllib.request.urlopen(presigned, timeout=60) as resp:
            assert resp.read() == data, (kind, cli_version)


def test_s3api_versioning(net: Up, tmp_path: Path) -> None:
    api(net, "create-bucket", "--bucket", "aws-versions")
    assert api(net, "get-bucket-versioning", "--bucket", "aws-versions") is None
    api(
        net, "put-bucket-versioning", "--bucket", "aws-versions",
        "--versioning-configuration", "Status=Enabled",
    )  # fmt: skip
    assert api(net, "get-bucket-versioning", "--bucket", "aws-versions")["Status"] == "Enabled"
    body = tmp_path / "v.txt"
    ids = []
    for text in (b"one", b"two"):
        body.write_bytes(text)
        put = api(net, "put-object", "--bucket", "aws-versions", "--key", "k", "--body", str(body))
        ids.append(put["VersionId"])
    deleted = api(net, "delete-object", "--bucket", "aws-versions", "--key", "k")
    assert deleted["DeleteMarker"] is True
    listing = api(net, "list-object-versions", "--bucket", "aws-versions")
    assert [v["VersionId"] for v in listing["Versions"]] == ids[::-1]
    assert [(m["VersionId"], m["IsLatest"]) for m in listing["DeleteMarkers"]] == [
        (deleted["VersionId"], True)
    ]
    out = tmp_path / "old.txt"
    api(
        net,
        "get-object",
        "--bucket",
        "aws-versions",
        "--key",
        "k",
        "--version-id",
        ids[0],
        str(out),
    )
    assert out.read_bytes() == b"one"


def test_s3api_object_lock(net: Up, tmp_path: Path) -> None:
    bucket = "aws-locked"
    api(net, "create-bucket", "--bucket", bucket, "--object-lock-enabled-for-bucket")
    config = (
        '{"ObjectLockEnabled": "Enabled",'
        ' "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}'
    )
    api(
        net, "put-object-lock-configuration", "--bucket", bucket,
        "--object-lock-configuration", config,
    )  # fmt: skip
    got = api(net, "get-object-lock-configuration", "--bucket", bucket)
    assert got["ObjectLockConfiguration"] == json.loads(config)
    body = tmp_path / "locked.txt"
    body.write_bytes(b"worm")
    version = api(net, "put-object", "--bucket", bucket, "--key", "k", "--body", str(body))[
        "VersionId"
    ]
    retention = api(net, "get-object-retention", "--bucket", bucket, "--key", "k")["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    denied = aws_run(
        net, "s3api", "delete-object", "--bucket", bucket, "--key", "k",
        "--version-id", version, check=False,
    )  # fmt: skip
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr
    api(
        net, "put-object-retention", "--bucket", bucket, "--key", "k",
        "--version-id", version, "--bypass-governance-retention",
        "--retention", '{"Mode": "COMPLIANCE", "RetainUntilDate": "2099-01-01T00:00:00Z"}',
    )  # fmt: skip
    retention = api(net, "get-object-retention", "--bucket", bucket, "--key", "k")["Retention"]
    assert retention["Mode"] == "COMPLIANCE" and retention["RetainUntilDate"].startswith("2099")


def test_s3api_bucket_policy(net: Up, tmp_path: Path) -> None:
    api(net, "create-bucket", "--bucket", "aws-policy")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::aws-policy/public/*",
            }
        ],
    }
    text = json.dumps(policy)
    api(net, "put-bucket-policy", "--bucket", "aws-policy", "--policy", text)
    assert json.loads(api(net, "get-bucket-policy", "--bucket", "aws-policy")["Policy"]) == policy
    status = api(net, "get-bucket-policy-status", "--bucket", "aws-policy")
    assert status["PolicyStatus"]["IsPublic"] is True
    body = tmp_path / "p.txt"
    body.write_bytes(b"hello")
    api(net, "put-object", "--bucket", "aws-policy", "--key", "public/p", "--body", str(body))
    # the policy lets anyone read public/*: a plain unsigned GET
    with urllib.request.urlopen(f"{net.endpoint}/aws-policy/public/p") as resp:
        assert resp.read() == b"hello"
    api(net, "delete-bucket-policy", "--bucket", "aws-policy")
    failed = aws_run(net, "s3api", "get-bucket-policy", "--bucket", "aws-policy", check=False)
    assert failed.returncode != 0 and "NoSuchBucketPolicy" in failed.stderr


def test_s3api_bucket_lifecycle(net: Up, tmp_path: Path) -> None:
    """`put-bucket-lifecycle-configuration --lifecycle-configuration file://...` (the CLI
    sends Content-MD5 or a checksum with it), read back and deleted."""
    api(net, "create-bucket", "--bucket", "aws-lifecycle")
    config = {
        "Rules": [
            {
                "ID": "logs",
                "Status": "Enabled",
                "Filter": {"And": {"Prefix": "logs/", "ObjectSizeGreaterThan": 10}},
                "Expiration": {"Days": 30},
            },
            {
                "Status": "Disabled",
                "Filter": {"Prefix": "old/"},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 5, "NewerNoncurrentVersions": 2},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            },
        ]
    }
    path = tmp_path / "lifecycle.json"
    path.write_text(json.dumps(config))
    api(
        net, "put-bucket-lifecycle-configuration", "--bucket", "aws-lifecycle",
        "--lifecycle-configuration", f"file://{path}",
    )  # fmt: skip
    got = api(net, "get-bucket-lifecycle-configuration", "--bucket", "aws-lifecycle")["Rules"]
    assert got[0] == config["Rules"][0]
    assert got[1]["ID"]  # one was made for it
    assert {k: v for k, v in got[1].items() if k != "ID"} == config["Rules"][1]
    api(net, "delete-bucket-lifecycle", "--bucket", "aws-lifecycle")
    failed = aws_run(
        net, "s3api", "get-bucket-lifecycle-configuration", "--bucket", "aws-lifecycle",
        check=False,
    )  # fmt: skip
    assert failed.returncode != 0 and "NoSuchLifecycleConfiguration" in failed.stderr
