"""s3fs (fsspec over aiobotocore) against a real `skymesh up`, as data tools use it."""

from __future__ import annotations

from pathlib import Path

import pytest
import s3fs

from tests.clients.conftest import TREE, read_tree, write_tree
from tests.conftest import random_bytes
from tests.process.netutil import Up

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def filesystem(net: Up) -> s3fs.S3FileSystem:
    # no instance or listing cache: every call below must ask the gateway
    return s3fs.S3FileSystem(
        key=net.access_key,
        secret=net.secret,
        client_kwargs={"endpoint_url": net.endpoint, "region_name": "us-east-1"},
        skip_instance_cache=True,
        use_listings_cache=False,
    )


def test_write_in_chunks_read_ranges_list_and_remove(net: Up) -> None:
    fs = filesystem(net)
    fs.mkdir("fs-bucket")
    data = random_bytes(13 * MiB, seed=13)
    # 5 MiB blocks: s3fs sends a multipart upload, one part per full block
    with fs.open("fs-bucket/dir/data.bin", "wb", block_size=5 * MiB) as f:
        for i in range(0, len(data), 3_000_000):
            f.write(data[i : i + 3_000_000])
    info = fs.info("fs-bucket/dir/data.bin")
    assert info["size"] == len(data) and info["type"] == "file"
    assert info["ETag"].strip('"').endswith("-3"), info["ETag"]

    assert fs.cat("fs-bucket/dir/data.bin") == data
    with fs.open("fs-bucket/dir/data.bin", "rb", block_size=MiB) as f:
        f.seek(5 * MiB - 10)
        assert f.read(20) == data[5 * MiB - 10 : 5 * MiB + 10]  # across a part boundary
        f.seek(-100, 2)
        assert f.read() == data[-100:]
        f.seek(7)
        assert f.read(1) == data[7:8]
    assert fs.cat_file("fs-bucket/dir/data.bin", start=100, end=200) == data[100:200]

    fs.pipe("fs-bucket/top.txt", b"top\n")
    assert fs.ls("fs-bucket", detail=False) == ["fs-bucket/dir", "fs-bucket/top.txt"]
    assert fs.find("fs-bucket") == ["fs-bucket/dir/data.bin", "fs-bucket/top.txt"]
    assert fs.info("fs-bucket/dir")["type"] == "directory"
    assert fs.exists("fs-bucket/dir/data.bin") and fs.exists("fs-bucket/dir")
    assert not fs.exists("fs-bucket/nope") and not fs.exists("fs-bucket/dir/data.bi")

    fs.rm("fs-bucket/dir/data.bin")
    assert not fs.exists("fs-bucket/dir/data.bin")
    assert fs.find("fs-bucket") == ["fs-bucket/top.txt"]
    with pytest.raises(FileNotFoundError):
        fs.cat("fs-bucket/dir/data.bin")


def test_put_and_get_local_trees(net: Up, tmp_path: Path) -> None:
    fs = filesystem(net)
    fs.mkdir("fs-trees")
    src = write_tree(tmp_path / "src", TREE)
    fs.put(str(src), "fs-trees/tree", recursive=True)
    assert sorted(fs.find("fs-trees/tree")) == sorted(f"fs-trees/tree/{k}" for k in TREE)
    fs.get("fs-trees/tree", str(tmp_path / "down"), recursive=True)
    assert read_tree(tmp_path / "down") == TREE

    one = tmp_path / "one.bin"
    fs.get("fs-trees/tree/a/b/c/deep.bin", str(one))
    assert one.read_bytes() == TREE["a/b/c/deep.bin"]

    fs.rm("fs-trees/tree", recursive=True)
    assert fs.find("fs-trees") == []
