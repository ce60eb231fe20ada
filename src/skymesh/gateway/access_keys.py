"""The gateway's access keys, kept in step with its credentials file and the coordinator.

What a gateway may serve is set by the projects whose root secrets it holds: those of
its credentials file (``[[credentials]]`` and ``[[projects]]``) and those it was
started with. Every ``key_refresh_interval`` seconds :meth:`AccessKeys.refresh`

- reads the credentials file again when it changed (a project added by `skymesh
  project create`), and
- asks the coordinator, with each project's API key, for the project's access keys
  (``PROJECT_ACCESS_KEYS``): a live one the gateway lacks is added, its secret derived
  from the root secret (``skymesh.access_secret``); one revoked or expired is removed,
  a key of the file too.

Only this loop asks the coordinator: a request signed with an unknown access key is
refused at once and asks nothing, so a flood of made-up keys costs the coordinator
nothing. While the coordinator cannot be reached a project keeps the keys it had,
less those whose expiry has passed since; a project whose API key the coordinator
refuses (the project was deleted) loses every key.

The live maps (access key id -> credential, -> client) are the ones the S3 and OpenAI
handlers read; they are changed in place, between two awaits, so a request sees either
the old set or the new one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from skymesh.access_secret import derive_s3_secret
from skymesh.config import Credential, CredentialsFile, ProjectSecret, load_credentials_file
from skymesh.errors import SkymeshError, Unauthorized
from skymesh.wire.projects import AccessKeyList

log = logging.getLogger(__name__)

#: Asks the coordinator for one project's access keys (with the project's API key).
AskKeys = Callable[[ProjectSecret], Awaitable[AccessKeyList]]


class AccessKeys:
    def __init__(
        self,
        started_with: list[Credential],
        path: Path | None,
        credentials: dict[str, Credential],
        clients: dict[str, Any],
        make_client: Callable[[Credential], Any],
        ask: AskKeys,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.started_with = started_with
        self.path = path
        self.credentials = credentials  # the live maps the handlers read
        self.clients = clients
        # project id -> what the project's inference keys act with on the OpenAI API
        # (no S3 key: an empty access key id and secret, which no request can sign with)
        self.acting: dict[str, Credential] = {}
        self.make_client = make_client
        self.ask = ask
        self.clock = clock
        self._file = CredentialsFile()
        self._file_stamp: tuple[int, int] | None = None  # (mtime_ns, size) of what was read
        self._listed: dict[str, AccessKeyList] = {}  # project id -> its last answer
        self.refreshes = 0

    def read_file(self) -> CredentialsFile:
        """The credentials file, read again only when it changed; the last good read if
        it cannot be read now (a half-written file is read at the next refresh)."""
        if self.path is None:
            return self._file
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        except OSError as e:
            log.warning("cannot stat credentials %s: %s", self.path, e)
            return self._file
        if stamp != self._file_stamp:
            try:
                self._file = load_credentials_file(self.path)
                self._file_stamp = stamp
            except SkymeshError as e:
                log.warning("%s; keeping what was read before", e)
        return self._file

    def projects(self) -> dict[str, ProjectSecret]:
        """Every project this gateway holds the root secret of, by id."""
        found = {c.project_id: ProjectSecret.of(c) for c in self.started_with}
        found.update(self.read_file().project_secrets())
        return found

    async def refresh(self) -> int:
        """Bring the live maps in step; the number of access keys served now."""
        projects = self.projects()
        ids = list(projects)
        answers = await asyncio.gather(
            *(self.ask(projects[p]) for p in ids), return_exceptions=True
        )
        desired: dict[str, Credential] = {}
        for c in [*self.started_with, *self._file.credentials]:
            desired.setdefault(c.access_key_id, c)
        now = self.clock()
        refused: set[str] = set()
        for project_id, answer in zip(ids, answers, strict=True):
            if isinstance(answer, Unauthorized):  # the project is gone: none of its keys
                refused.add(project_id)
                self._listed.pop(project_id, None)
                for key, c in list(desired.items()):
                    if c.project_id == project_id:
                        del desired[key]
                continue
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer  # a cancellation
                log.warning("access keys of project %s not refreshed: %s", project_id, answer)
                listed = self._listed.get(project_id)
                if listed is None:
                    continue
            else:
                listed = self._listed[project_id] = answer
            project = projects[project_id]
            for info in listed.keys:
                if info.project_id != project_id:
                    continue
                if not info.live(now):
                    desired.pop(info.access_key_id, None)
                elif info.access_key_id not in desired:
                    desired[info.access_key_id] = Credential(
                        access_key_id=info.access_key_id,
                        secret_access_key=derive_s3_secret(
                            project.encryption_secret, info.access_key_id
                        ),
                        project_id=project_id,
                        api_key=project.api_key,
                        encryption_secret=project.encryption_secret,
                    )
        for project_id in set(self._listed) - set(projects):
            del self._listed[project_id]
        self._apply(desired)
        acting = {p: _acting(projects[p]) for p in ids if p not in refused}
        for project_id in [p for p in self.acting if p not in acting]:
            del self.acting[project_id]
        self.acting.update(acting)
        self.refreshes += 1
        return len(self.credentials)

    def add(self, c: Credential) -> None:
        """Serve ``c`` from now on, as if the gateway had been started with it (tests)."""
        self.started_with.append(c)
        self.clients[c.access_key_id] = self.make_client(c)
        self.credentials[c.access_key_id] = c
        self.acting.setdefault(c.project_id, _acting(ProjectSecret.of(c)))

    def _apply(self, desired: dict[str, Credential]) -> None:
        for key in [k for k in self.credentials if k not in desired]:
            log.info("access key %s is no longer served", key)
            del self.credentials[key]
            self.clients.pop(key, None)
        for key, c in desired.items():
            if self.credentials.get(key) != c:
                if key not in self.credentials:
                    log.info("access key %s of project %s is served", key, c.project_id)
                self.clients[key] = self.make_client(c)
                self.credentials[key] = c


def _acting(p: ProjectSecret) -> Credential:
    return Credential(
        access_key_id="",
        secret_access_key="",
        project_id=p.project_id,
        api_key=p.api_key,
        encryption_secret=p.encryption_secret,
    )
