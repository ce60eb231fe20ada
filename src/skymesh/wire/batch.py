"""Wire structs of the Batch API (``/v1/files``, ``/v1/batches`` on the gateway).

Three hops: the gateway asks the coordinator for a :class:`BatchOrder`
(``POST /v1/compute/batch-orders``); the coordinator signs one only for a compute
node inside the residency of the input's bucket. The gateway hands it to that
node with the object keys (``POST /v1/batch/run``, body :class:`BatchStart`),
and the node shows the same order to the coordinator's scoped routes
(``/v1/compute/batch-scope/...``) to read that one input and write those two
uploads, and nothing else. docs/spec/node-protocol.md and
docs/spec/coordinator-api.md describe the routes.

An interactive request that reads a stored object (``/v1/embeddings`` with
``skymesh.input_object``) uses the same machinery with a *read* order
(``purpose="read"``, :class:`ReadOrderRequest`): one object version to read, no
uploads, the node answering in the same request (:class:`ObjectEmbedRequest`).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from skymesh.wire.base import Base
from skymesh.wire.signing import Signed

BatchEndpoint = Literal["/v1/embeddings", "/v1/chat/completions"]
BatchRunStatus = Literal["in_progress", "completed", "failed", "cancelled"]
OrderPurpose = Literal["batch", "read"]


class BatchOrder(Base, frozen=True):
    """Lets one node run one batch: read one object version, write two multipart uploads.

    Signed by a coordinator; carried in ``X-Skymesh-Order`` to the node and, by the
    node, to the coordinator's scoped routes. Valid until ``expires_at`` (the
    completion window); ``serial`` is spent once by the node when the run starts.
    """

    serial: str
    coordinator_id: str
    node_id: str
    project_id: str
    batch_id: str
    bucket: str
    input_key: str
    input_version: str
    output_key: str
    output_upload: str
    error_key: str
    error_upload: str
    model: str
    endpoint: BatchEndpoint
    max_tokens: int  # per chat line
    residency: str  # the bucket's location constraint when signed ("" anywhere)
    expires_at: float
    issued_at: float
    # metering: what the node offered for the model when the order was signed (USD
    # per 1M tokens) and its region, so the batch is priced as offered
    price_in: float = 0.0
    price_out: float = 0.0
    region: str = ""
    # "read": one interactive request reading the input (no uploads; output keys
    # and upload ids empty), served by POST /v1/infer/embeddings-object
    purpose: OrderPurpose = "batch"


class BatchOrderRequest(Base, frozen=True):
    """``POST /v1/compute/batch-orders``: ``prefer`` is the gateway's ranking (best first);
    the coordinator takes the first that is inside the bucket's residency."""

    batch_id: str
    bucket: str
    input_key: str
    input_version: str
    output_key: str
    output_upload: str
    error_key: str
    error_upload: str
    model: str
    endpoint: BatchEndpoint
    max_tokens: int
    prefer: list[str] = msgspec.field(default_factory=list)


class ReadOrderRequest(Base, frozen=True):
    """``POST /v1/compute/read-orders``: a read order for an interactive request on the
    object version ``bucket/key@version_id``, for a node inside the bucket's residency
    (and in ``regions`` when the request names some), ``prefer`` first."""

    bucket: str
    key: str
    version_id: str
    model: str
    endpoint: BatchEndpoint = "/v1/embeddings"
    prefer: list[str] = msgspec.field(default_factory=list)
    regions: list[str] = msgspec.field(default_factory=list)


class ObjectEmbedRequest(Base, frozen=True):
    """``POST /v1/infer/embeddings-object`` on a node (with a read order): embed the
    object's inputs; the data key is the object version's, unwrapped by the gateway."""

    model: str
    input_data_key: bytes
    encoding_format: Literal["float", "base64"] = "float"


class BatchOrderGrant(Base, frozen=True):
    """The signed order and where its node is."""

    order: Signed
    node_id: str
    address: str
    region: str


class BatchStart(Base, frozen=True):
    """``POST /v1/batch/run`` body: the data keys of the input and of the two outputs.

    The gateway unwraps them with the bucket key; the node never sees the project's
    root secret or any other object's key (docs/inference.md, "Batch API").
    """

    input_data_key: bytes
    output_data_key: bytes
    error_data_key: bytes


class BatchUsage(Base, frozen=True):
    """What a batch consumed, signed by the node that ran it (``POST .../batch-scope/usage``).

    Sent by the node itself when its run ends, once per batch order: the
    coordinator records it under the order's serial, so a resend is a duplicate,
    and only a signature by the order's node counts, so a gateway (which holds
    the order too) can neither inflate the counts nor report a batch twice.
    Totals of the lines that ran (``lines``): embeddings' input tokens, chat's
    prompt and completion tokens.
    """

    order_serial: str
    batch_id: str
    lines: int
    prompt_tokens: int
    completion_tokens: int
    complete: bool  # the run completed (False: cancelled or failed midway)


class BatchProgress(Base, frozen=True):
    """What a node answers about a batch it runs (``GET /v1/batch/{id}``)."""

    batch_id: str
    status: BatchRunStatus
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors_written: bool = False  # the error file was completed (else its upload was aborted)
    message: str = ""  # why the run failed
