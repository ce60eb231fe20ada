"""What an S3 handler is given: the gateway's context and one authenticated request.

Handlers import this module, never ``app.py``: the application imports every
handler to build its table, so the dependency runs one way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from skymesh.client.client import Client
from skymesh.config import Credential, GatewayConfig
from skymesh.gateway.metrics import GatewayMetrics
from skymesh.gateway.s3.access import Access
from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.public import BucketDirectory
from skymesh.gateway.s3.router import Endpoint
from skymesh.gateway.s3.sigv4 import AuthResult

XML = "application/xml"
MAX_INT_PARAM = 2**31 - 1


@dataclass
class S3Context:
    config: GatewayConfig
    credentials: dict[str, Credential]
    clients: dict[str, Client]
    base_hosts: list[str] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    # bucket owners and configuration for unsigned requests (set by make_app)
    directory: BucketDirectory | None = None
    metrics: GatewayMetrics | None = None  # requests and bytes counted when set
    # brings the served access keys in step with the coordinator (the gateway's key
    # refresh), run when the console API has made or revoked a key
    refresh_keys: Callable[[], Awaitable[object]] | None = None

    def lookup_secret(self, access_key: str) -> str | None:
        cred = self.credentials.get(access_key)
        return cred.secret_access_key if cred else None


@dataclass
class S3Request:
    """One authenticated S3 request on its way to a handler."""

    http: web.Request
    endpoint: Endpoint
    auth: AuthResult
    credential: Credential
    client: Client
    ctx: S3Context
    request_id: str
    #: the query parameters as the signature covers them (``sigv4.parse_query``),
    #: each name's values in order; handlers read them through :meth:`query`
    params: Mapping[str, Sequence[str]]
    #: the bucket policy's view of this request, for per-resource checks (None when
    #: no project of this gateway owns the bucket, or there is no bucket)
    access: Access | None = None

    @property
    def bucket(self) -> str:
        if not self.endpoint.bucket:
            raise s3_error("InvalidRequest", "this operation needs a bucket")
        return self.endpoint.bucket

    @property
    def key(self) -> str:
        if not self.endpoint.key:
            raise s3_error("InvalidRequest", "this operation needs an object key")
        return self.endpoint.key

    def query(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``, exactly as signed, or ``default``.

        Never read ``http.query``: aiohttp decodes a ``+`` as a space, which the
        signature does not (``sigv4.parse_query``).
        """
        values = self.params.get(name)
        return values[0] if values else default

    def int_query(self, name: str, default: int) -> int:
        """An integer query parameter (``max-keys``, ``max-parts``, ``part-number-marker``...):
        ASCII digits from 0 to 2**31 - 1, as S3 takes them, else ``InvalidArgument``.

        Never int() on the raw value: it reads other scripts' digits, and a number
        past the coordinator's integer columns must not reach it.
        """
        raw = self.query(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or int(raw) > MAX_INT_PARAM:
            raise s3_error(
                "InvalidArgument",
                f"Provided {name} not an integer or within integer range",
                ArgumentName=name,
                ArgumentValue=raw[:64],
            )
        return int(raw)

    @property
    def caller_owns(self) -> bool:
        """Whether the signed caller's project owns what this request acts on.

        False for an unsigned request and for a signed read of another project's
        public bucket (``app._run_handler`` runs it with the owner's credential):
        neither may learn the owner's project id.
        """
        if self.auth.access_key is None:
            return False
        own = self.ctx.credentials.get(self.auth.access_key)
        return own is not None and own.project_id == self.credential.project_id


Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]
