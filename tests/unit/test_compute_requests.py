"""The one parser of inference bodies (``compute/requests.py``): each refusal names its field."""

from __future__ import annotations

from typing import Any

import pytest

from skymesh.compute.errors import InvalidRequest
from skymesh.compute.requests import parse_chat, parse_embeddings

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": [1, 2]}, "input"),
        ({"model": "m", "input": ["x", ""]}, "input"),
        ({"model": "m", "input": ["x"] * 2049}, "input"),
        ({"model": "m", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "m", "input": "x", "dimensions": True}, "dimensions"),
    ],
)
def test_embeddings_refusals(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        parse_embeddings(body)
    assert e.value.param == param and e.value.status == 400 and e.value.code == "invalid_value"


def test_embeddings_accepts_and_may_leave_inputs_to_the_caller() -> None:
    r = parse_embeddings({"model": "m", "input": "x", "encoding_format": "base64"})
    assert (r.inputs, r.encoding_format, r.dimensions) == (["x"], "base64", None)
    assert parse_embeddings({"model": "m"}, inputs_required=False).inputs == []


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image"}]}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0]"),
        ({"temperature": 5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": "9"}, "max_completion_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"seed": 1.5}, "seed"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {}}, "stream_options"),
        ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options"),
    ],
)
def test_chat_refusals(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        parse_chat({"model": "m", "messages": USER, **extra})
    assert e.value.param == param


def test_chat_accepts() -> None:
    r = parse_chat(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
            "max_completion_tokens": 7,
            "max_tokens": 99,
            "stop": "END",
            "seed": 3,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert [(m.role, m.content) for m in r.messages] == [("system", "be brief"), ("user", "ab")]
    assert (r.max_tokens, r.stop, r.seed, r.stream, r.include_usage) == (7, ["END"], 3, True, True)
    assert (r.temperature, r.top_p) == (1.0, 1.0)
