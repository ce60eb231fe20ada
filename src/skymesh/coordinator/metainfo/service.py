"""The metainfo subsystem: projects and their keys, and the metadata API over them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from skymesh.coordinator.auth import Auth
from skymesh.coordinator.endpoints import Call, RouteTable
from skymesh.coordinator.lifecycle import Chore
from skymesh.coordinator.metainfo.api import PROJECT_OPERATIONS, ProjectOperation
from skymesh.coordinator.metainfo.apply_lifecycle import LifecycleRules
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.expire_uploads import EXPIRE_UPLOADS_INTERVAL, expire_uploads
from skymesh.loops import DrivenLoop
from skymesh.wire import routes
from skymesh.wire.base import Empty
from skymesh.wire.metainfo import (
    CreateProjectRequest,
    ProjectCredentials,
    RegisterAccessKeyRequest,
)


class MetainfoService:
    """Buckets, objects, segments and uploads of each project (``context``), and its projects.

    Chore ``expire-uploads`` forgets pending uploads past their expiry;
    ``lifecycle-rules`` applies buckets' S3 lifecycle rules once a day.
    """

    def __init__(self, context: Metainfo, auth: Auth) -> None:
        self.context = context
        self.auth = auth
        interval = min(EXPIRE_UPLOADS_INTERVAL, context.config.pending_upload_ttl)
        self.lifecycle_rules = LifecycleRules(context)
        self.chores = [
            Chore(DrivenLoop.periodic("expire-uploads", interval, lambda: expire_uploads(context))),
            Chore(DrivenLoop("lifecycle-rules", self.lifecycle_rules.step)),
        ]

    def add_routes(self, table: RouteTable) -> None:
        """Projects and access keys, then every project route of the metadata API."""
        auth = self.auth

        async def create_project(_call: Call, req: CreateProjectRequest) -> ProjectCredentials:
            return await auth.create_project(req.name)

        async def register_access_key(call: Call, req: RegisterAccessKeyRequest) -> Empty:
            await auth.register_access_key(call.project_id, req.access_key_id)
            return Empty()

        table.add(routes.CREATE_PROJECT, create_project)
        table.add(routes.REGISTER_ACCESS_KEY, register_access_key)
        for route, op in PROJECT_OPERATIONS.items():
            table.add(route, _as_project(self.context, op))


def _as_project(m: Metainfo, op: ProjectOperation) -> Callable[[Call, Any], Awaitable[Any]]:
    """``op`` run as the calling project (its API key)."""

    async def run(call: Call, req: Any) -> Any:
        return await op(m, call.project_id, req)

    return run
