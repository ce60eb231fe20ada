"""What an S3 handler is given: the gateway's context and one authenticated request.

Handlers import this module, never ``app.py``: the application imports every
handler to build its table, so the dependency runs one way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from skymesh.client.client import Client
from skymesh.config import Credential, GatewayConfig
from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.public import BucketDirectory
from skymesh.gateway.s3.router import Endpoint
from skymesh.gateway.s3.sigv4 import AuthResult

XML = "application/xml"


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
        return self.http.query.get(name, default)

    async def read_small_body(self, cap: int) -> bytes:
        """The whole body of a control request (XML), refusing more than ``cap`` bytes."""
        length = self.http.content_length
        if length is not None and length > cap:
            raise s3_error("MaxMessageLengthExceeded", f"the body may be at most {cap} bytes")
        data = bytearray()
        while chunk := await self.http.content.read(64 * 1024):
            data += chunk
            if len(data) > cap:
                raise s3_error("MaxMessageLengthExceeded", f"the body may be at most {cap} bytes")
        return bytes(data)


Handler = Callable[[S3Request], Awaitable[web.StreamResponse]]
