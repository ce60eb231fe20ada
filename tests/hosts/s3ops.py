"""boto3 work run on the client host (``ip netns exec``): the test process cannot reach
the gateway, so every S3 call is made from here. Needs boto3 only.

    s3ops.py roundtrip BUCKET          objects of every shape and a multipart: byte-exact
    s3ops.py stream BUCKET RECORD      uploads and checked reads until SIGTERM
    s3ops.py verify BUCKET RECORD      every acknowledged upload of RECORD reads back exact

The endpoint and keys come from ``S3_ENDPOINT``, ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``. Each prints one JSON summary line and exits 1 on a mismatch.

``S3_ENDPOINT`` may name several gateways, separated by commas: requests go to the
first until it cannot be reached (connection refused or timed out, or dropped before
an answer), then to the next, and the request is sent again there. That is what an
operator's load balancer in front of the gateways would do; boto3 itself knows one
endpoint. The switches are counted in the summary.

``stream`` appends a line to RECORD per attempt *before* it is made and another once
it is answered (each with its wall-clock time ``t``), so the record survives whatever
happens to the process; an upload with no answer line was never acknowledged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
)

MiB = 1024 * 1024
SIZES = (0, 100, 300_000, 2 * MiB + 500_000)  # empty, inline, one segment, several
PART = 5 * MiB
VERIFY_READERS = 4  # reads in flight at once in ``verify``


# a gateway that is gone: the request never reached it, or it died before answering
UNREACHABLE = (EndpointConnectionError, ConnectionClosedError)


class Failover:
    """An S3 client over several endpoints: calls go to the current one, and move on to
    the next (sending the call again) when it cannot be reached; see the docstring."""

    def __init__(self, endpoints: list[str]) -> None:
        self.clients = [one_client(e) for e in endpoints]
        self.current = 0
        self.switches = 0

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            for attempt in range(len(self.clients)):
                try:
                    return getattr(self.clients[self.current], name)(**kwargs)
                except UNREACHABLE:
                    if attempt == len(self.clients) - 1:
                        raise
                    self.current = (self.current + 1) % len(self.clients)
                    self.switches += 1
            raise AssertionError("unreachable")

        return call


def client() -> Any:
    return Failover(os.environ["S3_ENDPOINT"].split(","))


def one_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            # one attempt each: the record must say exactly which request failed; long
            # enough a read timeout that the gateway answers before boto3 gives up
            retries={"max_attempts": 1, "mode": "standard"},
            read_timeout=180,
            connect_timeout=10,
        ),
    )


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def put_multipart(s3: Any, bucket: str, key: str, data: bytes) -> None:
    """Parts of 5 MiB and the rest; aborted if a part fails, so nothing stays pending."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        parts = []
        for number, start in enumerate(range(0, len(data), PART), start=1):
            etag = s3.upload_part(
                Bucket=bucket,
                Key=key,
                UploadId=upload,
                PartNumber=number,
                Body=data[start : start + PART],
            )["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
    except (ClientError, BotoCoreError):
        with contextlib.suppress(ClientError, BotoCoreError):
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise


def roundtrip(bucket: str) -> int:
    s3 = client()
    rng = random.Random(1)
    s3.create_bucket(Bucket=bucket)
    objects = {f"obj-{size}": rng.randbytes(size) for size in SIZES}
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    big = rng.randbytes(2 * PART + 300_000)
    put_multipart(s3, bucket, "multipart", big)
    objects["multipart"] = big
    bad = [k for k, data in objects.items() if get(s3, bucket, k) != data]
    ranged = s3.get_object(Bucket=bucket, Key="multipart", Range="bytes=5242000-5243999")
    if ranged["Body"].read() != big[5242000:5244000]:
        bad.append("multipart range")
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    if listed != sorted(objects):
        bad.append(f"listed {listed}")
    print(json.dumps({"objects": len(objects), "bad": bad}))
    return 1 if bad else 0


def stream(bucket: str, record: Path) -> int:
    """Uploads (new keys, overwrites, multiparts) and checked reads until SIGTERM."""
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    s3 = client()
    with contextlib.suppress(ClientError):
        s3.create_bucket(Bucket=bucket)
    rng = random.Random(2)
    acked: dict[str, str] = {}
    # failed uploads by kind: "5xx" (retryable: an SDK sends it again), "4xx" (blames
    # the request: never right here), "connection" (no endpoint answered)
    counts = {"acked": 0, "failed": 0, "reads": 0, "read_errors": 0}
    failed: dict[str, int] = {"5xx": 0, "4xx": 0, "connection": 0}
    with record.open("a") as out:

        def note(**entry: Any) -> None:
            out.write(json.dumps({**entry, "t": time.time()}) + "\n")
            out.flush()

        i = 0
        while not stop:
            i += 1
            if rng.random() < 0.3 and acked:
                key = rng.choice(sorted(acked))
                counts["reads"] += 1
                kind = ""
                try:
                    ok = digest(get(s3, bucket, key)) == acked[key]
                    error, kind = ("", "") if ok else ("wrong bytes", "bytes")
                except (ClientError, BotoCoreError) as e:
                    error, kind = str(e), failure_kind(e)
                if error:
                    counts["read_errors"] += 1
                    note(op="read", key=key, kind=kind, error=error)
                continue
            key = rng.choice(("ow-a", "ow-b")) if rng.random() < 0.15 else f"k{i:05d}"
            multipart = rng.random() < 0.1
            size = PART * rng.choice((1, 2)) + 200_000 if multipart else rng.choice(SIZES)
            data = rng.randbytes(size)  # a multipart upload has 2 or 3 parts
            note(op="put", key=key, sha256=digest(data), size=len(data), multipart=multipart)
            try:
                if multipart:
                    put_multipart(s3, bucket, key, data)
                else:
                    s3.put_object(Bucket=bucket, Key=key, Body=data)
            except (ClientError, BotoCoreError) as e:
                kind = failure_kind(e)
                counts["failed"] += 1
                failed[kind] += 1
                note(op="failed", key=key, kind=kind, error=str(e)[:300])
                continue
            acked[key] = digest(data)
            counts["acked"] += 1
            note(op="acked", key=key)
    print(json.dumps({**counts, "failed_by_kind": failed, "switches": s3.switches}))
    return 0


def failure_kind(e: ClientError | BotoCoreError) -> str:
    if isinstance(e, ClientError):
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return "5xx" if status >= 500 else "4xx"
    return "connection"


def verify(bucket: str, record: Path) -> int:
    """Each key reads back as its last acknowledged upload. An upload that was never
    acknowledged may have landed whole (its answer lost), never in part: after the
    last ack such attempts are also allowed, and a key never acknowledged may be absent.
    """
    tried: dict[str, str] = {}  # key -> sha256 of the attempt in flight
    last_ack: dict[str, str] = {}
    maybe: dict[str, set[str]] = {}
    read_errors = []
    for line in record.read_text().splitlines():
        e = json.loads(line)
        if e["op"] == "put":
            tried[e["key"]] = e["sha256"]
            maybe.setdefault(e["key"], set()).add(e["sha256"])
        elif e["op"] == "acked":
            last_ack[e["key"]] = tried[e["key"]]
            maybe[e["key"]] = set()
        elif e["op"] == "read":
            read_errors.append(f"{e['key']}: {e['error'][:200]}")
    # a client per reader thread (a Failover keeps which gateway is current), made here:
    # boto3 makes clients one thread at a time
    clients = [client() for _ in range(VERIFY_READERS)]
    local = threading.local()

    def read(key: str) -> str | None:
        """The digest of what ``key`` reads back as; None: no such key."""
        if not hasattr(local, "s3"):
            local.s3 = clients.pop()
        try:
            return digest(get(local.s3, bucket, key))
        except ClientError as err:
            if err.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                raise
            return None

    bad = []
    keys = sorted(tried)
    # several reads at once: hundreds of keys one after another cost a chaos case
    # many seconds of round trips (each read is still checked in full)
    with ThreadPoolExecutor(VERIFY_READERS) as readers:
        for key, got in zip(keys, readers.map(read, keys), strict=True):
            allowed: set[str | None] = {*maybe[key], last_ack.get(key)}  # None: never acked
            if got not in allowed:
                bad.append(
                    f"{key}: {'missing' if got is None else 'bytes no acknowledged upload wrote'}"
                )
    summary = {"keys": len(tried), "acked": len(last_ack), "bad": bad, "read_errors": read_errors}
    print(json.dumps(summary))
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    match argv:
        case ["roundtrip", bucket]:
            return roundtrip(bucket)
        case ["stream", bucket, record]:
            return stream(bucket, Path(record))
        case ["verify", bucket, record]:
            return verify(bucket, Path(record))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
