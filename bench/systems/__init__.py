"""The systems under test, each started fresh on loopback and seen through one `Store` face.

skymesh and moto speak S3 (`s3.S3Store`, boto3 as a user would run it); Tahoe-LAFS
has no S3, so `tahoe.TahoeStore` speaks its web API. Workloads only see `Store`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from bench.data import NullSink, RandomReader


class Store(Protocol):
    """What a workload may ask of a system; keys are plain names in one namespace."""

    name: str

    def put_stream(self, key: str, body: RandomReader) -> None:
        """Upload a large body as a user's default client would (boto3: upload_fileobj)."""

    def get_stream(self, key: str, sink: NullSink) -> None:
        """Download a whole object into ``sink`` (boto3: download_fileobj)."""

    def first_byte(self, key: str) -> float:
        """Seconds from sending a GET of the whole object to holding its first byte."""

    def put_small(self, key: str, data: bytes) -> None: ...

    def get_small(self, key: str) -> bytes: ...

    def fill(self, prefix: str, count: int, threads: int) -> None:
        """Create ``count`` empty objects under ``prefix`` for the listing workload."""

    def list_count(self, prefix: str) -> int:
        """List everything under ``prefix`` (all pages) and return how many keys came back."""

    def gateway_pid(self) -> int | None:
        """The process whose memory the RSS workload samples, where the system has one."""


StoreFactory = Callable[[Path], AbstractContextManager[Store]]
