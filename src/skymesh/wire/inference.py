"""The inference protocol: compute adverts, inference orders, and the node's inference RPCs."""

from __future__ import annotations

from skymesh.wire.base import Base, ErrorBody
from skymesh.wire.signing import Signed


class ModelOffer(Base, frozen=True):
    """One model a compute node serves, and what it charges (USD per million tokens)."""

    name: str
    kind: str  # "embedding" | "chat"
    context_length: int
    price_in: float = 0.0
    price_out: float = 0.0
    dimensions: int = 0  # embedding models: vector length


class ComputeAdvert(Base, frozen=True):
    """What a compute node offers and how loaded it is; rides on every heartbeat.

    Soft state: the coordinator keeps the latest one in memory and forgets it with
    the node's liveness, so no column holds it.
    """

    models: list[ModelOffer]
    cores: int
    memory_bytes: int
    gpu: str = ""  # "" when none was detected
    concurrency: int = 1  # requests run at once
    queue_depth: int = 0  # requests running or waiting now
    queue_limit: int = 0  # waiting requests beyond which the node answers 429
    latency_ms: float = 0.0  # recent mean service time of one request
    tokens_per_second: float = 0.0  # recent generation throughput (0: unknown)
    pue: float = 1.0
    grid_gco2_kwh: float = 0.0
    watts: float = 0.0  # power drawn while serving, for gCO2 per token


class ComputeNode(Base, frozen=True):
    """An online compute node as the coordinator lists it to gateways."""

    node_id: str
    address: str
    region: str
    advert: ComputeAdvert
    # the node's operator: a spot check runs the request again on another operator's node
    operator: str = ""


class ComputeNodeList(Base, frozen=True):
    """``GET /v1/compute/nodes`` (project key)."""

    nodes: list[ComputeNode]


class InferenceOrder(Base, frozen=True):
    """Lets the holder run one inference request on one node (signed by a coordinator).

    Carried in the ``X-Skymesh-Order`` header like piece orders; single use, short-lived.
    """

    serial: str
    coordinator_id: str
    node_id: str
    project_id: str
    model: str
    max_tokens: int  # completion tokens (chat) or input tokens (embeddings) allowed
    expires_at: float
    issued_at: float

    # tokens) and where it runs, so a usage report is priced as offered
    price_in: float = 0.0
    price_out: float = 0.0
    region: str = ""
    # hex SHA-256 of the request body the gateway sends the node ("": not given): two
    # orders naming one digest were issued for the same request (spot-check evidence)
    request_sha256: str = ""


class InferenceOrderRequest(Base, frozen=True):
    """``POST /v1/compute/orders`` (project key): orders for ``model`` on these nodes."""

    model: str
    node_ids: list[str]
    max_tokens: int
    request_sha256: str = ""  # signed into each order as it is


class SpotCheckReport(Base, frozen=True):
    """``POST /v1/compute/spot-checks`` (project key): one request, answered by two nodes.

    ``orders`` are the two :class:`InferenceOrder` s exactly as the coordinator signed
    them for that request (the same ``request_sha256``): the node that answered the
    caller first, then the node of another operator that ran it again.
    """

    orders: list[Signed]
    agree: bool


class SpotCheckRecorded(Base, frozen=True):
    """``recorded`` False: these orders were reported before, and nothing changed."""

    recorded: bool
    excluded: list[str] = []  # nodes this report excluded from compute routing


class InferenceOrders(Base, frozen=True):
    orders: list[Signed]  # Signed[InferenceOrder], in the order of the request's node_ids


class EmbedRequest(Base, frozen=True):
    """``POST /v1/infer/embeddings`` on a node."""

    model: str
    input: list[str]


class EmbedResponse(Base, frozen=True):
    """Vectors as little-endian float32 bytes, one per input, L2-normalised."""

    embeddings: list[bytes]
    dimensions: int
    prompt_tokens: int


class ChatMessage(Base, frozen=True):
    role: str
    content: str


class ChatRequest(Base, frozen=True):
    """``POST /v1/infer/chat`` on a node; the answer is a stream of :class:`ChatEvent`."""

    model: str
    messages: list[ChatMessage]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = []
    seed: int | None = None


class ChatEvent(Base, frozen=True):
    """One line of a node's newline-delimited JSON chat stream.

    Text arrives in ``delta`` events; the last event has ``finish_reason`` and the
    usage counts, or ``error`` when generation failed midway.
    """

    delta: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: ErrorBody | None = None


# ---------------------------------------------------------------- inference API keys


class CreateInferenceKeyRequest(Base, frozen=True):
    """A new API key for a project's OpenAI-compatible calls at a gateway."""

    name: str = ""  # what the key is for, shown in listings


class InferenceKeyInfo(Base, frozen=True):
    """One inference API key as listed: never the key itself."""

    key_id: str
    project_id: str
    name: str
    created_at: float
    revoked_at: float | None = None  # None: in use
    expires_at: float | None = None  # None: never expires


class InferenceKeyCreated(Base, frozen=True):
    """The answer to creating a key: the only time the key itself is shown."""

    key: str  # smi_<project id>_<key id>_<secret>; the coordinator keeps its SHA-256
    info: InferenceKeyInfo


class InferenceKeyList(Base, frozen=True):
    keys: list[InferenceKeyInfo]


class CheckInferenceKeyRequest(Base, frozen=True):
    """A gateway asks whether a bearer key is a live inference key of the calling project."""

    key: str
