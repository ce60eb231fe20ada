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
from skymesh.wire.accounting import AccountingUsage, PayoutReport
from skymesh.wire.durability import ObjectPieces
from skymesh.wire.inference import (
    CheckInferenceKeyRequest,
    CreateInferenceKeyRequest,
    InferenceKeyCreated,
    InferenceKeyInfo,
    InferenceKeyList,
)
from skymesh.wire.keys import CoordinatorKeyInfo, CoordinatorKeyList
from skymesh.wire.leases import LeaseList
from skymesh.wire.metainfo import (
    CreateProjectRequest,
    ProjectCredentials,
    RegisterAccessKeyRequest,
)
from skymesh.wire.projects import (
    CreateKeysRequest,
    KeyList,
    KeysCreated,
    ProjectInfo,
    ProjectList,
    Scope,
)
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

    async def accounting(
        self, by: str = "node", since: float = 0.0, until: float | None = None
    ) -> AccountingUsage:
        """Hourly rollups summed per node, operator or project over ``[since, until)``."""
        query = {"by": by, "since": repr(since)}
        if until is not None:
            query["until"] = repr(until)
        return await self.rpc.send(routes.ACCOUNTING_USAGE, None, query=query)

    async def payouts(self, month: str) -> PayoutReport:
        """Each operator's pay for ``month`` (YYYY-MM) at the coordinator's prices."""
        return await self.rpc.send(routes.PAYOUTS, None, query={"month": month})

    async def object_pieces(self, bucket: str, key: str) -> ObjectPieces:
        """Which node holds which piece of the latest version of ``bucket``/``key``."""
        return await self.rpc.send(routes.OBJECT_PIECES, None, query={"bucket": bucket, "key": key})

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

    async def create_project(self, name: str) -> ProjectCredentials:
        """A new project: its id and its coordinator API key (shown only here)."""
        return await self.rpc.send(routes.CREATE_PROJECT, CreateProjectRequest(name=name))

    async def projects(self) -> ProjectList:
        """Every project with its count of buckets and of live keys."""
        return await self.rpc.send(routes.LIST_PROJECTS, None)

    async def delete_project(self, project: str) -> ProjectInfo:
        """Delete a project (its id or name) that holds no bucket; 409 ProjectNotEmpty else."""
        return await self.rpc.send(
            routes.DELETE_PROJECT, None, params={"project": quote(project, safe="")}
        )

    async def create_keys(
        self,
        project: str,
        scope: Scope = "s3",
        *,
        expires_in: float | None = None,
        name: str = "",
    ) -> KeysCreated:
        """An S3 access key id (derive its secret with ``access_secret.derive_s3_secret``
        and the project's root secret), an inference API key, or both (``scope="all"``)."""
        req = CreateKeysRequest(scope=scope, expires_in=expires_in, name=name)
        return await self.rpc.send(
            routes.CREATE_KEYS, req, params={"project": quote(project, safe="")}
        )

    async def keys(self, project: str | None = None) -> KeyList:
        """Keys of ``project`` (its id or name), or of every project; never a secret."""
        if project is None:
            return await self.rpc.send(routes.LIST_KEYS, None)
        return await self.rpc.send(
            routes.PROJECT_KEYS, None, params={"project": quote(project, safe="")}
        )

    async def revoke_key(self, key_id: str) -> KeyList:
        """Revoke an S3 access key or an inference key by its id; gateways refuse it
        within their key_refresh_interval (access keys) or inference_key_ttl."""
        return await self.rpc.send(
            routes.REVOKE_KEY, None, params={"key_id": quote(key_id, safe="")}
        )

    async def create_credential(self, project_name: str) -> Credential:
        """A new project with one S3 access key: what a gateway's credentials file holds.

        The coordinator learns the project, its API key hash and the access key id;
        the S3 secret and the encryption secret are made here and never sent.
        """
        project = await self.create_project(project_name)
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
