"""s3cmd (Debian's) against a real `skymesh up`, with a config file as a user writes one."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.clients.conftest import TREE, read_tree, write_tree
from tests.conftest import random_bytes
from tests.process.netutil import Tool, Up, clean_env, find_tool, run_tool

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def s3cmd_config(net: Up, path: Path) -> Path:
    """Path-style (host_bucket = host_base), plain http, SigV4: what docs/operations.md shows."""
    host = urlsplit(net.endpoint).netloc
    path.write_text(
        "[default]\n"
        f"access_key = {net.access_key}\n"
        f"secret_key = {net.secret}\n"
        f"host_base = {host}\n"
        f"host_bucket = {host}\n"
        "use_https = False\n"
        "signature_v2 = False\n"
    )
    return path


@pytest.fixture
def s3cmd(net: Up, tmp_path: Path) -> Tool:
    exe = find_tool("s3cmd", "s3cmd")
    config = s3cmd_config(net, tmp_path / "s3cfg")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [exe, "-c", str(config), "--no-progress", *args]
        return run_tool(argv, clean_env(), timeout=120, check=check)

    return run


def listed(s3cmd: Tool, *args: str) -> dict[str, int]:
    """`s3cmd ls` lines as {url: size}; "DIR" lines as size -1."""
    out: dict[str, int] = {}
    for line in s3cmd("ls", *args).stdout.splitlines():
        if not line.strip():
            continue
        if line.split()[0] == "DIR":
            out[line.split(None, 1)[1].strip()] = -1
            continue
        # "2026-11-26 12:07     12000000  s3://bucket/key with spaces"
        _, _, size, url = line.split(None, 3)
        out[url] = int(size)
    return out


def test_mb_put_get_ls_la_info_del(s3cmd: Tool, net: Up, tmp_path: Path) -> None:
    assert "created" in s3cmd("mb", "s3://sc-objects").stdout
    small = tmp_path / "small file.txt"
    small.write_bytes(b"small\n")
    big = tmp_path / "big.bin"
    big.write_bytes(random_bytes(12 * MiB, seed=5))
    s3cmd("put", str(small), "s3://sc-objects/small file.txt")
    s3cmd("put", "--multipart-chunk-size-mb=5", str(big), "s3://sc-objects/dir/big.bin")
    head = net.s3().head_object(Bucket="sc-objects", Key="dir/big.bin")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # three 5 MiB parts

    for key, local in (("small file.txt", small), ("dir/big.bin", big)):
        back = tmp_path / "back"
        s3cmd("get", "--force", f"s3://sc-objects/{key}", str(back))
        assert back.read_bytes() == local.read_bytes(), key

    assert listed(s3cmd, "s3://sc-objects") == {
        "s3://sc-objects/dir/": -1,
        "s3://sc-objects/small file.txt": 6,
    }
    assert listed(s3cmd, "--recursive", "s3://sc-objects") == {
        "s3://sc-objects/dir/big.bin": 12 * MiB,
        "s3://sc-objects/small file.txt": 6,
    }
    assert "s3://sc-objects" in s3cmd("ls").stdout
    everything = s3cmd("la").stdout
    assert "s3://sc-objects/small file.txt" in everything

    info = s3cmd("info", "s3://sc-objects/dir/big.bin").stdout
    assert f"File size: {12 * MiB}" in info, info
    assert "Location:" in s3cmd("info", "s3://sc-objects").stdout

    s3cmd("del", "s3://sc-objects/small file.txt")
    assert listed(s3cmd, "--recursive", "s3://sc-objects") == {
        "s3://sc-objects/dir/big.bin": 12 * MiB
    }
    missing = s3cmd("get", "s3://sc-objects/small file.txt", str(tmp_path / "x"), check=False)
    assert missing.returncode != 0


def test_sync_both_ways(s3cmd: Tool, tmp_path: Path) -> None:
    s3cmd("mb", "s3://sc-sync")
    src = write_tree(tmp_path / "src", TREE)
    s3cmd("sync", f"{src}/", "s3://sc-sync/tree/")
    assert sorted(listed(s3cmd, "--recursive", "s3://sc-sync")) == sorted(
        f"s3://sc-sync/tree/{k}" for k in TREE
    )
    down = tmp_path / "down"
    down.mkdir()
    s3cmd("sync", "s3://sc-sync/tree/", f"{down}/")
    assert read_tree(down) == TREE
    # nothing changed: sizes and MD5s (the ETags) agree, so nothing is copied again
    assert "upload:" not in s3cmd("sync", f"{src}/", "s3://sc-sync/tree/").stdout
    assert "download:" not in s3cmd("sync", "s3://sc-sync/tree/", f"{down}/").stdout

    # change (same size: s3cmd compares MD5s), remove and add; --delete-removed mirrors
    changed = dict(TREE)
    changed["a/b/sibling.txt"] = b"SIBLING\n"
    (src / "a/b/sibling.txt").write_bytes(changed["a/b/sibling.txt"])
    del changed["top.txt"]
    (src / "top.txt").unlink()
    changed["new dir/new.txt"] = b"new\n"
    write_tree(src, {"new dir/new.txt": b"new\n"})
    s3cmd("sync", "--delete-removed", f"{src}/", "s3://sc-sync/tree/")
    assert sorted(listed(s3cmd, "--recursive", "s3://sc-sync")) == sorted(
        f"s3://sc-sync/tree/{k}" for k in changed
    )
    s3cmd("sync", "--delete-removed", "s3://sc-sync/tree/", f"{down}/")
    assert read_tree(down) == changed
