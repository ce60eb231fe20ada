"""The gateway's access keys follow its credentials file and the coordinator's list."""

from __future__ import annotations

import asyncio
from pathlib import Path

from skymesh.access_secret import derive_s3_secret
from skymesh.config import Credential, ProjectSecret, write_credentials
from skymesh.errors import Unauthorized, Unavailable
from skymesh.gateway.access_keys import AccessKeys
from skymesh.wire.projects import AccessKeyInfo, AccessKeyList

ROOT = "ab" * 32


def _project(pid: str) -> ProjectSecret:
    return ProjectSecret(project_id=pid, name=pid, api_key=f"smk_{pid}_x", encryption_secret=ROOT)


def _file_key(pid: str, key: str) -> Credential:
    return Credential(
        access_key_id=key,
        secret_access_key="file-secret",
        project_id=pid,
        api_key=f"smk_{pid}_x",
        encryption_secret=ROOT,
    )


def test_refresh_adds_issued_keys_and_drops_revoked_expired_and_gone(tmp_path: Path) -> None:
    path = tmp_path / "credentials.toml"
    write_credentials(path, [_file_key("p1", "SKYFILE")], [_project("p2")])
    now = [1000.0]
    answers: dict[str, object] = {
        "p1": AccessKeyList(keys=[]),
        "p2": AccessKeyList(
            keys=[
                AccessKeyInfo(access_key_id="SKYNEW", project_id="p2", created_at=1.0),
                AccessKeyInfo(
                    access_key_id="SKYBRIEF", project_id="p2", created_at=1.0, expires_at=1010.0
                ),
                AccessKeyInfo(
                    access_key_id="SKYOLD", project_id="p2", created_at=1.0, revoked_at=5.0
                ),
            ]
        ),
    }

    async def ask(p: ProjectSecret) -> AccessKeyList:
        answer = answers[p.project_id]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, AccessKeyList)
        return answer

    creds: dict[str, Credential] = {}
    clients: dict[str, object] = {}
    keys = AccessKeys([], path, creds, clients, lambda c: c.access_key_id, ask, lambda: now[0])
    asyncio.run(keys.refresh())
    assert set(creds) == {"SKYFILE", "SKYNEW", "SKYBRIEF"} == set(clients)
    assert creds["SKYNEW"].secret_access_key == derive_s3_secret(ROOT, "SKYNEW")
    assert creds["SKYFILE"].secret_access_key == "file-secret"
    assert set(keys.acting) == {"p1", "p2"} and keys.acting["p2"].access_key_id == ""

    # the coordinator is down: keys stay, but one whose expiry passed goes
    answers["p2"] = Unavailable("down")
    now[0] = 1011.0
    asyncio.run(keys.refresh())
    assert set(creds) == {"SKYFILE", "SKYNEW"}

    # a key of the file revoked at the coordinator is refused too
    answers["p1"] = AccessKeyList(
        keys=[AccessKeyInfo(access_key_id="SKYFILE", project_id="p1", created_at=1, revoked_at=2)]
    )
    asyncio.run(keys.refresh())
    assert set(creds) == {"SKYNEW"}

    # the coordinator refuses the project's API key (deleted): none of its keys
    answers["p2"] = Unauthorized("unknown API key")
    asyncio.run(keys.refresh())
    assert creds == {} and clients == {} and set(keys.acting) == {"p1"}

    # a project added to the file is served at the next refresh
    answers["p3"] = AccessKeyList(
        keys=[AccessKeyInfo(access_key_id="SKYP3", project_id="p3", created_at=1.0)]
    )
    write_credentials(path, [_file_key("p1", "SKYFILE")], [_project("p2"), _project("p3")])
    asyncio.run(keys.refresh())
    assert set(creds) == {"SKYP3"}
