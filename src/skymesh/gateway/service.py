"""The gateway process: the S3 and OpenAI APIs on one aiohttp server, in front of the client library."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from skymesh.client.buffers import BufferPool
from skymesh.client.client import Client
from skymesh.client.keys import RootSecretKeys
from skymesh.client.metainfo import MetainfoClient
from skymesh.config import Credential, GatewayConfig, ProjectSecret, load_credentials_file
from skymesh.errors import ConfigError
from skymesh.failover import Endpoints
from skymesh.gateway.access_keys import AccessKeys
from skymesh.gateway.metrics import GatewayMetrics
from skymesh.gateway.openai.app import OpenAIGateway
from skymesh.gateway.s3.app import make_app
from skymesh.gateway.s3.public import BucketDirectory
from skymesh.gateway.s3.request import S3Context
from skymesh.loops import DrivenLoop
from skymesh.metrics import MetricsListener
from skymesh.piecetransfer.sockets import piece_socket
from skymesh.private import private_dir
from skymesh.rpc import NO_REDIRECTS, STREAM_BUFSIZE
from skymesh.wire.projects import AccessKeyList

log = logging.getLogger(__name__)

KEY_REFRESH_TIMEOUT = 10.0  # seconds one ask for a project's access keys may take


class GatewayService:
    """One lifecycle for the gateway's HTTP server and its pooled connections to nodes."""

    def __init__(self, config: GatewayConfig, credentials: list[Credential] | None = None):
        self.config = config
        data_dir = Path(config.data_dir)
        if data_dir.exists():  # it holds the credentials; the gateway writes nothing there
            private_dir(data_dir)
        # the file is read again while the gateway runs (gateway/access_keys.py): the
        # credentials given here, if any, are served besides what it holds
        self.credentials_path = Path(
            config.credentials_file or Path(config.data_dir) / "credentials.toml"
        )
        if credentials is None:
            found = load_credentials_file(self.credentials_path)
            if not found.credentials and not found.projects:
                raise ConfigError(
                    f"no credentials in {self.credentials_path}: run `skymesh up`, or"
                    " `skymesh project create NAME --credentials-file FILE`"
                )
            credentials = []
        self.credentials = credentials
        self.keys: AccessKeys | None = None  # from start()
        self._key_loop: DrivenLoop | None = None
        self.port = config.port
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._rpc_session: aiohttp.ClientSession | None = None
        self.context: S3Context | None = None
        self.openai: OpenAIGateway | None = None
        self.coordinators: Endpoints | None = None  # from start()
        # one memory budget for the upload buffers of every access key's client
        self.buffers = BufferPool(config.buffer_budget_bytes, wait=config.buffer_wait)
        self.metrics = GatewayMetrics(self.buffers)
        # GET /metrics, apart from the S3 port (where /metrics is a bucket's path)
        self.metrics_listener = (
            MetricsListener(
                self.metrics.registry, config.metrics_address, "gateway metrics_address"
            )
            if config.metrics_address
            else None
        )

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{self.config.host}:{self.port}"

    async def start(self) -> None:
        # first: a bad certificate stops the start before anything else is opened
        tls = (
            tls_context(self.config.tls_cert, self.config.tls_key) if self.config.tls_cert else None
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, limit_per_host=64, keepalive_timeout=30, socket_factory=piece_socket
            ),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
            read_bufsize=STREAM_BUFSIZE,
            middlewares=NO_REDIRECTS,  # nodes' redirects are never followed
            trace_configs=[self.metrics.trace()],  # piece transfers, counted and timed
        )
        # the coordinator's calls (one or more per S3 request) go on a session of their
        # own, without the piece transfers' trace, whose signals cost every call
        self._rpc_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=64, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
            middlewares=NO_REDIRECTS,
        )
        # every project's calls share what is learnt of each coordinator's health
        self.coordinators = Endpoints.failover(
            self.config.coordinators, self.config.coordinator_timeout
        )
        clients: dict[str, Client] = {}
        credentials: dict[str, Credential] = {}
        self.keys = AccessKeys(
            self.credentials,
            self.credentials_path,
            credentials,
            clients,
            self._client,
            self._ask_keys,
        )
        # the file's keys at once, then the coordinator's: a coordinator not up yet
        # leaves the file's keys served and is asked again at the next refresh
        await self.keys.refresh()
        self.context = S3Context(
            config=self.config,
            credentials=credentials,
            clients=clients,
            base_hosts=list(self.config.virtual_host_suffixes),
            directory=BucketDirectory(
                credentials,
                clients,
                rate=self.config.bucket_lookups_per_second,
                in_flight=self.config.bucket_lookups_in_flight,
            ),
            metrics=self.metrics,
            refresh_keys=self.keys.refresh,
        )
        app = make_app(self.context)
        # the OpenAI API on the same server, with the same credentials
        self.openai = OpenAIGateway(
            self.config,
            self.context.credentials,
            self._session,
            self.buffers,
            self.coordinators,
            projects=self.keys.acting,
        )
        self.openai.metrics = self.metrics
        self.openai.install(app)
        # auto_decompress=False: a body sent with Content-Encoding: gzip is the object's
        # bytes, stored as sent (as S3 does), never inflated by the server
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            read_bufsize=STREAM_BUFSIZE,
            auto_decompress=False,
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.config.host, self.config.port, reuse_address=True, ssl_context=tls
        )
        await site.start()
        self.port = self._runner.addresses[0][1]
        if self.metrics_listener is not None:
            await self.metrics_listener.start()
        if self.config.key_refresh_interval > 0:
            self._key_loop = DrivenLoop.periodic(
                "access-keys", self.config.key_refresh_interval, self.keys.refresh
            )
            self._key_loop.start()
        log.info("S3 gateway listening on %s for %d access key(s)", self.url, len(clients))

    def _client(self, c: Credential) -> Client:
        assert self._session is not None
        assert self.coordinators is not None
        assert self._rpc_session is not None
        return Client(
            MetainfoClient.for_project(self.coordinators, c.api_key, self._rpc_session),
            RootSecretKeys(c.project_id, bytes.fromhex(c.encryption_secret)),
            self._session,
            download_extra_pieces=self.config.download_extra_pieces,
            buffers=self.buffers,
        )

    async def _ask_keys(self, project: ProjectSecret) -> AccessKeyList:
        """The project's access keys, as the coordinator lists them to its API key."""
        assert self._rpc_session is not None and self.coordinators is not None
        metainfo = MetainfoClient.for_project(self.coordinators, project.api_key, self._rpc_session)
        async with asyncio.timeout(KEY_REFRESH_TIMEOUT):
            return await metainfo.access_keys()

    def add_credential(self, c: Credential) -> None:
        """Accept one more access key from now on (tests)."""
        assert self.keys is not None
        self.keys.add(c)

    async def stop(self) -> None:
        if self.metrics_listener is not None:
            await self.metrics_listener.stop()
        if self._key_loop is not None:
            await self._key_loop.stop()
            self._key_loop = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.openai is not None:
            await self.openai.close()
            self.openai = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._rpc_session is not None:
            await self._rpc_session.close()
            self._rpc_session = None


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """The server side of HTTPS (TLS 1.2 and later) from PEM files, with an error naming
    the file at fault: ``ssl`` alone says neither which file is missing nor which is bad."""
    pems: dict[str, bytes] = {}
    for what, path in (("certificate", cert), ("key", key)):
        try:
            pems[what] = Path(path).read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read TLS {what} {path}: {e.strerror or e}") from e
    try:
        x509.load_pem_x509_certificates(pems["certificate"])
    except ValueError as e:
        raise ConfigError(f"TLS certificate {cert} is not a PEM certificate: {e}") from e
    try:
        serialization.load_pem_private_key(pems["key"], password=None)
    except (ValueError, TypeError) as e:  # TypeError: the key is encrypted
        raise ConfigError(f"TLS key {key} is not an unencrypted PEM private key: {e}") from e
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as e:
        raise ConfigError(f"TLS key {key} does not match certificate {cert}: {e}") from e
    return ctx


async def run_gateway(config: GatewayConfig) -> None:
    service = GatewayService(config)
    await service.start()
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()
