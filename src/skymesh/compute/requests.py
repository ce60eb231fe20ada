"""Inference request bodies (OpenAI's shapes), checked field by field: one parser for every role.

The gateway parses interactive requests with it and a node parses each batch
line with it, so a line is refused exactly when the same body sent to the API
would be, with the same message. Pure: no I/O, no role; errors are
:class:`~skymesh.compute.errors.InvalidRequest` naming the offending ``param``.

Unknown fields are ignored (clients send ``user`` and friends); known fields
with values we cannot honour are refused, never silently dropped. The ``skymesh``
routing extension is the gateway's own (``gateway/openai/schema.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from skymesh.compute.errors import InvalidRequest
from skymesh.wire.inference import ChatMessage

MAX_INPUTS = 2048
MAX_STOPS = 4
DEFAULT_MAX_TOKENS = 256
ROLES = ("system", "user", "assistant", "developer")


@dataclass(frozen=True)
class Embeddings:
    model: str
    inputs: list[str]  # [] when the caller reads them elsewhere (``inputs_required=False``)
    encoding_format: str  # "float" | "base64"
    dimensions: int | None


@dataclass(frozen=True)
class Chat:
    model: str
    messages: list[ChatMessage]  # "developer" already mapped to "system"
    max_tokens: int | None  # None: the caller's default
    temperature: float
    top_p: float
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required: a model id from GET /v1/models", "model")
    return model


def number(body: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"'{name}' must be a number", name)
    if not lo <= value <= hi:
        raise InvalidRequest(f"'{name}' must be between {lo} and {hi}", name)
    return float(value)


def integer(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidRequest(f"'{name}' must be an integer from {lo} to {hi}", name)
    return value


def parse_embeddings(body: dict[str, Any], *, inputs_required: bool = True) -> Embeddings:
    """An embeddings body; ``inputs_required=False`` skips ``input`` (it comes from elsewhere)."""
    model = model_of(body)
    inputs: list[str] = []
    if inputs_required:
        raw = body.get("input")
        if isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
            inputs = list(raw)
        elif isinstance(raw, list) and raw and all(isinstance(x, int | list) for x in raw):
            raise InvalidRequest("token arrays are not supported here: send the text", "input")
        else:
            raise InvalidRequest("'input' must be a non-empty string or list of strings", "input")
        if len(inputs) > MAX_INPUTS:
            raise InvalidRequest(f"at most {MAX_INPUTS} inputs per request", "input")
        if any(not s for s in inputs):
            raise InvalidRequest("'input' must not contain empty strings", "input")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dimensions = integer(body, "dimensions", 1, 1_000_000)
    return Embeddings(model, inputs, fmt, dimensions)


def _content(value: Any, i: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest(
                    "only text content parts are supported", f"messages[{i}].content"
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest("a text part needs 'text'", f"messages[{i}].content")
            parts.append(text)
        return "".join(parts)
    raise InvalidRequest("'content' must be a string or a list of text parts", f"messages[{i}]")


def parse_chat(body: dict[str, Any]) -> Chat:
    model = model_of(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("'messages' must be a non-empty list", "messages")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise InvalidRequest(
                f"each message needs a role of {', '.join(ROLES)}", f"messages[{i}].role"
            )
        role = "system" if m["role"] == "developer" else m["role"]
        messages.append(ChatMessage(role=role, content=_content(m.get("content"), i)))
    integer(body, "n", 1, 1)  # only n=1 is served: anything else is refused here
    max_tokens = integer(body, "max_completion_tokens", 1, 1_000_000)
    if max_tokens is None:
        max_tokens = integer(body, "max_tokens", 1, 1_000_000)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or len(stops) > MAX_STOPS:
        raise InvalidRequest(f"'stop' must be a string or up to {MAX_STOPS} strings", "stop")
    if not all(isinstance(s, str) and s for s in stops):
        raise InvalidRequest("'stop' strings must be non-empty", "stop")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false", "stream")
    options = body.get("stream_options")
    if options is not None and not stream:
        raise InvalidRequest("'stream_options' is only allowed with stream: true", "stream_options")
    options = options or {}
    if not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object", "stream_options")
    if options and not stream:
        raise InvalidRequest("'stream_options' is only allowed with stream: true", "stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise InvalidRequest("'include_usage' must be true or false", "stream_options")
    return Chat(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=number(body, "top_p", 1.0, 0.0, 1.0),
        stop=list(stops),
        seed=integer(body, "seed", -(2**63), 2**63 - 1),
        stream=stream,
        include_usage=include_usage,
    )
