"""rclone (Debian's binary) against a real `skymesh up`, configured only by environment variables."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.clients.conftest import TREE, md5_hex, read_tree, write_tree
from tests.conftest import random_bytes
from tests.process.netutil import Tool, Up, clean_env, find_tool, run_tool

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
# rclone uploads files above the cutoff in parts; 5 MiB (S3's smallest part) keeps it quick
MULTIPART = ("--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")


def rclone_env(net: Up, config: Path) -> dict[str, str]:
    """A remote named `sky` from the environment alone, as docs/operations.md shows it."""
    config.touch()  # an empty config file: nothing from the user's own rclone.conf
    return clean_env(
        RCLONE_CONFIG=str(config),
        RCLONE_CONFIG_SKY_TYPE="s3",
        RCLONE_CONFIG_SKY_PROVIDER="Other",
        RCLONE_CONFIG_SKY_ENDPOINT=net.endpoint,
        RCLONE_CONFIG_SKY_ACCESS_KEY_ID=net.access_key,
        RCLONE_CONFIG_SKY_SECRET_ACCESS_KEY=net.secret,
        RCLONE_CONFIG_SKY_REGION="us-east-1",
        RCLONE_CONFIG_SKY_FORCE_PATH_STYLE="true",
    )


@pytest.fixture
def rclone(net: Up, tmp_path: Path) -> Tool:
    exe = find_tool("rclone", "rclone")
    env = rclone_env(net, tmp_path / "rclone.conf")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # fail fast: one try, so a gateway error shows instead of rclone's retry loop
        argv = [exe, "--retries", "1", "--low-level-retries", "1", *args]
        return run_tool(argv, env, timeout=120, check=check)

    return run


def lsf(rclone: Tool, *args: str) -> list[str]:
    return sorted(rclone("lsf", *args).stdout.splitlines())


def test_copy_lsf_and_check_with_multipart_hashes(rclone: Tool, net: Up, tmp_path: Path) -> None:
    files = dict(TREE)
    files["big/multi.bin"] = random_bytes(12 * MiB, seed=12)
    src = write_tree(tmp_path / "src", files)
    rclone("copy", *MULTIPART, str(src), "sky:rc-copy/tree")  # creates the bucket too

    assert lsf(rclone, "sky:rc-copy/tree") == sorted(
        ["a/", "big/", "empty.txt", "top.txt", "with space/", "ünïcødé/"]
    )
    dirs = {f"{k.rsplit('/', i)[0]}/" for k in files for i in range(1, k.count("/") + 1)}
    assert lsf(rclone, "-R", "sky:rc-copy/tree") == sorted([*files, *dirs])

    # a multipart object's ETag is no MD5; rclone keeps the MD5 in its own metadata at
    # CreateMultipartUpload (X-Amz-Meta-Md5chksum), as on AWS, and reads it back on HEAD
    head = net.s3().head_object(Bucket="rc-copy", Key="tree/big/multi.bin")
    assert head["ETag"].strip('"').endswith("-3")
    digest = hashlib.md5(files["big/multi.bin"]).digest()
    assert head["Metadata"]["md5chksum"] == base64.b64encode(digest).decode()
    sums = rclone("md5sum", "sky:rc-copy/tree/big").stdout
    assert sums.split() == [md5_hex(files["big/multi.bin"]), "multi.bin"]

    ok = rclone("check", str(src), "sky:rc-copy/tree")
    assert "0 differences found" in ok.stderr, ok.stderr
    assert f"{len(files)} matching files" in ok.stderr, ok.stderr
    assert "could not be checked" not in ok.stderr, ok.stderr

    # same size, other bytes: only the hash can tell, and rclone check must fail
    deep = src / "a/b/c/deep.bin"
    deep.write_bytes(b"\0" + deep.read_bytes()[1:])
    bad = rclone("check", str(src), "sky:rc-copy/tree", check=False)
    assert bad.returncode != 0
    assert "1 differences found" in bad.stderr and "a/b/c/deep.bin" in bad.stderr, bad.stderr


def test_sync_both_ways_delete_and_purge(rclone: Tool, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", TREE)
    rclone("sync", str(src), "sky:rc-sync/tree")
    down = tmp_path / "down"
    rclone("sync", "sky:rc-sync/tree", str(down))
    assert read_tree(down) == TREE
    # nothing changed: sizes and modification times agree, so nothing is copied again
    for args in ((str(src), "sky:rc-sync/tree"), ("sky:rc-sync/tree", str(down))):
        again = rclone("sync", "-v", *args)
        assert "Copied" not in again.stderr, again.stderr

    # change, remove and add locally; sync mirrors all three
    changed = dict(TREE)
    changed["a/b/sibling.txt"] = b"sibling, changed and longer\n"
    (src / "a/b/sibling.txt").write_bytes(changed["a/b/sibling.txt"])
    del changed["top.txt"]
    (src / "top.txt").unlink()
    changed["new dir/new.txt"] = b"new\n"
    write_tree(src, {"new dir/new.txt": b"new\n"})
    rclone("sync", str(src), "sky:rc-sync/tree")
    assert [f for f in lsf(rclone, "-R", "--files-only", "sky:rc-sync/tree")] == sorted(changed)
    rclone("sync", "sky:rc-sync/tree", str(down))
    assert read_tree(down) == changed

    # delete on the remote side, then sync down: the local copies go too
    rclone("delete", "sky:rc-sync/tree/a")
    assert lsf(rclone, "-R", "--files-only", "sky:rc-sync/tree/a") == []
    rclone("sync", "sky:rc-sync/tree", str(down))
    assert read_tree(down) == {k: v for k, v in changed.items() if not k.startswith("a/")}

    rclone("purge", "sky:rc-sync")
    assert "rc-sync/" not in lsf(rclone, "sky:")


def test_sync_after_touch_updates_modtime_in_place(rclone: Tool, net: Up, tmp_path: Path) -> None:
    """Same bytes, newer mtime: rclone rewrites only the metadata, by copying the object onto itself."""
    src = write_tree(tmp_path / "src", {"f.txt": b"same bytes\n"})
    rclone("sync", str(src), "sky:rc-touch")
    os.utime(src / "f.txt", (1_600_000_000, 1_600_000_000))
    rclone("sync", str(src), "sky:rc-touch")
    head = net.s3().head_object(Bucket="rc-touch", Key="f.txt")
    assert head["Metadata"]["mtime"].startswith("1600000000")
    assert net.s3().get_object(Bucket="rc-touch", Key="f.txt")["Body"].read() == b"same bytes\n"
