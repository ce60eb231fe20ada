"""``/v1/embeddings`` over a stored object: the request runs inside the residency of its data.

With ``extra_body={"skymesh": {"input_object": "bucket/key"}}`` the inputs are
not in the request but in a stored object (``.json``, ``.jsonl`` or text; see
:func:`skymesh.node.batch.object_inputs`). Routing then has the hard filter the
Batch API has: only a compute node inside the bucket's residency may serve it.
The gateway ranks nodes as for any request, and the coordinator keeps only those
inside the residency (``POST /v1/compute/read-orders``: the same chooser and
residency rule as batches, ``coordinator/batch.py``) and signs a *read order*
for the best of them, opening that one object version and nothing else. The
node reads the object through a scoped client with the one data key the
gateway unwraps for it, embeds its inputs and answers in the request. With no
compute node inside the residency the answer is 503 ``no_compute_in_residency``:
the request never runs elsewhere.

One node is tried (the coordinator's choice); a node that fails gives 503
``no_healthy_backend`` and the caller retries (a retry gets a fresh order, and
the failed node sits out its 15 s). The node meters the request itself, as it
does a batch.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from skymesh.compute.routing import rank
from skymesh.config import Credential
from skymesh.errors import NotFound, SkymeshError
from skymesh.gateway.openai.directory import ComputeDirectory
from skymesh.gateway.openai.errors import OpenAIError, bad_request, from_error
from skymesh.gateway.openai.files import ProjectFiles
from skymesh.gateway.openai.schema import EmbeddingsParams
from skymesh.rpc import RpcClient, error_from_body
from skymesh.wire import routes
from skymesh.wire.base import ErrorBody
from skymesh.wire.batch import BatchOrderGrant, ObjectEmbedRequest, ReadOrderRequest
from skymesh.wire.signing import ORDER_HEADER, encode_header

log = logging.getLogger(__name__)

MAX_OBJECT = 4 * 1024 * 1024  # as the API's body cap (the node checks it too)
PARAM = "skymesh.input_object"
NODE_HEADER = "X-Skymesh-Node"
REGION_HEADER = "X-Skymesh-Region"


class StoredInputs:
    """Embeddings whose inputs are a stored object, served inside that object's residency."""

    def __init__(
        self, files: ProjectFiles, directory: ComputeDirectory, session: aiohttp.ClientSession
    ) -> None:
        self.files = files
        self.directory = directory
        self.session = session

    async def embeddings(self, p: EmbeddingsParams, c: Credential, rpc: RpcClient) -> web.Response:
        bucket, key = p.input_object.split("/", 1)
        nodes = await self.directory.nodes(rpc)
        if not any(m.name == p.model for n in nodes for m in n.advert.models):
            raise from_error(NotFound(f"no online compute node serves {p.model!r}"))
        client = self.files.client(c)
        try:
            handle = await client.open_object(bucket, key)
        except NotFound as e:
            raise OpenAIError(
                f"no stored object {p.input_object!r}: {e.message}",
                status=404,
                code="input_object_not_found",
                param=PARAM,
            ) from e
        if handle.info.size > MAX_OBJECT:
            raise bad_request(f"the input object is over {MAX_OBJECT} bytes", PARAM)
        weights = (
            p.routing.weights if p.routing.weights_named else await self.directory.weights(rpc)
        )
        ranked = rank(self.directory.candidates(nodes), p.model, weights, p.routing.regions or None)
        req = ReadOrderRequest(
            bucket=bucket,
            key=key,
            version_id=handle.info.version_id,
            model=p.model,
            prefer=[cand.node_id for cand in ranked],
            regions=list(p.routing.regions),
        )
        try:
            grant = await rpc.send(routes.READ_ORDERS, req)
        except SkymeshError as e:
            if e.code == "NoComputeInResidency":
                raise OpenAIError(
                    e.message, status=503, code="no_compute_in_residency", param=PARAM
                ) from e
            raise
        body = ObjectEmbedRequest(
            model=p.model,
            input_data_key=client.data_key(handle.info),
            encoding_format=p.encoding_format,  # type: ignore[arg-type]
        )
        result = await self._run(grant, body)
        vector = result["data"][0]["embedding"]
        dims = len(base64.b64decode(vector)) // 4 if isinstance(vector, str) else len(vector)
        if p.dimensions is not None and p.dimensions != dims:
            raise bad_request(
                f"{p.model} makes {dims}-dimensional vectors; omit 'dimensions' or set it to {dims}",
                "dimensions",
            )
        resp = web.json_response(result)
        resp.headers[NODE_HEADER] = grant.node_id
        resp.headers[REGION_HEADER] = grant.region
        return resp

    async def _run(self, grant: BatchOrderGrant, body: ObjectEmbedRequest) -> dict[str, Any]:
        address = self.directory.routes.get(grant.address, grant.address)
        try:
            async with self.session.post(
                f"{address}/v1/infer/embeddings-object",
                data=msgspec.json.encode(body),
                headers={
                    ORDER_HEADER: encode_header(grant.order),
                    "Content-Type": "application/json",
                },
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            self.directory.failed(grant.node_id)
            raise _unavailable(f"node {grant.node_id} unreachable: {e}") from e
        if status == 200:
            self.directory.succeeded(grant.node_id)
            result: dict[str, Any] = msgspec.json.decode(raw)
            return result
        try:
            err = msgspec.json.decode(raw, type=ErrorBody)
        except (msgspec.DecodeError, msgspec.ValidationError):
            err = ErrorBody(code="", message=raw[:200].decode(errors="replace") or str(status))
        if status in (400, 413):  # the object's fault: any node would say the same
            bad = error_from_body(status, err)
            raise OpenAIError(
                bad.message, status=400, code=bad.code or "invalid_value", param=PARAM
            )
        if status != 429:
            self.directory.failed(grant.node_id)
        log.info("node %s failed a stored-input request: %s %s", grant.node_id, status, err.code)
        raise _unavailable(f"node {grant.node_id} failed: {err.message}")


def _unavailable(message: str) -> OpenAIError:
    return OpenAIError(
        f"{message}: retry shortly", status=503, code="no_healthy_backend", retry_after=1
    )
