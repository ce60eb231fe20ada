"""`Store` over S3 with boto3, for every system that speaks S3 (skymesh, moto).

boto3 runs as a user would run it: default TransferConfig for big objects
(multipart above 8 MiB, 10 threads), path-style addressing, plain http, or https
trusting the system's own CA (``verify``) for the ``tls`` workload. Only the
connection pool is widened so that 16 (or the fill's) client threads never queue on it.
"""

from __future__ import annotations

import html
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import urllib3
from botocore.config import Config

from bench.data import NullSink, RandomReader

BUCKET = "bench"


class S3Store:
    def __init__(
        self,
        name: str,
        endpoint: str,
        access_key: str,
        secret: str,
        *,
        pid: int | None = None,
        pool: int = 64,
        profile_pids: dict[str, int] | None = None,
        cpu_pids: dict[str, list[int]] | None = None,
        verify: str | None = None,  # https: the CA bundle to trust
    ) -> None:
        self.name = name
        self._pid = pid
        self.profile_pids = profile_pids or {}  # what --profile samples, by role
        # whose CPU time big PUTs and GETs report per GB, by role (bench/cpu.py)
        self.cpu_pids = cpu_pids if cpu_pids is not None else ({"server": [pid]} if pid else {})
        self.client: Any = boto3.client(  # boto3 ships no types
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            verify=verify,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2},
                max_pool_connections=pool,
            ),
        )
        self.client.create_bucket(Bucket=BUCKET)
        # presigns the raw listing (SigV4 query auth; boto3 would presign SigV2 by default)
        self._signer: Any = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            verify=verify,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        self._http = urllib3.PoolManager(maxsize=4, ca_certs=verify)

    def put_stream(self, key: str, body: RandomReader) -> None:
        self.client.upload_fileobj(body, BUCKET, key)

    def get_stream(self, key: str, sink: NullSink) -> None:
        self.client.download_fileobj(BUCKET, key, sink)

    def first_byte(self, key: str) -> float:
        start = time.perf_counter()
        body = self.client.get_object(Bucket=BUCKET, Key=key)["Body"]
        first = body.read(1)
        seconds = time.perf_counter() - start
        body.close()
        if len(first) != 1:
            raise RuntimeError(f"{self.name}: GET {key} returned no body")
        return seconds

    def put_small(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)

    def get_small(self, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return data

    def fill(self, prefix: str, count: int, threads: int) -> None:
        def put(i: int) -> None:
            self.client.put_object(Bucket=BUCKET, Key=f"{prefix}{i:07d}", Body=b"")

        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(put, range(count)):
                pass

    def list_count(self, prefix: str) -> int:
        n = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix
        ):
            n += page.get("KeyCount", 0)
        return n

    def list_count_raw(self, prefix: str) -> int:
        """The same pagination without boto3's response parsing: the server's own rate.

        botocore turns each 1,000-key page into dicts and datetimes in pure Python, which
        on this machine costs more than the server's work; this reads only the counts.
        """
        n = 0
        token: str | None = None
        while True:
            params = {"Bucket": BUCKET, "Prefix": prefix}
            if token is not None:
                params["ContinuationToken"] = token
            url = self._signer.generate_presigned_url("list_objects_v2", Params=params)
            resp = self._http.request("GET", url)
            if resp.status != 200:
                raise RuntimeError(f"{self.name}: ListObjectsV2: {resp.status} {resp.data[:300]!r}")
            count = re.search(rb"<KeyCount>(\d+)</KeyCount>", resp.data)
            n += int(count.group(1)) if count else 0
            more = re.search(rb"<NextContinuationToken>([^<]+)</NextContinuationToken>", resp.data)
            if more is None or b"<IsTruncated>true</IsTruncated>" not in resp.data:
                return n
            token = html.unescape(more.group(1).decode())

    def gateway_pid(self) -> int | None:
        return self._pid
