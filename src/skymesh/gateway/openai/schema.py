"""OpenAI request bodies at the gateway: the shared parser plus the ``skymesh`` extension.

The fields of the OpenAI bodies are checked by :mod:`skymesh.compute.requests`
(the same code checks each batch line on a node); its
:class:`~skymesh.compute.errors.InvalidRequest` becomes a 400 naming the
``param`` (``errors.from_error``). Here: the body's JSON, and the
``skymesh`` extension field (``extra_body={"skymesh": {...}}`` in the openai
client) chooses routing: ``weights`` (latency, price, carbon) and ``regions``
(a hard filter: only nodes in these regions may serve the request). On
``/v1/embeddings`` it may also name ``input_object`` (``"bucket/key"``): the
inputs are read from that stored object, on a node inside its bucket's residency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from skymesh.compute import requests
from skymesh.compute.requests import DEFAULT_MAX_TOKENS
from skymesh.compute.routing import Weights
from skymesh.gateway.openai.errors import OpenAIError, bad_request
from skymesh.wire.inference import ChatMessage

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "MAX_BODY",
    "decode",
    "parse_chat",
    "parse_embeddings",
    "read_body",
    "too_large",
]

MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class Routing:
    weights: Weights = field(default_factory=Weights)
    regions: tuple[str, ...] = ()
    weights_named: bool = False  # the request chose weights: the project's defaults yield


@dataclass(frozen=True)
class EmbeddingsParams:
    model: str
    inputs: list[str]
    encoding_format: str  # "float" | "base64"
    dimensions: int | None
    routing: Routing
    input_object: str = ""  # "bucket/key": inputs read from this object (then inputs is [])


@dataclass(frozen=True)
class ChatParams:
    model: str
    messages: list[ChatMessage]
    max_tokens: int | None
    temperature: float
    top_p: float
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False
    routing: Routing = field(default_factory=Routing)


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused with 413 as soon as it is over ``limit`` bytes (by its
    Content-Length before a byte is read, else as it arrives)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks, total = [], 0
    while chunk := await request.content.read(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int) -> OpenAIError:
    return OpenAIError(f"the body is over {limit} bytes", status=413, code="request_too_large")


def decode(raw: bytes) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise bad_request(f"the body is not valid JSON: {e}", code="invalid_json") from e
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object", code="invalid_json")
    return body


def _routing(body: dict[str, Any], options: frozenset[str] = frozenset()) -> Routing:
    ext = body.get("skymesh")
    if ext is None:
        return Routing()
    if not isinstance(ext, dict):
        raise bad_request("'skymesh' must be an object with 'weights' and/or 'regions'", "skymesh")
    unknown = set(ext) - {"weights", "regions"} - options
    if unknown:
        raise bad_request(f"unknown skymesh option(s) {sorted(unknown)}", "skymesh")
    weights = Weights()
    if ext.get("weights") is not None:
        if not isinstance(ext["weights"], dict):
            raise bad_request("'skymesh.weights' must be an object", "skymesh.weights")
        try:
            weights = Weights.parse(ext["weights"])
        except ValueError as e:
            raise bad_request(str(e), "skymesh.weights") from e
    regions = ext.get("regions") or []
    if not isinstance(regions, list) or not all(isinstance(r, str) and r for r in regions):
        raise bad_request("'skymesh.regions' must be a list of region names", "skymesh.regions")
    named = ext.get("weights") is not None
    return Routing(weights=weights, regions=tuple(regions), weights_named=named)


def _input_object(body: dict[str, Any]) -> str:
    """``skymesh.input_object`` as ``"bucket/key"``, or "" when the request names none."""
    ext = body.get("skymesh")
    value = ext.get("input_object") if isinstance(ext, dict) else None
    if value is None:
        return ""
    param = "skymesh.input_object"
    bucket, _, key = value.partition("/") if isinstance(value, str) else ("", "", "")
    if not 3 <= len(bucket) <= 63 or not key:
        raise bad_request("'skymesh.input_object' must be 'bucket/key' of a stored object", param)
    if body.get("input") not in (None, "", []):
        raise bad_request(
            "give either 'input' or 'skymesh.input_object' (send input=[] with it), not both",
            "input",
        )
    return str(value)


def parse_embeddings(body: dict[str, Any]) -> EmbeddingsParams:
    requests.model_of(body)  # the model is checked first, as for chat
    input_object = _input_object(body)
    r = requests.parse_embeddings(body, inputs_required=not input_object)
    routing = _routing(body, frozenset({"input_object"}))
    return EmbeddingsParams(
        r.model, r.inputs, r.encoding_format, r.dimensions, routing, input_object
    )


def parse_chat(body: dict[str, Any]) -> ChatParams:
    r = requests.parse_chat(body)
    return ChatParams(
        model=r.model,
        messages=r.messages,
        max_tokens=r.max_tokens,
        temperature=r.temperature,
        top_p=r.top_p,
        stop=r.stop,
        seed=r.seed,
        stream=r.stream,
        include_usage=r.include_usage,
        routing=_routing(body),
    )
