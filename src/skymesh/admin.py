"""The coordinator's admin API and a project's inference keys, as `up`, the CLI and tests call them."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from urllib.parse import quote

import aiohttp

from skymesh.config import Credential
from skymesh.errors import NotFound
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.inference import (
    CheckInferenceKeyRequest,
    CreateInferenceKeyRequest,
    InferenceKeyCreated,
    InferenceKeyInfo,
    InferenceKeyList,
)
from skymesh.wire.keys import CoordinatorKeyInfo, CoordinatorKeyList
from skymesh.wire.leases import LeaseList
from skymesh.wire.metainfo import CreateProjectRequest, RegisterAccessKeyRequest
from skymesh.wire.registry import (
    AdmitOperatorRequest,
    NodeList,
    OperatorAdmission,
    OperatorInfo,
    OperatorList,
)
from skymesh.wire.status import NetworkStatus

DEFAULT_TOKEN_LIFETIME = 30 * 24 * 3600.0  # seconds a join token admits new nodes

_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def alphanumeric(n: int) -> str:
    """A secret safe to paste anywhere: no leading dash, no shell or URL metacharacters."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(n))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class AdminClient:
    """Calls the coordinator with the network's admin token."""

    def __init__(
        self, coordinator_url: str | Sequence[str], admin_token: str, session: aiohttp.ClientSession
    ):
        """``coordinator_url``: one URL or several (a list, or separated by commas)."""
        self.url = coordinator_url
        self.session = session
        self.rpc = RpcClient(coordinator_url, session, bearer(admin_token))

    async def nodes(self) -> NodeList:
        return await self.rpc.send(routes.LIST_NODES, None)

    async def online_count(self) -> int:
        return sum(1 for n in (await self.nodes()).nodes if n.online)

    async def leases(self) -> LeaseList:
        """Which coordinator holds each background loop's lease (from the answering one)."""
        return await self.rpc.send(routes.LIST_LEASES, None)

    async def status(self) -> NetworkStatus:
        """What the answering coordinator knows of the network (``skymesh status``)."""
        return await self.rpc.send(routes.STATUS, None)

    async def admit_operator(
        self,
        name: str,
        regions: list[str],
        *,
        compute: bool = False,
        expires_in: float = DEFAULT_TOKEN_LIFETIME,
    ) -> OperatorAdmission:
        """Admit an operator (or issue it a new join token, with these regions)."""
        req = AdmitOperatorRequest(
            name=name, regions=regions, compute=compute, expires_in=expires_in
        )
        return await self.rpc.send(routes.ADMIT_OPERATOR, req)

    async def operators(self) -> OperatorList:
        return await self.rpc.send(routes.LIST_OPERATORS, None)

    async def revoke_operator(self, name: str) -> OperatorInfo:
        """Revoke an operator for good: none of its nodes is used from now on."""
        return await self.rpc.send(
            routes.REVOKE_OPERATOR, None, params={"operator": quote(name, safe="")}
        )

    async def coordinator_keys(self) -> CoordinatorKeyList:
        """Every coordinator key, current ones first, and the key set's version."""
        return await self.rpc.send(routes.LIST_COORDINATOR_KEYS, None)

    async def retire_coordinator_key(self, coordinator_id: str) -> CoordinatorKeyInfo:
        """Retire a coordinator's key for good: nodes stop honouring what it signs."""
        return await self.rpc.send(
            routes.RETIRE_COORDINATOR_KEY,
            None,
            params={"coordinator_id": quote(coordinator_id, safe="")},
        )

    async def create_credential(self, project_name: str) -> Credential:
        """A new project with one S3 access key: what a gateway's credentials file holds.

        The coordinator learns the project, its API key hash and the access key id;
        the S3 secret and the encryption secret are made here and never sent.
        """
        project = await self.rpc.send(
            routes.CREATE_PROJECT, CreateProjectRequest(name=project_name)
        )
        access_key = "SKY" + secrets.token_hex(8).upper()
        as_project = RpcClient(self.url, self.session, bearer(project.api_key))
        await as_project.send(
            routes.REGISTER_ACCESS_KEY, RegisterAccessKeyRequest(access_key_id=access_key)
        )
        return Credential(
            access_key_id=access_key,
            secret_access_key=alphanumeric(40),
            project_id=project.project_id,
            api_key=project.api_key,
            encryption_secret=secrets.token_hex(32),
        )


class InferenceKeys:
    """A project's inference API keys (the OpenAI API's bearer keys), with its API key."""

    def __init__(
        self, coordinator_url: str | Sequence[str], api_key: str, session: aiohttp.ClientSession
    ):
        self.rpc = RpcClient(coordinator_url, session, bearer(api_key))

    async def create(self, name: str = "") -> InferenceKeyCreated:
        """A new key: the answer is the only place the key itself is ever shown."""
        return await self.rpc.send(
            routes.CREATE_INFERENCE_KEY, CreateInferenceKeyRequest(name=name)
        )

    async def list(self) -> InferenceKeyList:
        return await self.rpc.send(routes.LIST_INFERENCE_KEYS, None)

    async def is_live(self, key: str) -> bool:
        """Whether ``key`` is a live inference key of this project."""
        try:
            await self.rpc.send(routes.CHECK_INFERENCE_KEY, CheckInferenceKeyRequest(key=key))
        except NotFound:
            return False
        return True

    async def revoke(self, key_id: str) -> InferenceKeyInfo:
        return await self.rpc.send(routes.REVOKE_INFERENCE_KEY, None, params={"key_id": key_id})
