"""The coordinator process: database, registry, metadata operations and HTTP API."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from skymesh.codec import RedundancyScheme
from skymesh.config import CoordinatorConfig
from skymesh.coordinator.api import create_app
from skymesh.coordinator.auth import Auth
from skymesh.coordinator.db.engine import Database, default_url
from skymesh.coordinator.metainfo.context import Metainfo
from skymesh.coordinator.metainfo.expire_uploads import expire_uploads
from skymesh.coordinator.orders import OrderSigner
from skymesh.coordinator.registry import Registry
from skymesh.errors import ConfigError, SchemeError
from skymesh.loops import DrivenLoop
from skymesh.wire.identity import Identity

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.key"
EXPIRE_UPLOADS_INTERVAL = 600.0


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class CoordinatorService:
    """One coordinator: ``await start()``, then serve at ``url`` until ``await stop()``.

    ``clock`` and ``rng`` are for tests (expiry, offline nodes, placement).
    """

    def __init__(
        self,
        config: CoordinatorConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self.data_dir = Path(config.data_dir)
        try:
            self.fixed_scheme = RedundancyScheme.parse(config.scheme) if config.scheme else None
        except SchemeError as e:
            raise ConfigError(f"coordinator scheme: {e}") from e
        self.identity = Identity.load_or_create(self.data_dir / IDENTITY_FILE)
        self.port = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.db: Database
        self.registry: Registry
        self.metainfo: Metainfo
        self.auth: Auth
        self.expire_uploads: DrivenLoop

    async def start(self) -> None:
        cfg = self.config
        self.db = await Database.open(cfg.database_url or default_url(self.data_dir))
        try:
            self.registry = Registry(
                self.db,
                self.identity,
                heartbeat_interval=cfg.heartbeat_interval,
                offline_after=cfg.offline_after,
                clock=self.clock,
            )
            await self.registry.load()
            self.metainfo = Metainfo(
                config=cfg,
                db=self.db,
                registry=self.registry,
                orders=OrderSigner(self.identity, cfg.order_ttl, self.clock),
                fixed_scheme=self.fixed_scheme,
                clock=self.clock,
                rng=self.rng,
            )
            self.auth = Auth(self.db, cfg.admin_token, self.clock)
            self.expire_uploads = DrivenLoop.periodic(
                "expire-uploads",
                min(EXPIRE_UPLOADS_INTERVAL, cfg.pending_upload_ttl),
                lambda: expire_uploads(self.metainfo),
            )
            app = create_app(self.metainfo, self.auth, self.identity)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, cfg.host, cfg.port)
            await site.start()
        except BaseException:
            await self.stop()
            raise
        self.port = int(self._runner.addresses[0][1])
        self.url = f"http://{_url_host(cfg.host)}:{self.port}"
        self.expire_uploads.start()
        log.info("coordinator %s serving at %s", self.identity.id, self.url)

    async def stop(self) -> None:
        if hasattr(self, "expire_uploads"):
            await self.expire_uploads.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if hasattr(self, "db"):
            await self.db.close()


async def run_coordinator(config: CoordinatorConfig) -> None:
    """Run a coordinator until cancelled."""
    service = CoordinatorService(config)
    await service.start()
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()
