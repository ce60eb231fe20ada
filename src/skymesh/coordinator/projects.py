"""Projects and their keys as the administrator manages them (admin routes).

The administrator lists projects, deletes an empty one, and issues, lists and revokes
keys: S3 access keys (an id recorded here; the secret is derived from the project's
root secret by whoever holds it, never sent here: ``skymesh.access_secret``) and
inference API keys (``inference/keys.py``). A gateway reads its projects' access keys
with each project's API key (``PROJECT_ACCESS_KEYS``) every few seconds, so a key
issued, revoked or expired here takes effect there within that long.

| route | auth | request -> response |
|---|---|---|
| GET /v1/admin/projects | admin | ProjectList |
| DELETE /v1/admin/projects/{project} | admin | ProjectInfo (409 ProjectNotEmpty while it holds buckets) |
| POST /v1/admin/projects/{project}/keys | admin | CreateKeysRequest -> KeysCreated |
| GET /v1/admin/projects/{project}/keys | admin | KeyList |
| GET /v1/admin/keys | admin | KeyList (every project) |
| POST /v1/admin/keys/{key_id}/revoke | admin | KeyList (the key revoked) |
| GET /v1/projects/access-keys | project | AccessKeyList (the caller's) |
| GET /v1/projects/self/keys | project | KeyList (the caller's) |
| POST /v1/projects/self/keys | project | CreateKeysRequest -> KeysCreated (the caller's) |
| POST /v1/projects/self/keys/{key_id}/revoke | project | KeyList (404 unless the caller's) |

The ``self`` routes are the same operations for the calling project (its API key): the
tenant console reaches them through a gateway, which holds the project's root secret and
derives a new S3 key's secret itself, so the coordinator still learns none.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from skymesh.coordinator.auth import MAX_NAME, find_project
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import (
    access_keys,
    buckets,
    inference_keys,
    project_routing,
    projects,
)
from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.inference.keys import InferenceKeys, key_info
from skymesh.errors import BadRequest, Conflict, NotFound
from skymesh.wire import routes
from skymesh.wire.inference import InferenceKeyCreated
from skymesh.wire.projects import (
    AccessKeyInfo,
    AccessKeyList,
    CreateKeysRequest,
    KeyList,
    KeysCreated,
    ProjectInfo,
    ProjectList,
)

MAX_LIVE_ACCESS_KEYS = 100  # per project: revoke one to make another
MAX_LIFETIME = 100 * 365 * 86400.0  # longer is "never": give no expiry


def new_access_key_id() -> str:
    """``SKY`` and 16 upper-case hex digits, as every skymesh access key id."""
    return "SKY" + secrets.token_hex(8).upper()


def _access_info(row: Any) -> AccessKeyInfo:
    return AccessKeyInfo(
        access_key_id=row.access_key_id,
        project_id=row.project_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        name=row.name,
    )


def _live(table: sa.Table, now: float) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c.revoked_at.is_(None), sa.or_(table.c.expires_at.is_(None), table.c.expires_at > now)
    )


class ProjectAdmin:
    def __init__(
        self,
        db: Database,
        inference: InferenceKeys,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.inference = inference
        self.clock = clock

    async def list(self) -> ProjectList:
        now = self.clock()

        def count(table: sa.Table, *where: Any) -> Any:
            return (
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.project_id == projects.c.project_id, *where)
                .scalar_subquery()
            )

        query = sa.select(
            projects.c.project_id,
            projects.c.name,
            projects.c.created_at,
            count(buckets).label("buckets"),
            count(access_keys, _live(access_keys, now)).label("access"),
            count(inference_keys, _live(inference_keys, now)).label("inference"),
        ).order_by(projects.c.created_at, projects.c.project_id)
        rows = await self.db.read(lambda conn: conn.execute(query).all())
        return ProjectList(
            projects=[
                ProjectInfo(
                    project_id=r.project_id,
                    name=r.name,
                    created_at=r.created_at,
                    buckets=r.buckets,
                    live_access_keys=r.access,
                    live_inference_keys=r.inference,
                )
                for r in rows
            ]
        )

    async def delete(self, project: str) -> ProjectInfo:
        """Delete a project that holds no bucket (so no upload either: an upload is in a
        bucket): its keys and routing weights go with it, its usage rows stay."""

        def txn(conn: sa.Connection) -> ProjectInfo:
            project_id = find_project(conn, project)
            row = conn.execute(sa.select(projects).where(projects.c.project_id == project_id)).one()
            names = list(
                conn.execute(
                    sa.select(buckets.c.name)
                    .where(buckets.c.project_id == project_id)
                    .order_by(buckets.c.name)
                ).scalars()
            )
            if names:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                raise Conflict(
                    f"project {row.name!r} holds {len(names)} bucket(s) ({shown}): empty and"
                    " delete them first (e.g. `aws s3 rb s3://BUCKET --force`), then delete"
                    " the project",
                    code="ProjectNotEmpty",
                )
            for table in (access_keys, inference_keys, project_routing):
                conn.execute(table.delete().where(table.c.project_id == project_id))
            conn.execute(projects.delete().where(projects.c.project_id == project_id))
            return ProjectInfo(project_id=project_id, name=row.name, created_at=row.created_at)

        return await self.db.write(txn)

    async def create_keys(self, project: str, req: CreateKeysRequest) -> KeysCreated:
        if len(req.name) > MAX_NAME:
            raise BadRequest(f"a key's name has at most {MAX_NAME} characters")
        if req.expires_in is not None and not (0 < req.expires_in <= MAX_LIFETIME):
            raise BadRequest(f"expires_in must be 1 s to {MAX_LIFETIME:.0f} s, or absent")
        if req.scope not in ("s3", "inference", "all"):
            raise BadRequest("scope must be s3, inference or all")
        now = self.clock()
        expires_at = None if req.expires_in is None else now + req.expires_in
        project_id = await self.db.read(lambda conn: find_project(conn, project))
        access: AccessKeyInfo | None = None
        inference: InferenceKeyCreated | None = None
        if req.scope in ("s3", "all"):
            access = AccessKeyInfo(
                access_key_id=new_access_key_id(),
                project_id=project_id,
                created_at=now,
                expires_at=expires_at,
                name=req.name,
            )
            row = {
                "access_key_id": access.access_key_id,
                "project_id": project_id,
                "created_at": now,
                "expires_at": expires_at,
                "revoked_at": None,
                "name": req.name,
            }

            def txn(conn: sa.Connection) -> None:
                live = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(access_keys)
                    .where(access_keys.c.project_id == project_id, _live(access_keys, now))
                ).scalar_one()
                if live >= MAX_LIVE_ACCESS_KEYS:
                    raise Conflict(
                        f"the project has {live} live access keys, the most it may:"
                        " revoke one first (`skymesh keys revoke ID`)",
                        code="TooManyAccessKeys",
                    )
                conn.execute(access_keys.insert(), row)

            await self.db.write(txn)
        if req.scope in ("inference", "all"):
            inference = await self.inference.create(project_id, req.name, expires_at)
        return KeysCreated(project_id=project_id, access_key=access, inference_key=inference)

    async def keys(self, project: str | None) -> KeyList:
        """Keys of ``project`` (an id or a name), or of every project."""

        def txn(conn: sa.Connection) -> KeyList:
            project_id = find_project(conn, project) if project is not None else None
            a = sa.select(access_keys).order_by(
                access_keys.c.created_at, access_keys.c.access_key_id
            )
            i = sa.select(inference_keys).order_by(
                inference_keys.c.created_at, inference_keys.c.key_id
            )
            if project_id is not None:
                a = a.where(access_keys.c.project_id == project_id)
                i = i.where(inference_keys.c.project_id == project_id)
            return KeyList(
                access_keys=[_access_info(r) for r in conn.execute(a)],
                inference_keys=[key_info(r) for r in conn.execute(i)],
            )

        return await self.db.read(txn)

    async def access_keys_of(self, project_id: str) -> AccessKeyList:
        """The caller's own access keys, as its gateways refresh them."""
        query = sa.select(access_keys).where(access_keys.c.project_id == project_id)
        rows = await self.db.read(lambda conn: conn.execute(query).all())
        return AccessKeyList(keys=[_access_info(r) for r in rows])

    async def revoke(self, key_id: str, project_id: str | None = None) -> KeyList:
        """Revoke an access key (by its id) or an inference key (by its key id); revoking
        one already revoked answers it again. With ``project_id``, only a key of that
        project: another's answers 404 as an unknown one does, and is left alone."""
        now = self.clock()

        def mine(table: sa.Table, column: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
            if project_id is None:
                return column == key_id
            return sa.and_(column == key_id, table.c.project_id == project_id)

        a_key = mine(access_keys, access_keys.c.access_key_id)
        i_key = mine(inference_keys, inference_keys.c.key_id)

        def txn(conn: sa.Connection) -> KeyList:
            for table, where in ((access_keys, a_key), (inference_keys, i_key)):
                conn.execute(
                    table.update().where(where, table.c.revoked_at.is_(None)).values(revoked_at=now)
                )
            a = conn.execute(sa.select(access_keys).where(a_key))
            i = conn.execute(sa.select(inference_keys).where(i_key))
            found = KeyList(
                access_keys=[_access_info(r) for r in a],
                inference_keys=[key_info(r) for r in i],
            )
            if not found.access_keys and not found.inference_keys:
                raise NotFound(
                    f"no access key or inference key {key_id!r}: see `skymesh keys list`",
                    code="NoSuchKey",
                )
            return found

        return await self.db.write(txn)


def add_project_routes(table: RouteTable, admin: ProjectAdmin) -> None:
    async def list_projects(_call: Call, _req: None) -> ProjectList:
        return await admin.list()

    async def delete_project(call: Call, _req: None) -> ProjectInfo:
        return await admin.delete(call.request.match_info["project"])

    async def create_keys(call: Call, req: CreateKeysRequest) -> KeysCreated:
        return await admin.create_keys(call.request.match_info["project"], req)

    async def project_keys(call: Call, _req: None) -> KeyList:
        return await admin.keys(call.request.match_info["project"])

    async def all_keys(_call: Call, _req: None) -> KeyList:
        return await admin.keys(None)

    async def revoke_key(call: Call, _req: None) -> KeyList:
        return await admin.revoke(call.request.match_info["key_id"])

    async def own_access_keys(call: Call, _req: None) -> AccessKeyList:
        return await admin.access_keys_of(call.project_id)

    table.add(routes.LIST_PROJECTS, list_projects)
    table.add(routes.DELETE_PROJECT, delete_project)
    table.add(routes.CREATE_KEYS, create_keys)
    table.add(routes.PROJECT_KEYS, project_keys)
    table.add(routes.LIST_KEYS, all_keys)
    table.add(routes.REVOKE_KEY, revoke_key)

    async def own_keys(call: Call, _req: None) -> KeyList:
        return await admin.keys(call.project_id)

    async def create_own_keys(call: Call, req: CreateKeysRequest) -> KeysCreated:
        return await admin.create_keys(call.project_id, req)

    async def revoke_own_key(call: Call, _req: None) -> KeyList:
        return await admin.revoke(call.request.match_info["key_id"], call.project_id)

    table.add(routes.PROJECT_ACCESS_KEYS, own_access_keys)
    table.add(routes.OWN_KEYS, own_keys)
    table.add(routes.CREATE_OWN_KEYS, create_own_keys)
    table.add(routes.REVOKE_OWN_KEY, revoke_own_key)
