"""Batch API pieces without servers: an order's scope, file ids, and input line splitting."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from skymesh.coordinator.inference.batch import in_scope
from skymesh.errors import BadRequest
from skymesh.gateway.openai.errors import OpenAIError
from skymesh.gateway.openai.files import file_id, parse_file_id, purpose_of
from skymesh.node.batch import MAX_LINE, LineError, _lines, object_inputs
from skymesh.wire.batch import BatchOrder
from skymesh.wire.metainfo import (
    BeginPartRequest,
    BeginSegmentRequest,
    BucketRequest,
    DownloadRequest,
    SegmentPosition,
    UploadRequest,
)

ORDER = BatchOrder(
    serial="s",
    coordinator_id="c",
    node_id="n",
    project_id="p",
    batch_id="batch_1",
    bucket="data",
    input_key="in.jsonl",
    input_version="v1",
    output_key="out.jsonl",
    output_upload="u-out",
    error_key="err.jsonl",
    error_upload="u-err",
    model="emb",
    endpoint="/v1/embeddings",
    max_tokens=16,
    residency="eu",
    expires_at=2e9,
    issued_at=1e9,
)

POS = SegmentPosition(part=1, index=0)


@pytest.mark.parametrize(
    ("req", "allowed"),
    [
        (None, True),  # codec parameters
        (DownloadRequest(bucket="data", key="in.jsonl", version_id="v1"), True),
        (DownloadRequest(bucket="data", key="in.jsonl", version_id=""), False),  # latest: no
        (DownloadRequest(bucket="data", key="other", version_id="v1"), False),
        (DownloadRequest(bucket="else", key="in.jsonl", version_id="v1"), False),
        (UploadRequest(bucket="data", key="out.jsonl", upload_id="u-out"), True),
        (UploadRequest(bucket="data", key="err.jsonl", upload_id="u-err"), True),
        (UploadRequest(bucket="data", key="out.jsonl", upload_id="u-err"), False),  # crossed
        (UploadRequest(bucket="data", key="other", upload_id="u-x"), False),
        (UploadRequest(bucket="else", key="out.jsonl", upload_id="u-out"), False),
        (BeginPartRequest(bucket="data", key="out.jsonl", upload_id="u-out",
                            part_number=1, plain_size=9), True),
        (BeginSegmentRequest(stream_id="u-out", position=POS, plain_size=1), True),
        (BeginSegmentRequest(stream_id="someone-else", position=POS, plain_size=1), False),
        (BucketRequest(name="data"), False),  # anything else: no
    ],
)  # fmt: skip
def test_an_order_covers_its_input_version_and_two_uploads(req: object, allowed: bool) -> None:
    assert in_scope(ORDER, req) is allowed


READ = msgspec.structs.replace(
    ORDER, output_key="", output_upload="", error_key="", error_upload="", purpose="read"
)


@pytest.mark.parametrize(
    ("req", "allowed"),
    [
        (None, True),
        (DownloadRequest(bucket="data", key="in.jsonl", version_id="v1"), True),
        (DownloadRequest(bucket="data", key="other", version_id="v1"), False),
        (UploadRequest(bucket="data", key="", upload_id=""), False),
        (BeginSegmentRequest(stream_id="", position=POS, plain_size=1), False),
    ],
)  # fmt: skip
def test_a_read_order_covers_its_input_version_only(req: object, allowed: bool) -> None:
    """Interactive reads (``skymesh.input_object``): no upload, not even an empty-named one."""
    assert in_scope(READ, req) is allowed
    # a batch order's uploads stay writable only under purpose "batch"
    upload = UploadRequest(bucket="data", key="out.jsonl", upload_id="u-out")
    assert not in_scope(msgspec.structs.replace(ORDER, purpose="read"), upload)


@given(
    bucket=st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True),
    key=st.text(min_size=1, max_size=300).filter(lambda k: "\x00" not in k),
)
def test_file_ids_name_bucket_and_key(bucket: str, key: str) -> None:
    fid = file_id(bucket, key)
    assert fid.startswith("file-") and "=" not in fid
    assert parse_file_id(fid) == (bucket, key)


@pytest.mark.parametrize("bad", ["", "file-", "file-%%%", "nofile", "file-YWJj", "file-L2tleQ"])
def test_bad_file_ids_are_404(bad: str) -> None:
    with pytest.raises(OpenAIError) as e:
        parse_file_id(bad)
    assert e.value.status == 404 and e.value.code == "file_not_found"


def test_purpose_follows_the_key() -> None:
    assert purpose_of("openai-batches/batch_1/output.jsonl") == "batch_output"
    assert purpose_of("openai-files/ab/in.jsonl") == purpose_of("jobs/in.jsonl") == "batch"


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def _split(parts: list[bytes]) -> list[bytes]:
    async def go() -> list[bytes]:
        return [line async for line in _lines(_chunks(parts))]

    return asyncio.run(go())


@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    cuts=st.lists(st.integers(0, 1000), max_size=10),
)
def test_lines_survive_any_chunking(lines: list[bytes], cuts: list[int]) -> None:
    data = b"\n".join(lines)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    parts = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert _split(parts) == [x.strip() for x in lines if x.strip()]


def test_a_line_over_the_limit_fails_the_run() -> None:
    with pytest.raises(BadRequest):
        _split([b"x" * (MAX_LINE + 1)])


@pytest.mark.parametrize(
    ("key", "raw", "inputs"),
    [
        ("a.json", b'"one"', ["one"]),
        ("a.json", b'["one", "two"]', ["one", "two"]),
        ("a.jsonl", b'"one"\n\n"two"\n', ["one", "two"]),
        ("a.txt", b"one\n  two  \n\n", ["one", "two"]),
        ("notes", b'["not json here"]\n', ['["not json here"]']),  # the suffix decides
        ("a.json", b"[1, 2]", None),
        ("a.json", b"[]", None),
        ("a.json", b'["", "x"]', None),
        ("a.jsonl", b'"one"\n{"input": "x"}\n', None),
        ("a.jsonl", b"not json\n", None),
        ("a.txt", b"\xff\xfe", None),
        ("a.txt", b"\n\n", None),
    ],
)
def test_object_inputs(key: str, raw: bytes, inputs: list[str] | None) -> None:
    if inputs is None:
        with pytest.raises(LineError) as e:
            object_inputs(key, raw)
        assert e.value.code == "invalid_input_object"
    else:
        assert object_inputs(key, raw) == inputs
