"""One real `skymesh up` network for the client modules, and local trees to copy around.

Each module drives one real S3 client (the AWS CLI, rclone, s3cmd, s3fs) the way a
user would. They run real processes on two cores, so they are ``slow``; CI installs
every client binary (.ci/run) and runs them.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import random_bytes
from tests.process.netutil import Up, start_up

# Names a user's tree has: nested folders, spaces, non-ASCII, a dot file.
TREE: dict[str, bytes] = {
    "top.txt": b"top level\n",
    "a/b/c/deep.bin": random_bytes(300_000, seed=1),
    "a/b/sibling.txt": b"sibling\n",
    "with space/file name.txt": b"spaces in both names\n",
    "ünïcødé/naïve ñame.txt": "unicode content ✓\n".encode(),
    "a/.hidden": b"dot file\n",
    "empty.txt": b"",
}


@pytest.fixture(scope="package")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """A whole network as separate processes, shared by every client module: starting
    one is 6-7 s of the two cores. Each module keeps to buckets of its own prefix
    (``aws-``, ``rc-``, ``sc-``, ``fs-``) and asserts nothing of the others'."""
    # SSE-C over the tests' plain HTTP (S3 and the gateway's default refuse it there)
    u = start_up(
        tmp_path_factory.mktemp("up") / "home", env={"SKYMESH_GATEWAY_SSE_C_OVER_HTTP": "true"}
    )
    try:
        yield u
    finally:
        with contextlib.suppress(Exception):  # a network that hangs on SIGTERM is killed
            u.stop()
        u.kill()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` by its relative path; folders alone do not count."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
