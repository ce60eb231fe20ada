"""Who is calling: the admin token, and projects by their API keys.

An API key is ``smk_<project id>_<secret>``; the coordinator stores only its
SHA-256 and compares hashes in constant time. The project id inside the key
makes the lookup a primary-key read; verified keys are remembered in memory for
``key_ttl`` seconds so the hot path seldom touches the database. With several
coordinators over one database a key removed (or rotated) through one stops
working on the others within that long.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import sqlalchemy as sa
from aiohttp import web

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import access_keys, projects
from skymesh.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from skymesh.wire.metainfo import ProjectCredentials

KEY_PREFIX = "smk"
MAX_NAME = 200
MAX_ACCESS_KEY_ID = 128
_CACHE_LIMIT = 10_000
#: Seconds a verified API key is trusted without reading the database again.
KEY_TTL = 5.0

_SELECT_HASH = sa.select(projects.c.api_key_hash).where(
    projects.c.project_id == sa.bindparam("project_id")
)


def hash_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


def find_project(conn: sa.Connection, project: str) -> str:
    """A project id from its id or its name (404 if none, 400 if several share the name)."""
    by_id = conn.execute(
        sa.select(projects.c.project_id).where(projects.c.project_id == project)
    ).scalar_one_or_none()
    if by_id is not None:
        return str(by_id)
    found = list(
        conn.execute(sa.select(projects.c.project_id).where(projects.c.name == project)).scalars()
    )
    if not found:
        raise NotFound(
            f"no project with id or name {project!r}: see `skymesh project list`",
            code="NoSuchProject",
        )
    if len(found) > 1:
        raise BadRequest(f"{len(found)} projects are named {project!r}: give the project id")
    return str(found[0])


def bearer_token(request: web.Request) -> str:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing 'Authorization: Bearer <key>' header")
    return token.strip()


class Auth:
    def __init__(
        self,
        db: Database,
        admin_token: str,
        clock: Callable[[], float] = time.time,
        key_ttl: float = KEY_TTL,
    ) -> None:
        self.db = db
        self.admin_token = admin_token
        self.clock = clock
        self.key_ttl = key_ttl
        # sha256 of a verified key -> (project id, monotonic time it was verified)
        self._known: dict[bytes, tuple[str, float]] = {}

    def require_admin(self, request: web.Request) -> None:
        if not self.admin_token:
            raise Forbidden("the admin API is disabled (no admin_token configured)")
        token = bearer_token(request)
        if not hmac.compare_digest(token.encode(), self.admin_token.encode()):
            raise Unauthorized("bad admin token")

    async def project_of(self, request: web.Request) -> str:
        """The project whose API key authorises ``request``."""
        key = bearer_token(request)
        digest = hash_key(key)
        known = self._known.get(digest)
        if known is not None and time.monotonic() - known[1] < self.key_ttl:
            return known[0]
        prefix, _, rest = key.partition("_")
        project_id, _, secret = rest.partition("_")
        if prefix != KEY_PREFIX or not project_id or not secret:
            raise Unauthorized("malformed API key")
        stored = await self.db.read(
            lambda conn: conn.execute(_SELECT_HASH, {"project_id": project_id}).scalar_one_or_none()
        )
        if stored is None or not hmac.compare_digest(stored, digest):
            raise Unauthorized("unknown API key")
        if len(self._known) >= _CACHE_LIMIT:
            self._known.clear()
        self._known[digest] = (project_id, time.monotonic())
        return project_id

    async def create_project(self, name: str) -> ProjectCredentials:
        if not name or len(name) > MAX_NAME:
            raise BadRequest(f"project name must be 1-{MAX_NAME} characters")
        project_id = secrets.token_hex(16)
        api_key = f"{KEY_PREFIX}_{project_id}_{secrets.token_urlsafe(32).replace('_', '-')}"
        row = {
            "project_id": project_id,
            "name": name,
            "api_key_hash": hash_key(api_key),
            "created_at": self.clock(),
        }
        await self.db.write(lambda conn: conn.execute(projects.insert(), row))
        return ProjectCredentials(project_id=project_id, name=name, api_key=api_key)

    async def register_access_key(self, project_id: str, access_key_id: str) -> None:
        """Record that an S3 access key id belongs to ``project_id`` (idempotent)."""
        if not access_key_id or len(access_key_id) > MAX_ACCESS_KEY_ID:
            raise BadRequest(f"access key id must be 1-{MAX_ACCESS_KEY_ID} characters")
        now = self.clock()

        def txn(conn: sa.Connection) -> None:
            owner = conn.execute(
                sa.select(access_keys.c.project_id).where(
                    access_keys.c.access_key_id == access_key_id
                )
            ).scalar_one_or_none()
            if owner == project_id:
                return
            if owner is not None:
                raise Conflict(
                    "access key id is registered to another project", code="AccessKeyInUse"
                )
            conn.execute(
                access_keys.insert().values(
                    access_key_id=access_key_id, project_id=project_id, created_at=now
                )
            )

        await self.db.write(txn)
