"""What the chaos cases share: a stream of S3 work from the client host, its record read
back, and waiting for the network to be whole again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.hosts.cluster import CLIENT, Cluster
from tests.process.netutil import short_of_optimal

S3OPS = str(Path(__file__).with_name("s3ops.py"))


def wait_for(what: str, check: Callable[[], object], timeout: float, poll: float = 1.0) -> float:
    """Until ``check()`` returns a falsy problem; seconds taken. Fails showing the last one."""
    started = time.monotonic()
    while problem := check():
        assert time.monotonic() - started < timeout, f"{what} after {timeout:.0f} s: {problem}"
        time.sleep(poll)
    return time.monotonic() - started


def not_clean(c: Cluster) -> object:
    """What keeps `skymesh durability` from clean: lost segments, or any under optimal."""
    report = c.durability()
    if report["lost_total"]:
        return f"{report['lost_total']} segments lost: {report['lost']}"
    return short_of_optimal(report)


@dataclass(frozen=True)
class Upload:
    """One upload of the record: when it was sent, and how it ended."""

    key: str
    sent: float  # wall clock
    multipart: bool
    ended: float | None = None  # None: no answer (in flight when the stream stopped)
    acked: bool = False
    kind: str = ""  # of a failure: "5xx", "4xx" or "connection"


@dataclass
class Stream:
    """``s3ops.py stream`` on the client host, into a bucket of its own."""

    c: Cluster
    bucket: str
    record: Path
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    counts: dict[str, Any] | None = None

    @property
    def output(self) -> Path:
        return self.record.with_suffix(".out")

    def entries(self) -> list[dict[str, Any]]:
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        return [json.loads(line) for line in lines if line.endswith("}")]

    def uploads(self) -> list[Upload]:
        """Every upload so far, in order (the stream makes one request at a time)."""
        done: list[Upload] = []
        for e in self.entries():
            if e["op"] == "put":
                done.append(Upload(e["key"], e["t"], bool(e.get("multipart"))))
            elif e["op"] in ("acked", "failed") and done and done[-1].ended is None:
                last = done[-1]
                done[-1] = Upload(
                    last.key,
                    last.sent,
                    last.multipart,
                    e["t"],
                    e["op"] == "acked",
                    e.get("kind", ""),
                )
        return done

    def acked_since(self, t: float) -> list[Upload]:
        return [u for u in self.uploads() if u.acked and u.ended is not None and u.ended > t]

    def failed_since(self, t: float) -> list[Upload]:
        return [u for u in self.uploads() if u.ended is not None and u.ended > t and not u.acked]

    def read_errors(self) -> list[dict[str, Any]]:
        """The failed reads: ``kind`` "5xx", "4xx", "connection" or "bytes" (wrong ones)."""
        return [e for e in self.entries() if e["op"] == "read"]

    def last_failure_since(self, t: float) -> float | None:
        """When the last upload failed, of those that ended after ``t``."""
        return max((u.ended for u in self.failed_since(t) if u.ended is not None), default=None)

    def first_ack_sent_after(self, t: float) -> float | None:
        """When the first upload *sent* after ``t`` was acknowledged: uploads work again."""
        return next((u.ended for u in self.uploads() if u.acked and u.sent > t), None)

    def wait_multipart_in_flight(self, timeout: float = 30) -> bool:
        """Until a multipart upload is under way; False if none began within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ups = self.uploads()
            if ups and ups[-1].multipart and ups[-1].ended is None:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> dict[str, Any]:
        """SIGTERM it (it ends after its request in flight); its summary counts."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(200)
        finally:
            self.log.close()
        summary = self.output.read_text()
        assert self.proc.returncode == 0, summary
        self.counts = dict(json.loads(summary.strip().splitlines()[-1]))
        return self.counts

    def verify(self) -> dict[str, Any]:
        """Every acknowledged upload reads back byte-exact (``s3ops.py verify``)."""
        out = self.c.net.run(
            CLIENT,
            [sys.executable, S3OPS, "verify", self.bucket, str(self.record)],
            env=self.c.s3_env(),
            check=False,
            timeout=300,
        )
        assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
        verified: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return verified


@contextmanager
def streaming(c: Cluster, bucket: str) -> Iterator[Stream]:
    """A stream running for the block; stopped at its end (``Stream.counts``)."""
    record = c.folder(CLIENT, bucket) / "record.jsonl"
    record.parent.mkdir(parents=True)
    log = open(record.with_suffix(".out"), "wb")  # noqa: SIM115 - Stream.stop closes it
    proc = c.net.popen(
        CLIENT,
        [sys.executable, S3OPS, "stream", bucket, str(record)],
        env=c.s3_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stream = Stream(c, bucket, record, proc, log)
    try:
        yield stream
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        raise
    if stream.counts is None:
        stream.stop()


def log_count(c: Cluster, names: list[str], text: str) -> int:
    """How often ``text`` appears in these roles' logs."""
    return sum(c.roles[n].log.read_text(errors="replace").count(text) for n in names)
