"""Projects and their keys as the administrator manages them (`skymesh project`, `skymesh keys`).

An S3 access key is an id the coordinator issues and records; its secret is never
sent to the coordinator. It is derived from the project's root secret and the id
(``skymesh.access_secret``), so only the holders of the root secret (the gateways
serving the project, and the CLI run beside one) can make it. Gateways ask for
their projects' keys every few seconds (:data:`~skymesh.wire.routes.PROJECT_ACCESS_KEYS`):
a key issued since serves, one revoked or expired since is refused.
"""

from __future__ import annotations

from typing import Literal

from skymesh.wire.base import Base
from skymesh.wire.inference import InferenceKeyCreated, InferenceKeyInfo

Scope = Literal["s3", "inference", "all"]


class ProjectInfo(Base, frozen=True):
    project_id: str
    name: str
    created_at: float
    buckets: int = 0
    live_access_keys: int = 0  # neither revoked nor expired
    live_inference_keys: int = 0


class ProjectList(Base, frozen=True):
    projects: list[ProjectInfo]


class AccessKeyInfo(Base, frozen=True):
    """One S3 access key as listed: never its secret (the coordinator has none)."""

    access_key_id: str
    project_id: str
    created_at: float
    expires_at: float | None = None  # None: never
    revoked_at: float | None = None  # None: not revoked
    name: str = ""

    def live(self, now: float) -> bool:
        """Whether a gateway may accept the key at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class AccessKeyList(Base, frozen=True):
    keys: list[AccessKeyInfo]


class CreateKeysRequest(Base, frozen=True):
    """``POST /v1/admin/projects/{project}/keys``: an S3 access key, an inference key or both."""

    scope: Scope = "s3"
    expires_in: float | None = None  # seconds from now; None: never expires
    name: str = ""  # what the key is for (shown by list)


class KeysCreated(Base, frozen=True):
    """What was made: the S3 access key id (its secret is derived by the caller, who
    holds the project's root secret) and/or the inference key, shown only here."""

    project_id: str
    access_key: AccessKeyInfo | None = None
    inference_key: InferenceKeyCreated | None = None


class KeyList(Base, frozen=True):
    """Keys of one project or of all, revoked and expired ones too; never a secret."""

    access_keys: list[AccessKeyInfo]
    inference_keys: list[InferenceKeyInfo]
