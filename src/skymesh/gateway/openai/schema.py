"""OpenAI request bodies, checked field by field so each error names its ``param``.

Unknown fields are ignored (clients send ``user`` and friends); known fields
with values we cannot honour are refused, never silently dropped. The
``skymesh`` extension field (``extra_body={"skymesh": {...}}`` in the openai
client) chooses routing: ``weights`` (latency, price, carbon) and ``regions``
(a hard filter: only nodes in these regions may serve the request). On
``/v1/embeddings`` it may also name ``input_object`` (``"bucket/key"``): the
inputs are read from that stored object, on a node inside its bucket's residency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgspec

from skymesh.compute.routing import Weights
from skymesh.gateway.openai.errors import bad_request
from skymesh.wire.messages import ChatMessage

MAX_BODY = 4 * 1024 * 1024
MAX_INPUTS = 2048
MAX_STOPS = 4
DEFAULT_MAX_TOKENS = 256
ROLES = ("system", "user", "assistant", "developer")


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


def decode(raw: bytes) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise bad_request(f"the body is not valid JSON: {e}", code="invalid_json") from e
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object", code="invalid_json")
    return body


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required: a model id from GET /v1/models", "model")
    return model


def _number(body: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request(f"'{name}' must be a number", name)
    if not lo <= value <= hi:
        raise bad_request(f"'{name}' must be between {lo} and {hi}", name)
    return float(value)


def _int(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise bad_request(f"'{name}' must be an integer from {lo} to {hi}", name)
    return value


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
    model = _model(body)
    raw = body.get("input")
    input_object = _input_object(body)
    if input_object:
        inputs: list[str] = []
    elif isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        inputs = list(raw)
    elif isinstance(raw, list) and raw and all(isinstance(x, int | list) for x in raw):
        raise bad_request("token arrays are not supported here: send the text", "input")
    else:
        raise bad_request("'input' must be a non-empty string or list of strings", "input")
    if len(inputs) > MAX_INPUTS:
        raise bad_request(f"at most {MAX_INPUTS} inputs per request", "input")
    if any(not s for s in inputs):
        raise bad_request("'input' must not contain empty strings", "input")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise bad_request("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dimensions = _int(body, "dimensions", 1, 1_000_000)
    routing = _routing(body, frozenset({"input_object"}))
    return EmbeddingsParams(model, inputs, fmt, dimensions, routing, input_object)


def _content(value: Any, i: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad_request("only text content parts are supported", f"messages[{i}].content")
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request("a text part needs 'text'", f"messages[{i}].content")
            parts.append(text)
        return "".join(parts)
    raise bad_request("'content' must be a string or a list of text parts", f"messages[{i}]")


def parse_chat(body: dict[str, Any]) -> ChatParams:
    model = _model(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty list", "messages")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise bad_request(
                f"each message needs a role of {', '.join(ROLES)}", f"messages[{i}].role"
            )
        role = "system" if m["role"] == "developer" else m["role"]
        messages.append(ChatMessage(role=role, content=_content(m.get("content"), i)))
    n = _int(body, "n", 1, 1)
    del n  # only n=1 is served; anything else was refused above
    max_tokens = _int(body, "max_completion_tokens", 1, 1_000_000)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1, 1_000_000)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or len(stops) > MAX_STOPS:
        raise bad_request(f"'stop' must be a string or up to {MAX_STOPS} strings", "stop")
    if not all(isinstance(s, str) and s for s in stops):
        raise bad_request("'stop' strings must be non-empty", "stop")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be true or false", "stream")
    options = body.get("stream_options")
    if options is not None and not stream:
        raise bad_request("'stream_options' is only allowed with stream: true", "stream_options")
    options = options or {}
    if not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", "stream_options")
    if options and not stream:
        raise bad_request("'stream_options' is only allowed with stream: true", "stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise bad_request("'include_usage' must be true or false", "stream_options")
    return ChatParams(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        stop=list(stops),
        seed=_int(body, "seed", -(2**63), 2**63 - 1),
        stream=stream,
        include_usage=include_usage,
        routing=_routing(body),
    )
