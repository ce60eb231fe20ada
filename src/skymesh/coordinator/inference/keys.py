"""Inference API keys: a project's revocable bearer keys for the OpenAI-compatible API.

A project's S3 secret is a long-term credential that also signs every S3 request;
handing it to each program that calls a model would spread it. So a project makes
as many inference keys as it likes, names them, and revokes any of them at once;
a gateway accepts one as ``Authorization: Bearer`` for the OpenAI routes and asks
this coordinator whether it is live (``CHECK_INFERENCE_KEY``, with the project's own
API key: a gateway can only check keys of projects it holds credentials for).

A key is ``smi_<project id>_<key id>_<secret>``. The coordinator keeps only its
SHA-256 and compares hashes in constant time; the key itself is in the answer to
its creation and nowhere else. Every way a key can fail (malformed, unknown,
another project's, revoked, expired, wrong secret) answers the same 404, so a caller learns
nothing about keys it does not hold.

| route | auth | request -> response |
|---|---|---|
| POST /v1/projects/inference-keys | project | CreateInferenceKeyRequest -> InferenceKeyCreated |
| GET /v1/projects/inference-keys | project | InferenceKeyList (revoked ones too) |
| DELETE /v1/projects/inference-keys/{key_id} | project | InferenceKeyInfo (idempotent) |
| POST /v1/projects/inference-keys/check | project | CheckInferenceKeyRequest -> InferenceKeyInfo |
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import inference_keys
from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.errors import BadRequest, Conflict, NotFound
from skymesh.wire import routes
from skymesh.wire.inference import (
    CheckInferenceKeyRequest,
    CreateInferenceKeyRequest,
    InferenceKeyCreated,
    InferenceKeyInfo,
    InferenceKeyList,
)

KEY_PREFIX = "smi"
MAX_NAME = 200
MAX_LIVE_KEYS = 100  # per project: revoke one to make another
MAX_KEY_LENGTH = 256  # a longer bearer key is not one of ours


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_key(key: str) -> tuple[str, str] | None:
    """(project id, key id) of a well-formed inference key, else None."""
    if len(key) > MAX_KEY_LENGTH:
        return None
    parts = key.split("_")
    if len(parts) != 4 or parts[0] != KEY_PREFIX or not all(parts[1:]):
        return None
    return parts[1], parts[2]


def _no_key() -> NotFound:
    return NotFound("unknown or revoked inference key", code="NoSuchInferenceKey")


def key_info(row: Any) -> InferenceKeyInfo:
    return InferenceKeyInfo(
        key_id=row.key_id,
        project_id=row.project_id,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        expires_at=row.expires_at,
    )


class InferenceKeys:
    """Create, list, revoke and check the inference keys of projects."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def create(
        self, project_id: str, name: str, expires_at: float | None = None
    ) -> InferenceKeyCreated:
        """A new key of ``project_id``, refused at ``expires_at`` (None: never)."""
        if len(name) > MAX_NAME:
            raise BadRequest(f"an inference key's name has at most {MAX_NAME} characters")
        key_id = secrets.token_hex(8)
        key = f"{KEY_PREFIX}_{project_id}_{key_id}_{secrets.token_urlsafe(32).replace('_', '-')}"
        row: dict[str, Any] = {
            "key_id": key_id,
            "project_id": project_id,
            "name": name,
            "key_hash": _hash(key),
            "created_at": self.clock(),
            "revoked_at": None,
            "expires_at": expires_at,
        }

        def txn(conn: sa.Connection) -> None:
            live = conn.execute(
                sa.select(sa.func.count())
                .select_from(inference_keys)
                .where(
                    inference_keys.c.project_id == project_id,
                    inference_keys.c.revoked_at.is_(None),
                )
            ).scalar_one()
            if live >= MAX_LIVE_KEYS:
                raise Conflict(
                    f"the project has {live} live inference keys, the most it may:"
                    " revoke one first",
                    code="TooManyInferenceKeys",
                )
            conn.execute(inference_keys.insert(), row)

        await self.db.write(txn)
        info = InferenceKeyInfo(
            key_id=key_id,
            project_id=project_id,
            name=name,
            created_at=row["created_at"],
            expires_at=expires_at,
        )
        return InferenceKeyCreated(key=key, info=info)

    async def list(self, project_id: str) -> InferenceKeyList:
        rows = await self.db.read(
            lambda conn: conn.execute(
                sa.select(inference_keys)
                .where(inference_keys.c.project_id == project_id)
                .order_by(inference_keys.c.created_at, inference_keys.c.key_id)
            ).all()
        )
        return InferenceKeyList(keys=[key_info(r) for r in rows])

    async def revoke(self, project_id: str, key_id: str) -> InferenceKeyInfo:
        """Revoke one of the project's keys; another project's key is as unknown as none."""
        now = self.clock()

        def txn(conn: sa.Connection) -> InferenceKeyInfo:
            mine = (inference_keys.c.key_id == key_id) & (inference_keys.c.project_id == project_id)
            conn.execute(
                inference_keys.update()
                .where(mine, inference_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = conn.execute(sa.select(inference_keys).where(mine)).one_or_none()
            if row is None:
                raise _no_key()
            return key_info(row)

        return await self.db.write(txn)

    async def check(self, project_id: str, key: str) -> InferenceKeyInfo:
        """The key's record when ``key`` is a live key of ``project_id``, else 404."""
        parsed = parse_key(key)
        if parsed is None or parsed[0] != project_id:
            raise _no_key()
        row = await self.db.read(
            lambda conn: conn.execute(
                sa.select(inference_keys).where(inference_keys.c.key_id == parsed[1])
            ).one_or_none()
        )
        if (
            row is None
            or not hmac.compare_digest(row.key_hash, _hash(key))
            or row.project_id != project_id
            or row.revoked_at is not None
            or (row.expires_at is not None and self.clock() >= row.expires_at)
        ):
            raise _no_key()
        return key_info(row)


def add_key_routes(table: RouteTable, keys: InferenceKeys) -> None:
    async def create(call: Call, req: CreateInferenceKeyRequest) -> InferenceKeyCreated:
        return await keys.create(call.project_id, req.name)

    async def list_keys(call: Call, _req: None) -> InferenceKeyList:
        return await keys.list(call.project_id)

    async def revoke(call: Call, _req: None) -> InferenceKeyInfo:
        return await keys.revoke(call.project_id, call.request.match_info["key_id"])

    async def check(call: Call, req: CheckInferenceKeyRequest) -> InferenceKeyInfo:
        return await keys.check(call.project_id, req.key)

    table.add(routes.CREATE_INFERENCE_KEY, create)
    table.add(routes.LIST_INFERENCE_KEYS, list_keys)
    table.add(routes.REVOKE_INFERENCE_KEY, revoke)
    table.add(routes.CHECK_INFERENCE_KEY, check)
