"""Who calls the OpenAI routes: a project's inference API key, checked with the coordinator.

The bearer key is an inference API key (``smi_<project id>_<key id>_<secret>``, made
by ``POST /v1/projects/inference-keys`` or ``skymesh inference-key create``). The
gateway finds the credential it holds for the key's project and asks the coordinator,
with that project's API key, whether the key is live (``CHECK_INFERENCE_KEY``). The
answer, yes or no, is trusted for ``GatewayConfig.inference_key_ttl`` seconds (5 by
default), so a key revoked at the coordinator stops working at every gateway within
that long, and a request does not cost a coordinator round trip.

A project's S3 secret access key is refused unless ``openai_accept_s3_secret`` is set
(what gateways took before inference keys existed); the refusal says what to do.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from skymesh.config import Credential, GatewayConfig
from skymesh.errors import NotFound
from skymesh.gateway.openai.errors import OpenAIError
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.inference import CheckInferenceKeyRequest

KEY_PREFIX = "smi_"
CACHE_LIMIT = 10_000  # remembered answers; the cache is emptied when it is full


def _invalid(message: str) -> OpenAIError:
    return OpenAIError(message, status=401, code="invalid_api_key")


class BearerKeys:
    """Maps the bearer key of an OpenAI request to the credential the request runs as."""

    def __init__(
        self,
        config: GatewayConfig,
        credentials: Mapping[str, Credential],
        rpc_of: Callable[[Credential], RpcClient],
        clock: Callable[[], float] = time.monotonic,
        projects: Mapping[str, Credential] | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials  # access key id -> credential (live: keys get added)
        # project id -> the credential its inference keys act with (live): every project
        # the gateway holds the root secret of, with or without an S3 key here
        self.projects = projects
        self.rpc_of = rpc_of
        self.clock = clock
        self._answers: dict[bytes, tuple[float, Credential | None]] = {}  # sha256 -> until, who
        self.checks = 0  # questions asked of the coordinator

    async def authenticate(self, request: web.Request) -> Credential:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        if not token:
            raise OpenAIError(
                "missing 'Authorization: Bearer <key>': use an inference API key of your"
                " project (`skymesh inference-key create`; `skymesh up` prints one)",
                status=401,
                code="missing_api_key",
            )
        if token.startswith(KEY_PREFIX):
            return await self._inference_key(token)
        return self._s3_secret(token)

    async def _inference_key(self, token: str) -> Credential:
        digest = hashlib.sha256(token.encode()).digest()
        now = self.clock()
        known = self._answers.get(digest)
        if known is not None and known[0] > now:
            found = known[1]
        else:
            found = await self._check(token)
            if len(self._answers) >= CACHE_LIMIT:
                self._answers.clear()
            self._answers[digest] = (now + self.config.inference_key_ttl, found)
        if found is None:
            raise _invalid("incorrect API key: unknown or revoked inference API key")
        return found

    async def _check(self, token: str) -> Credential | None:
        """The credential of the key's project when the coordinator says the key is live."""
        project_id = token[len(KEY_PREFIX) :].split("_", 1)[0]
        credential = (
            self.projects.get(project_id)
            if self.projects is not None
            else next(
                (c for c in list(self.credentials.values()) if c.project_id == project_id), None
            )
        )
        if credential is None:  # not a project of this gateway: nobody to ask
            return None
        self.checks += 1
        try:
            await self.rpc_of(credential).send(
                routes.CHECK_INFERENCE_KEY, CheckInferenceKeyRequest(key=token)
            )
        except NotFound:
            return None
        return credential

    def _s3_secret(self, token: str) -> Credential:
        found = None
        for c in list(self.credentials.values()):
            if hmac.compare_digest(c.secret_access_key.encode(), token.encode()):
                found = c
        if found is None:
            raise _invalid("incorrect API key: use an inference API key of your project")
        if not self.config.openai_accept_s3_secret:
            raise _invalid(
                "this is an S3 secret access key, which the OpenAI API no longer takes: make"
                " an inference API key (`skymesh inference-key create`, or POST"
                " /v1/projects/inference-keys at the coordinator) and use it instead; or set"
                " openai_accept_s3_secret = true in the gateway's [gateway] config"
                " (SKYMESH_GATEWAY_OPENAI_ACCEPT_S3_SECRET=true) to keep accepting S3 secrets"
            )
        return found
